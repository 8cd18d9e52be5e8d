//! Repository locations as borg 1.x spells them: local paths, `file://`, `ssh://` URLs and
//! scp-style `user@host:path`, each optionally followed by `::archive`.
//!
//! Placeholder expansion and the `BORG_REPO` fallback are the command layer's job; this type
//! only parses an already-expanded string.

use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Proto {
    File,
    Ssh,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub proto: Proto,
    pub user: Option<String>,
    /// Host as written (IPv6 addresses keep their brackets).
    pub host: Option<String>,
    pub port: Option<u16>,
    /// Normalised path; absolute for local repositories.
    pub path: String,
    pub archive: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("Invalid location format: \"{0}\"")]
pub struct LocationError(pub String);

impl Location {
    /// Parses a location. Local paths are made absolute (borg's canonical form).
    pub fn parse(text: &str) -> Result<Location, LocationError> {
        let err = || LocationError(text.to_string());
        let mut loc = if let Some(rest) = text.strip_prefix("ssh://") {
            parse_ssh(rest).ok_or_else(err)?
        } else if let Some(rest) = text.strip_prefix("file://") {
            let (path, archive) = split_archive(rest).ok_or_else(err)?;
            if !path.contains('/') {
                return Err(err());
            }
            Location {
                proto: Proto::File,
                user: None,
                host: None,
                port: None,
                path: normpath_special(path),
                archive,
            }
        } else {
            parse_scp(text).ok_or_else(err)?
        };
        if loc.proto == Proto::File {
            loc.path = absolutize(&loc.path);
        }
        Ok(loc)
    }

    /// The host without IPv6 brackets (what ssh gets).
    pub fn host_plain(&self) -> Option<String> {
        self.host
            .as_ref()
            .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_string())
    }

    pub fn is_local(&self) -> bool {
        self.proto == Proto::File
    }

    pub fn local_path(&self) -> PathBuf {
        PathBuf::from(&self.path)
    }

    /// borg's `canonical_path()`: the bare absolute path locally, an ssh:// URL remotely.
    pub fn canonical_path(&self) -> String {
        match self.proto {
            Proto::File => self.path.clone(),
            Proto::Ssh => {
                let path = if self.path.starts_with('~') {
                    format!("/{}", self.path)
                } else if !self.path.starts_with('/') {
                    format!("/./{}", self.path)
                } else {
                    self.path.clone()
                };
                format!(
                    "ssh://{}{}{}{}",
                    self.user
                        .as_ref()
                        .map(|u| format!("{u}@"))
                        .unwrap_or_default(),
                    self.host.as_deref().unwrap_or(""),
                    self.port.map(|p| format!(":{p}")).unwrap_or_default(),
                    path
                )
            }
        }
    }

    /// The same location without its archive part.
    pub fn without_archive(&self) -> Location {
        Location {
            archive: None,
            ..self.clone()
        }
    }

    /// borg's default name for a new key file of this repository (inside `keys_dir`).
    pub fn key_file_name(&self) -> String {
        fn subst(s: &str) -> String {
            s.chars()
                .map(|c| {
                    if c.is_alphanumeric() || c == '_' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect()
        }
        let mut name = subst(&self.path).trim_matches('_').to_string();
        if self.proto != Proto::File {
            name = format!(
                "{}__{}",
                subst(&self.host_plain().unwrap_or_default()),
                name
            );
        }
        name.chars().take(100).collect()
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.canonical_path())?;
        if let Some(a) = &self.archive {
            write!(f, "::{a}")?;
        }
        Ok(())
    }
}

/// Splits `path[::archive]`; the path must be non-empty and contain no `::`; the archive must be
/// non-empty and contain no `/`.
fn split_archive(s: &str) -> Option<(&str, Option<String>)> {
    match s.find("::") {
        None => (!s.is_empty()).then_some((s, None)),
        Some(i) => {
            let (path, archive) = (&s[..i], &s[i + 2..]);
            if path.is_empty() || archive.is_empty() || archive.contains('/') {
                return None;
            }
            Some((path, Some(archive.to_string())))
        }
    }
}

fn parse_user(s: &str) -> (Option<String>, &str) {
    if let Some(at) = s.find('@') {
        let user = &s[..at];
        if !user.is_empty() && !user.contains([':', '/']) {
            return (Some(user.to_string()), &s[at + 1..]);
        }
    }
    (None, s)
}

/// Parses a host at the start of `s`; returns (host, rest after host).
fn parse_host(s: &str) -> Option<(String, &str)> {
    if let Some(inner) = s.strip_prefix('[') {
        let end = inner.find(']')?;
        let addr = &inner[..end];
        if addr.is_empty()
            || !addr
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        {
            return None;
        }
        Some((format!("[{addr}]"), &inner[end + 1..]))
    } else {
        let end = s.find([':', '/']).unwrap_or(s.len());
        let host = &s[..end];
        if host.is_empty() || host.ends_with(']') {
            return None;
        }
        Some((host.to_string(), &s[end..]))
    }
}

fn parse_ssh(rest: &str) -> Option<Location> {
    let (user, rest) = parse_user(rest);
    let (host, rest) = parse_host(rest)?;
    let (port, rest) = match rest.strip_prefix(':') {
        Some(r) => {
            let end = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
            if end == 0 {
                return None;
            }
            (Some(r[..end].parse().ok()?), &r[end..])
        }
        None => (None, rest),
    };
    if !rest.starts_with('/') || rest.len() < 2 {
        return None;
    }
    let (path, archive) = split_archive(rest)?;
    Some(Location {
        proto: Proto::Ssh,
        user,
        host: Some(host),
        port,
        path: normpath_special(path),
        archive,
    })
}

fn scp_path_ok(p: &str) -> bool {
    !(p.starts_with(':') || p.starts_with("//") || p.starts_with("ssh://"))
}

fn parse_scp(text: &str) -> Option<Location> {
    // First try the remote form `[user@]host:path`.
    let (user, rest) = parse_user(text);
    if let Some((host, after)) = parse_host(rest) {
        if let Some(path_part) = after.strip_prefix(':') {
            if scp_path_ok(path_part) {
                if let Some((path, archive)) = split_archive(path_part) {
                    return Some(Location {
                        proto: Proto::Ssh,
                        user,
                        host: Some(host),
                        port: None,
                        path: normpath_special(path),
                        archive,
                    });
                }
            }
        }
    }
    // Otherwise it is a local path.
    if !scp_path_ok(text) {
        return None;
    }
    let (path, archive) = split_archive(text)?;
    Some(Location {
        proto: Proto::File,
        user: None,
        host: None,
        port: None,
        path: normpath_special(path),
        archive,
    })
}

/// Python's `os.path.normpath`, keeping a leading `/./` (borg's "relative to cwd" marker for
/// remote paths).
fn normpath_special(p: &str) -> String {
    let relative = p.starts_with("/./");
    let n = normpath(p);
    if relative {
        format!("/.{n}")
    } else {
        n
    }
}

/// POSIX `os.path.normpath`: lexical, `..` never climbs above the root, two leading slashes kept.
pub fn normpath(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let initial = if p.starts_with("//") && !p.starts_with("///") {
        "//"
    } else if p.starts_with('/') {
        "/"
    } else {
        ""
    };
    let mut parts: Vec<&str> = Vec::new();
    for comp in p.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                if !parts.is_empty() && *parts.last().expect("non-empty") != ".." {
                    parts.pop();
                } else if initial.is_empty() {
                    parts.push("..");
                }
            }
            c => parts.push(c),
        }
    }
    let body = parts.join("/");
    let out = format!("{initial}{body}");
    if out.is_empty() {
        ".".into()
    } else {
        out
    }
}

fn absolutize(p: &str) -> String {
    let path = Path::new(p);
    if path.is_absolute() {
        return normpath(p);
    }
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    normpath(&cwd.join(path).to_string_lossy())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(s: &str) -> Location {
        Location::parse(s).unwrap()
    }

    #[test]
    fn local_forms() {
        let a = l("/abs/path");
        assert_eq!(
            (a.proto.clone(), a.path.as_str(), a.archive),
            (Proto::File, "/abs/path", None)
        );
        let b = l("/abs/path::arch-1");
        assert_eq!(b.archive.as_deref(), Some("arch-1"));
        let c = l("file:///abs/./x/../y::a");
        assert_eq!(
            (c.path.as_str(), c.archive.as_deref()),
            ("/abs/y", Some("a"))
        );
        let d = l("rel/repo");
        assert!(d.path.ends_with("/rel/repo") && d.path.starts_with('/'));
        assert_eq!(l("/p/with:colon").path, "/p/with:colon");
        assert_eq!(l("/repo/").canonical_path(), "/repo");
    }

    #[test]
    fn ssh_forms() {
        let a = l("ssh://user@host:2222/abs/path::ar");
        assert_eq!(a.proto, Proto::Ssh);
        assert_eq!(a.user.as_deref(), Some("user"));
        assert_eq!(a.host.as_deref(), Some("host"));
        assert_eq!(a.port, Some(2222));
        assert_eq!(a.path, "/abs/path");
        assert_eq!(a.archive.as_deref(), Some("ar"));
        assert_eq!(a.canonical_path(), "ssh://user@host:2222/abs/path");
        let b = l("ssh://host/./rel");
        assert_eq!(b.path, "/./rel");
        assert_eq!(b.canonical_path(), "ssh://host/./rel");
        let c = l("ssh://h/~/repo");
        assert_eq!(c.path, "/~/repo");
        let v6 = l("ssh://u@[::1]:22/p::x");
        assert_eq!(v6.host.as_deref(), Some("[::1]"));
        assert_eq!(v6.host_plain().as_deref(), Some("::1"));
        assert_eq!(v6.archive.as_deref(), Some("x"));
    }

    #[test]
    fn scp_forms() {
        let a = l("user@host:rel/path");
        assert_eq!((a.proto.clone(), a.path.as_str()), (Proto::Ssh, "rel/path"));
        assert_eq!(a.canonical_path(), "ssh://user@host/./rel/path");
        let b = l("host:~/repo::a");
        assert_eq!(b.canonical_path(), "ssh://host/~/repo");
        assert_eq!(b.archive.as_deref(), Some("a"));
        let c = l("host:/abs");
        assert_eq!(c.path, "/abs");
    }

    #[test]
    fn invalid() {
        for bad in [
            "",
            "::",
            "/p::",
            "/p::a/b",
            "ssh://host",
            "ssh://host:x/p",
            ":foo",
        ] {
            assert!(Location::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn normpath_matches_python() {
        for (i, o) in [
            ("a/./b/", "a/b"),
            ("/../a", "/a"),
            ("../a/..", ".."),
            ("//x//y", "//x/y"),
            ("///x", "/x"),
            ("a/..", "."),
        ] {
            assert_eq!(normpath(i), o, "{i}");
        }
    }

    #[test]
    fn key_file_names() {
        assert_eq!(l("/tmp/my repo.x").key_file_name(), "tmp_my_repo_x");
        assert_eq!(
            l("ssh://u@h.example:22/srv/r").key_file_name(),
            "h_example__srv_r"
        );
    }
}
