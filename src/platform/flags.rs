//! Linux inode flags (`FS_IOC_GETFLAGS`/`FS_IOC_SETFLAGS`) stored as BSD `st_flags` values in
//! the item key `bsdflags`, as borg's `get_flags`/`set_flags` (platform/linux.pyx).
//!
//! Mapping (borg 1.2.4 and 1.4.0/1.4.1): `UF_NODUMP` ↔ `FS_NODUMP_FL`, `UF_IMMUTABLE` ↔
//! `FS_IMMUTABLE_FL`, `UF_APPEND` ↔ `FS_APPEND_FL`, `UF_COMPRESSED` ↔ `FS_COMPR_FL`.
//!
//! Setting follows borg ≥ 1.4.2: read the current flags, replace only the NODUMP, IMMUTABLE
//! and APPEND bits, keep every other bit (so flags userspace may not change, e.g. ext4's
//! extents flag, are not reset), give up silently when the flags cannot be read.
//! `UF_COMPRESSED` is not restored (it only affects data written afterwards, and extract sets
//! flags last).

use std::io;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};

use super::xattr::cpath;

/// BSD `st_flags`: do not dump.
pub const UF_NODUMP: u32 = 0x0000_0001;
/// BSD `st_flags`: file may not be changed.
pub const UF_IMMUTABLE: u32 = 0x0000_0002;
/// BSD `st_flags`: writes may only append.
pub const UF_APPEND: u32 = 0x0000_0004;
/// BSD `st_flags`: file is compressed.
pub const UF_COMPRESSED: u32 = 0x0000_0020;

/// Linux inode flag: compress file (`FS_COMPR_FL`).
pub const FS_COMPR_FL: u32 = 0x0000_0004;
/// Linux inode flag: immutable (`FS_IMMUTABLE_FL`).
pub const FS_IMMUTABLE_FL: u32 = 0x0000_0010;
/// Linux inode flag: append only (`FS_APPEND_FL`).
pub const FS_APPEND_FL: u32 = 0x0000_0020;
/// Linux inode flag: no dump (`FS_NODUMP_FL`).
pub const FS_NODUMP_FL: u32 = 0x0000_0040;

/// `(bsd, linux)` pairs reported by [`get`].
pub const BSD_TO_LINUX: [(u32, u32); 4] = [
    (UF_NODUMP, FS_NODUMP_FL),
    (UF_IMMUTABLE, FS_IMMUTABLE_FL),
    (UF_APPEND, FS_APPEND_FL),
    (UF_COMPRESSED, FS_COMPR_FL),
];

/// The Linux flag bits [`set`] changes; all others are preserved.
pub const SET_MASK: u32 = FS_NODUMP_FL | FS_IMMUTABLE_FL | FS_APPEND_FL;

/// Setting inode flags failed.
#[derive(Debug, thiserror::Error)]
#[error("{}: {op} flags: {source}", .path.display())]
pub struct FlagsError {
    pub path: PathBuf,
    /// `"stat"`, `"opening"` or `"setting"`.
    pub op: &'static str,
    #[source]
    pub source: io::Error,
}

impl FlagsError {
    /// The raw OS error number.
    pub fn errno(&self) -> Option<i32> {
        self.source.raw_os_error()
    }
}

/// BSD flag value for Linux inode flags (unmapped bits are dropped).
pub fn linux_to_bsd(linux: u32) -> u32 {
    BSD_TO_LINUX
        .iter()
        .filter(|(_, l)| linux & l != 0)
        .fold(0, |acc, (b, _)| acc | b)
}

/// Linux inode flags for a BSD flag value (unmapped bits are dropped).
pub fn bsd_to_linux(bsd: u32) -> u32 {
    BSD_TO_LINUX
        .iter()
        .filter(|(b, _)| bsd & b != 0)
        .fold(0, |acc, (_, l)| acc | l)
}

fn skipped_type(st_mode: u32) -> bool {
    matches!(
        st_mode & libc::S_IFMT,
        libc::S_IFBLK | libc::S_IFCHR | libc::S_IFLNK
    )
}

/// An fd we opened ourselves and must close.
struct OwnedFd(RawFd);

impl Drop for OwnedFd {
    fn drop(&mut self) {
        // SAFETY: we own this fd.
        unsafe { libc::close(self.0) };
    }
}

fn open_nofollow(path: &Path) -> io::Result<OwnedFd> {
    let c = cpath(path)?;
    // SAFETY: valid C string.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(OwnedFd(fd))
    }
}

fn ioctl_getflags(fd: RawFd) -> io::Result<u32> {
    let mut flags: libc::c_int = 0;
    // SAFETY: FS_IOC_GETFLAGS writes one int to the pointer.
    let rv = unsafe { libc::ioctl(fd, libc::FS_IOC_GETFLAGS, &mut flags as *mut libc::c_int) };
    if rv == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(flags as u32)
    }
}

fn ioctl_setflags(fd: RawFd, flags: u32) -> io::Result<()> {
    let flags = flags as libc::c_int;
    // SAFETY: FS_IOC_SETFLAGS reads one int from the pointer.
    let rv = unsafe { libc::ioctl(fd, libc::FS_IOC_SETFLAGS, &flags as *const libc::c_int) };
    if rv == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The raw Linux inode flags of `path`/`fd` (`FS_IOC_GETFLAGS`), for tests and diagnostics.
pub fn get_linux(path: &Path, fd: Option<RawFd>) -> io::Result<u32> {
    match fd {
        Some(fd) => ioctl_getflags(fd),
        None => ioctl_getflags(open_nofollow(path)?.0),
    }
}

/// The `bsdflags` value borg stores for a file (`0` = store nothing).
///
/// Block/char devices and symlinks are never opened (→ 0). Without `fd` the path is opened
/// `O_RDONLY|O_NONBLOCK|O_NOFOLLOW`; failure to open or an unsupported ioctl gives 0.
pub fn get(path: &Path, st_mode: u32, fd: Option<RawFd>) -> u32 {
    if skipped_type(st_mode) {
        return 0;
    }
    get_linux(path, fd).map(linux_to_bsd).unwrap_or(0)
}

/// Restores archived `bsdflags` on `path` (through `fd` when given).
///
/// Without `fd`: devices and symlinks (by `lstat`) are skipped; the path is opened
/// `O_RDONLY|O_NONBLOCK|O_NOFOLLOW`. The current flags are read and only [`SET_MASK`] bits
/// replaced; unreadable flags or `EOPNOTSUPP`/`ENOTTY` from the set ioctl mean "not
/// supported" and are not errors. Nothing is written when nothing changes. Call this last
/// (IMMUTABLE/APPEND block later changes). borg ignores the returned errors.
pub fn set(path: &Path, fd: Option<RawFd>, bsd_flags: u32) -> Result<(), FlagsError> {
    let err = |op, source| FlagsError {
        path: path.to_path_buf(),
        op,
        source,
    };
    let owned;
    let fd = match fd {
        Some(fd) => fd,
        None => {
            let c = cpath(path).map_err(|e| err("stat", e))?;
            let mut st: libc::stat = unsafe { std::mem::zeroed() };
            // SAFETY: valid C string and out-pointer.
            if unsafe { libc::lstat(c.as_ptr(), &mut st) } < 0 {
                return Err(err("stat", io::Error::last_os_error()));
            }
            if skipped_type(st.st_mode) {
                return Ok(());
            }
            owned = open_nofollow(path).map_err(|e| err("opening", e))?;
            owned.0
        }
    };
    let Ok(old) = ioctl_getflags(fd) else {
        return Ok(());
    };
    let new = (old & !SET_MASK) | (bsd_to_linux(bsd_flags) & SET_MASK);
    if new == old {
        return Ok(());
    }
    match ioctl_setflags(fd, new) {
        Ok(()) => Ok(()),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EOPNOTSUPP) | Some(libc::ENOTTY)
            ) =>
        {
            Ok(())
        }
        Err(e) => Err(err("setting", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn mapping() {
        assert_eq!(linux_to_bsd(0), 0);
        assert_eq!(linux_to_bsd(FS_NODUMP_FL), UF_NODUMP);
        assert_eq!(
            linux_to_bsd(FS_NODUMP_FL | FS_IMMUTABLE_FL | FS_APPEND_FL | FS_COMPR_FL | 0x80000),
            UF_NODUMP | UF_IMMUTABLE | UF_APPEND | UF_COMPRESSED
        );
        assert_eq!(linux_to_bsd(0x80000 | 0x1), 0);
        assert_eq!(
            bsd_to_linux(UF_APPEND | UF_COMPRESSED | 0x8),
            FS_APPEND_FL | FS_COMPR_FL
        );
        for (bsd, linux) in BSD_TO_LINUX {
            assert_eq!(linux_to_bsd(bsd_to_linux(bsd)), bsd);
            assert_eq!(bsd_to_linux(linux_to_bsd(linux)), linux);
        }
    }

    #[test]
    fn devices_and_symlinks_give_zero() {
        assert_eq!(get(Path::new("/dev/null"), 0o020666, None), 0);
        let dir = tempfile::tempdir().unwrap();
        let l = dir.path().join("l");
        std::os::unix::fs::symlink("/nonexistent", &l).unwrap();
        assert_eq!(get(&l, 0o120777, None), 0);
        assert!(set(&l, None, UF_NODUMP).is_ok());
        assert_eq!(get(&dir.path().join("missing"), 0o100644, None), 0);
        assert!(set(&dir.path().join("missing"), None, UF_NODUMP).is_err());
    }

    #[test]
    fn nodump_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, b"x").unwrap();
        let mode = std::fs::metadata(&f).unwrap().mode();
        let before = match get_linux(&f, None) {
            Ok(v) => v,
            Err(e) => {
                eprintln!("FS_IOC_GETFLAGS unsupported here: {e}");
                assert_eq!(get(&f, mode, None), 0);
                return;
            }
        };
        set(&f, None, UF_NODUMP).unwrap();
        let after = get_linux(&f, None).unwrap();
        if after & FS_NODUMP_FL == 0 {
            eprintln!("nodump not supported by this file system");
            return;
        }
        // Other bits (e.g. ext4 extents) are preserved.
        assert_eq!(after, before | FS_NODUMP_FL);
        assert_eq!(get(&f, mode, None), UF_NODUMP);
        let file = std::fs::File::open(&f).unwrap();
        use std::os::fd::AsRawFd;
        assert_eq!(get(&f, mode, Some(file.as_raw_fd())), UF_NODUMP);
        set(&f, Some(file.as_raw_fd()), 0).unwrap();
        assert_eq!(get_linux(&f, None).unwrap(), before);
        assert_eq!(get(&f, mode, None), 0);
    }
}
