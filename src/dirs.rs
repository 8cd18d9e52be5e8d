//! borg's client-side locations: base, config, cache, security and keys directories.
//!
//! Resolution follows borg 1.4: explicit `BORG_*_DIR` variables win; `BORG_BASE_DIR` replaces
//! `$HOME` and disables the XDG variables; otherwise XDG, otherwise `~/.config/borg`,
//! `~/.cache/borg`.

use std::env;
use std::path::PathBuf;

fn nonempty(var: &str) -> Option<String> {
    env::var_os(var)
        .map(|v| v.to_string_lossy().into_owned())
        .filter(|v| !v.is_empty())
}

/// `BORG_BASE_DIR`, else `$HOME`, else the passwd home of `$USER` or of the current uid.
pub fn base_dir() -> PathBuf {
    if let Some(b) = nonempty("BORG_BASE_DIR").or_else(|| nonempty("HOME")) {
        return PathBuf::from(b);
    }
    crate::platform::users::home_of_current_user().unwrap_or_else(|| PathBuf::from("/"))
}

fn home_kind(sub: &str, xdg: &str) -> PathBuf {
    if nonempty("BORG_BASE_DIR").is_none() {
        if let Some(x) = nonempty(xdg) {
            return PathBuf::from(x);
        }
    }
    base_dir().join(sub)
}

/// borg's config directory (keys and security info live below it by default).
pub fn config_dir() -> PathBuf {
    match env::var_os("BORG_CONFIG_DIR") {
        Some(d) => PathBuf::from(d),
        None => home_kind(".config", "XDG_CONFIG_HOME").join("borg"),
    }
}

/// borg's cache directory.
pub fn cache_dir() -> PathBuf {
    match env::var_os("BORG_CACHE_DIR") {
        Some(d) => PathBuf::from(d),
        None => home_kind(".cache", "XDG_CACHE_HOME").join("borg"),
    }
}

/// Parent of the per-repository security directories.
pub fn security_root() -> PathBuf {
    match env::var_os("BORG_SECURITY_DIR") {
        Some(d) => PathBuf::from(d),
        None => config_dir().join("security"),
    }
}

/// Where keyfile-mode keys are stored and searched.
pub fn keys_dir() -> PathBuf {
    match env::var_os("BORG_KEYS_DIR") {
        Some(d) => PathBuf::from(d),
        None => config_dir().join("keys"),
    }
}

/// Creates a directory (and parents) with mode 0777 & ~umask, as borg's `ensure_dir`.
pub fn ensure_dir(path: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(path)
}

/// The content that marks a cache directory (CACHEDIR.TAG protocol).
pub const CACHE_TAG_SIGNATURE: &[u8] = b"Signature: 8a477f597d28d172789f06886806bc55";

/// Creates the cache dir with its CACHEDIR.TAG, like borg does on first use.
pub fn ensure_cache_dir() -> std::io::Result<PathBuf> {
    let dir = cache_dir();
    ensure_dir(&dir)?;
    let tag = dir.join("CACHEDIR.TAG");
    if !tag.exists() {
        let mut content = CACHE_TAG_SIGNATURE.to_vec();
        content.extend_from_slice(
            b"\n# This file is a cache directory tag created by Borg.\n\
# For information about cache directory tags, see:\n\
#       http://www.bford.info/cachedir/spec.html\n",
        );
        crate::repo::local::atomic::save_file(&tag, &content)?;
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    // Environment variables are process-global: serialise the tests that touch them.
    pub(crate) static ENV_LOCK: Mutex<()> = Mutex::new(());

    #[test]
    fn resolution_order() {
        let _g = ENV_LOCK.lock().unwrap();
        let saved: Vec<_> = [
            "BORG_BASE_DIR",
            "BORG_CONFIG_DIR",
            "BORG_CACHE_DIR",
            "BORG_SECURITY_DIR",
            "BORG_KEYS_DIR",
            "XDG_CONFIG_HOME",
            "XDG_CACHE_HOME",
            "HOME",
        ]
        .iter()
        .map(|k| (*k, env::var_os(k)))
        .collect();
        for (k, _) in &saved {
            env::remove_var(k);
        }
        env::set_var("HOME", "/h");
        assert_eq!(config_dir(), PathBuf::from("/h/.config/borg"));
        assert_eq!(keys_dir(), PathBuf::from("/h/.config/borg/keys"));
        env::set_var("XDG_CACHE_HOME", "/x");
        assert_eq!(cache_dir(), PathBuf::from("/x/borg"));
        env::set_var("BORG_BASE_DIR", "/b");
        assert_eq!(cache_dir(), PathBuf::from("/b/.cache/borg"));
        assert_eq!(security_root(), PathBuf::from("/b/.config/borg/security"));
        env::set_var("BORG_SECURITY_DIR", "/s");
        assert_eq!(security_root(), PathBuf::from("/s"));
        for (k, v) in saved {
            match v {
                Some(v) => env::set_var(k, v),
                None => env::remove_var(k),
            }
        }
    }
}
