//! The repository `config` file: Python ConfigParser's INI dialect, and the `[repository]`
//! settings borg stores in it.

use std::path::Path;

use super::atomic;
use crate::repo::{RepoError, Result};

/// An INI document as ConfigParser reads and writes it: sections with ordered `key = value`
/// pairs; keys are case-insensitive (stored lower-case); multi-line values continue on lines
/// indented with whitespace and are joined with `\n`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ini {
    pub sections: Vec<(String, Vec<(String, String)>)>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IniError {
    #[error("line {0}: option outside of any section")]
    NoSection(usize),
    #[error("line {0}: cannot parse {1:?}")]
    Syntax(usize, String),
}

impl Ini {
    pub fn parse(text: &str) -> std::result::Result<Ini, IniError> {
        let mut ini = Ini::default();
        let mut last_key: Option<(usize, usize)> = None;
        for (n, raw) in text.lines().enumerate() {
            let lineno = n + 1;
            let trimmed = raw.trim();
            let indented = raw.starts_with([' ', '\t']);
            if indented && !trimmed.is_empty() {
                if let Some((s, k)) = last_key {
                    let v = &mut ini.sections[s].1[k].1;
                    v.push('\n');
                    v.push_str(trimmed);
                    continue;
                }
            }
            if trimmed.is_empty() {
                // ConfigParser keeps empty lines inside multi-line values only when indented;
                // a blank line ends the value for our purposes.
                last_key = None;
                continue;
            }
            if trimmed.starts_with('#') || trimmed.starts_with(';') {
                continue;
            }
            if trimmed.starts_with('[') && trimmed.ends_with(']') {
                ini.sections
                    .push((trimmed[1..trimmed.len() - 1].to_string(), Vec::new()));
                last_key = None;
                continue;
            }
            let Some(sidx) = ini.sections.len().checked_sub(1) else {
                return Err(IniError::NoSection(lineno));
            };
            let pos = trimmed
                .find(['=', ':'])
                .ok_or_else(|| IniError::Syntax(lineno, trimmed.to_string()))?;
            let key = trimmed[..pos].trim().to_lowercase();
            let val = trimmed[pos + 1..].trim().to_string();
            let sec = &mut ini.sections[sidx].1;
            if let Some(i) = sec.iter().position(|(k, _)| *k == key) {
                sec[i].1 = val;
                last_key = Some((sidx, i));
            } else {
                sec.push((key, val));
                last_key = Some((sidx, sec.len() - 1));
            }
        }
        Ok(ini)
    }

    /// ConfigParser's output: `[section]`, `key = value` lines (continuation lines indented with
    /// a TAB), and a blank line after every section.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (name, entries) in &self.sections {
            out.push('[');
            out.push_str(name);
            out.push_str("]\n");
            for (k, v) in entries {
                out.push_str(k);
                out.push_str(" = ");
                out.push_str(&v.replace('\n', "\n\t"));
                out.push('\n');
            }
            out.push('\n');
        }
        out
    }

    pub fn get(&self, section: &str, key: &str) -> Option<&str> {
        let key = key.to_lowercase();
        self.sections
            .iter()
            .find(|(s, _)| s == section)?
            .1
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn has_section(&self, section: &str) -> bool {
        self.sections.iter().any(|(s, _)| s == section)
    }

    pub fn set(&mut self, section: &str, key: &str, value: impl Into<String>) {
        let key = key.to_lowercase();
        let value = value.into();
        let idx = match self.sections.iter().position(|(s, _)| s == section) {
            Some(i) => i,
            None => {
                self.sections.push((section.to_string(), Vec::new()));
                self.sections.len() - 1
            }
        };
        let sec = &mut self.sections[idx].1;
        match sec.iter_mut().find(|(k, _)| *k == key) {
            Some(e) => e.1 = value,
            None => sec.push((key, value)),
        }
    }

    /// Removes an option; returns whether it existed.
    pub fn remove(&mut self, section: &str, key: &str) -> bool {
        let key = key.to_lowercase();
        if let Some((_, sec)) = self.sections.iter_mut().find(|(s, _)| s == section) {
            let before = sec.len();
            sec.retain(|(k, _)| *k != key);
            return sec.len() != before;
        }
        false
    }
}

/// ConfigParser's boolean words.
pub fn parse_bool(v: &str) -> Option<bool> {
    match v.to_lowercase().as_str() {
        "1" | "yes" | "true" | "on" => Some(true),
        "0" | "no" | "false" | "off" => Some(false),
        _ => None,
    }
}

/// borg's `parse_file_size`: optional K/M/G/T/P suffix (powers of 1000), float mantissa,
/// truncated to an integer.
pub fn parse_file_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, factor) = match s.chars().last()? {
        'K' => (&s[..s.len() - 1], 1e3),
        'M' => (&s[..s.len() - 1], 1e6),
        'G' => (&s[..s.len() - 1], 1e9),
        'T' => (&s[..s.len() - 1], 1e12),
        'P' => (&s[..s.len() - 1], 1e15),
        _ => (s, 1.0),
    };
    if let Ok(i) = num.parse::<u64>() {
        return Some(i * factor as u64);
    }
    let f: f64 = num.parse().ok()?;
    if !f.is_finite() || f < 0.0 {
        return None;
    }
    Some((f * factor) as u64)
}

pub const DEFAULT_SEGMENTS_PER_DIR: u32 = 1000;
pub const DEFAULT_MAX_SEGMENT_SIZE: u64 = 500 * 1024 * 1024;
/// Segment offsets are u32; borg refuses limits that could overflow them.
pub const MAX_SEGMENT_SIZE_LIMIT: u64 = (1 << 32) - 20_971_520;

/// The `[repository]` section, validated.
#[derive(Clone, Debug)]
pub struct RepoConfig {
    pub ini: Ini,
    pub id: [u8; 32],
    pub segments_per_dir: u32,
    pub max_segment_size: u64,
    pub append_only: bool,
    pub storage_quota: u64,
    pub additional_free_space: u64,
}

pub const SECTION: &str = "repository";

impl RepoConfig {
    /// A fresh config as `borg init` writes it (same key order).
    pub fn new(id: [u8; 32], append_only: bool, storage_quota: u64) -> RepoConfig {
        let mut ini = Ini::default();
        ini.set(SECTION, "version", "1");
        ini.set(
            SECTION,
            "segments_per_dir",
            DEFAULT_SEGMENTS_PER_DIR.to_string(),
        );
        ini.set(
            SECTION,
            "max_segment_size",
            DEFAULT_MAX_SEGMENT_SIZE.to_string(),
        );
        ini.set(SECTION, "append_only", (append_only as u8).to_string());
        ini.set(SECTION, "storage_quota", storage_quota.to_string());
        ini.set(SECTION, "additional_free_space", "0");
        ini.set(SECTION, "id", hex::encode(id));
        RepoConfig::from_ini(ini, "").expect("fresh config is valid")
    }

    pub fn load(repo: &Path, display: &str) -> Result<RepoConfig> {
        let path = repo.join("config");
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(RepoError::InvalidRepository(display.to_string()))
            }
            Err(e) => return Err(RepoError::io(&path, e)),
        };
        let text = String::from_utf8_lossy(&text);
        let ini = Ini::parse(&text)
            .map_err(|e| RepoError::InvalidRepositoryConfig(display.to_string(), e.to_string()))?;
        RepoConfig::from_ini(ini, display)
    }

    pub fn from_ini(ini: Ini, display: &str) -> Result<RepoConfig> {
        let bad = |m: &str| RepoError::InvalidRepositoryConfig(display.to_string(), m.to_string());
        if !ini.has_section(SECTION) {
            return Err(bad("no repository section found"));
        }
        let get = |k: &str| ini.get(SECTION, k);
        let version: i64 = get("version")
            .ok_or_else(|| bad("no version"))?
            .parse()
            .map_err(|_| bad("invalid version"))?;
        if version != 1 {
            return Err(bad(&format!(
                "repository version {version} is not supported by this borg version"
            )));
        }
        let max_segment_size = parse_file_size(get("max_segment_size").unwrap_or("0"))
            .ok_or_else(|| bad("invalid max_segment_size"))?;
        if max_segment_size >= MAX_SEGMENT_SIZE_LIMIT {
            return Err(bad(&format!(
                "max_segment_size >= {MAX_SEGMENT_SIZE_LIMIT}"
            )));
        }
        let segments_per_dir: u32 = get("segments_per_dir")
            .unwrap_or("1000")
            .trim()
            .parse()
            .map_err(|_| bad("invalid segments_per_dir"))?;
        if segments_per_dir == 0 {
            return Err(bad("invalid segments_per_dir"));
        }
        let additional_free_space = parse_file_size(get("additional_free_space").unwrap_or("0"))
            .ok_or_else(|| bad("invalid additional_free_space"))?;
        let append_only = get("append_only")
            .map(|v| parse_bool(v).ok_or_else(|| bad("invalid append_only")))
            .transpose()?
            .unwrap_or(false);
        let storage_quota = parse_file_size(get("storage_quota").unwrap_or("0"))
            .ok_or_else(|| bad("invalid storage_quota"))?;
        let id_hex = get("id").ok_or_else(|| bad("no id"))?;
        let id: [u8; 32] = hex::decode(id_hex.trim())
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| bad("invalid id"))?;
        Ok(RepoConfig {
            ini,
            id,
            segments_per_dir,
            max_segment_size,
            append_only,
            storage_quota,
            additional_free_space,
        })
    }

    /// Writes the config like borg's `save_config`: keep the previous version as `config.old`
    /// during the atomic replace, then securely erase it (it may hold an old key).
    pub fn save(&self, repo: &Path) -> Result<()> {
        let path = repo.join("config");
        let old = repo.join("config.old");
        if old.exists() {
            crate::log::warning(
                "borg.repository",
                &format!(
                    "Old config file not securely erased on previous config update: {}",
                    old.display()
                ),
            );
            atomic::secure_erase(&old).map_err(|e| RepoError::io(&old, e))?;
        }
        if path.exists() {
            if let Err(e) = std::fs::hard_link(&path, &old) {
                crate::log::warning("borg.repository", &format!(
                    "Failed to securely erase old repository config file (hardlinks not supported): {e}"
                ));
            }
        }
        atomic::save_file(&path, self.ini.render().as_bytes())
            .map_err(|e| RepoError::io(&path, e))?;
        if old.exists() {
            atomic::secure_erase(&old).map_err(|e| RepoError::io(&old, e))?;
        }
        Ok(())
    }

    pub fn key_text(&self) -> String {
        self.ini
            .get(SECTION, "key")
            .unwrap_or("")
            .trim()
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn borg_init_config_roundtrip() {
        let text = "[repository]\nversion = 1\nsegments_per_dir = 1000\nmax_segment_size = 524288000\nappend_only = 0\nstorage_quota = 0\nadditional_free_space = 0\nid = f410d13f5113ed1a5290818400d2e80858ae5e629f3bc9d456674af4f36e8641\nkey = hqlhbGdv\n\tcml0aG2m\n\tc2hh\n\n";
        let ini = Ini::parse(text).unwrap();
        assert_eq!(
            ini.get("repository", "key"),
            Some("hqlhbGdv\ncml0aG2m\nc2hh")
        );
        assert_eq!(ini.render(), text);
        let c = RepoConfig::from_ini(ini, "r").unwrap();
        assert_eq!(c.max_segment_size, 524288000);
        assert_eq!(c.id[0], 0xf4);
    }

    #[test]
    fn fresh_config_matches_borg_layout() {
        let c = RepoConfig::new([0xab; 32], true, 0);
        let text = c.ini.render();
        assert!(text.starts_with("[repository]\nversion = 1\nsegments_per_dir = 1000\nmax_segment_size = 524288000\nappend_only = 1\nstorage_quota = 0\nadditional_free_space = 0\nid = abab"));
        assert!(text.ends_with("\n\n"));
    }

    #[test]
    fn validation() {
        let bad = Ini::parse("[repository]\nversion = 2\nid = 00\n").unwrap();
        let e = RepoConfig::from_ini(bad, "/r").unwrap_err().to_string();
        assert!(e.contains("repository version 2 is not supported"), "{e}");
        let e = RepoConfig::from_ini(Ini::parse("[x]\n").unwrap(), "/r")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "/r does not have a valid configuration. Check repo config [no repository section found]."
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_file_size("1234"), Some(1234));
        assert_eq!(parse_file_size("55G"), Some(55_000_000_000));
        assert_eq!(parse_file_size("1.5G"), Some(1_500_000_000));
        assert_eq!(parse_file_size("x"), None);
    }
}
