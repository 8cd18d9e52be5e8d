//! Durable file writes: borg's SyncFile / SaveFile semantics and directory fsync.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// fsyncs a directory so that renames/creations inside it are durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    let f = File::open(dir)?;
    match f.sync_all() {
        // Some file systems refuse fsync on directories; borg ignores that too.
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(()),
        r => r,
    }
}

/// Creates a new file exclusively (fails if it exists), as borg's SyncFile does.
pub fn create_exclusive(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o666)
        .open(path)
}

/// Writes `data` to `path` atomically: temp file in the same directory, fsync, rename, fsync dir.
pub fn save_file(path: &Path, data: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let base = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut rnd = [0u8; 6];
    getrandom::getrandom(&mut rnd).map_err(|e| io::Error::other(e.to_string()))?;
    let tmp: PathBuf = dir.join(format!("{base}-{}.tmp", hex::encode(rnd)));
    let result = (|| {
        let mut f = create_exclusive(&tmp)?;
        f.write_all(data)?;
        f.sync_data()?;
        drop(f);
        fs::rename(&tmp, path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Truncates before unlinking so copy-on-write file systems free the space even when the file
/// is still open elsewhere (borg's `safe_unlink`).
pub fn safe_unlink(path: &Path) -> io::Result<()> {
    if let Ok(f) = OpenOptions::new().write(true).open(path) {
        let _ = f.set_len(0);
    }
    fs::remove_file(path)
}

/// Overwrites a file with random bytes, then removes it (borg's `secure_erase` for config.old,
/// which may contain an old key).
pub fn secure_erase(path: &Path) -> io::Result<()> {
    let len = fs::metadata(path)?.len() as usize;
    {
        let mut f = OpenOptions::new().write(true).open(path)?;
        let mut buf = vec![0u8; len];
        getrandom::getrandom(&mut buf).map_err(|e| io::Error::other(e.to_string()))?;
        f.write_all(&buf)?;
        f.sync_data()?;
    }
    fs::remove_file(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_file_replaces_atomically() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("config");
        save_file(&p, b"one").unwrap();
        save_file(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        // no temp files left behind
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
        assert!(create_exclusive(&p).is_err());
        secure_erase(&p).unwrap();
        assert!(!p.exists());
    }
}
