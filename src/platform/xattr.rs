//! Extended attributes (Linux), read and written the way borg 1.x does (`borg/xattr.py` +
//! `borg/platform/linux.pyx`).
//!
//! * Symlinks are never followed: with a path the `l*xattr` calls are used, with an fd the
//!   `f*xattr` calls.
//! * `system.posix_acl_*` names are skipped (ACLs live in `acl_access`/`acl_default`, see
//!   [`super::acl`]), as are empty names.
//! * A name that vanished between listing and reading (`ENODATA`) is skipped silently; any
//!   other per-name error is a warning and the name is skipped.
//! * A file system without xattr support (`ENOTSUP`) or a refused listing (`EPERM`) gives an
//!   empty result, not an error.
//!
//! Values are raw bytes. Note for the item layer: borg stores an *empty* value as msgpack
//! `nil` (`getxattr(...) or None`) and treats `nil` as an empty value when extracting; this
//! module represents such a value as an empty `Vec`.

use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Name prefix of the POSIX ACL xattrs, which are never part of `xattrs`.
pub const ACL_PREFIX: &[u8] = b"system.posix_acl_";

/// Initial buffer size for list/get; grown on `ERANGE`.
const INITIAL_BUF: usize = 4096;

/// An xattr operation that failed, for a path and (when it concerns one attribute) a name.
#[derive(Debug, thiserror::Error)]
#[error("{}: {op} extended attribute{}: {source}", .path.display(), name_suffix(.name))]
pub struct XattrError {
    /// The file the operation was for (also when it was done through an fd).
    pub path: PathBuf,
    /// The attribute name, if the error concerns a single attribute.
    pub name: Option<Vec<u8>>,
    /// What was attempted: `"listing"`, `"getting"` or `"setting"`.
    pub op: &'static str,
    /// The OS error.
    #[source]
    pub source: io::Error,
}

impl XattrError {
    /// The raw OS error number, if any.
    pub fn errno(&self) -> Option<i32> {
        self.source.raw_os_error()
    }
}

fn name_suffix(name: &Option<Vec<u8>>) -> String {
    match name {
        Some(n) => format!(" {}", String::from_utf8_lossy(n)),
        None => String::new(),
    }
}

/// All extended attributes of a file plus the per-name problems met while reading them.
#[derive(Debug, Default)]
pub struct XattrList {
    /// `(name, value)` pairs sorted by name (borg packs them as a sorted map).
    pub attrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// Names that could not be read (other than vanished ones); borg logs these as warnings.
    pub warnings: Vec<XattrError>,
}

/// Where an xattr call goes: an open fd, or a path that is not followed if it is a symlink.
#[derive(Clone, Copy)]
pub(crate) enum Target<'a> {
    Fd(RawFd),
    Path(&'a CStr),
}

/// `path` as a C string; an interior NUL is reported as `EINVAL`.
pub(crate) fn cpath(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn cname(name: &[u8]) -> io::Result<CString> {
    CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn check(rv: libc::ssize_t) -> io::Result<usize> {
    if rv < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rv as usize)
    }
}

/// Calls `f(buf, size)` with a growing buffer until the result fits (`ERANGE` → ask for the
/// size with a NULL buffer and retry).
fn sized_call(mut f: impl FnMut(*mut u8, usize) -> libc::ssize_t) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; INITIAL_BUF];
    loop {
        match check(f(buf.as_mut_ptr(), buf.len())) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(e) if e.raw_os_error() == Some(libc::ERANGE) => {
                let need = check(f(std::ptr::null_mut(), 0))?;
                // The value may grow again between the two calls: leave some room.
                buf.resize(need.max(buf.len()) + INITIAL_BUF, 0);
            }
            Err(e) => return Err(e),
        }
    }
}

/// The raw, NUL-separated name list.
pub(crate) fn list_raw(t: Target<'_>) -> io::Result<Vec<u8>> {
    sized_call(|buf, size| {
        // SAFETY: `buf` is either NULL with size 0 or valid for `size` bytes; the C strings
        // outlive the call.
        unsafe {
            match t {
                Target::Fd(fd) => libc::flistxattr(fd, buf as *mut libc::c_char, size),
                Target::Path(p) => libc::llistxattr(p.as_ptr(), buf as *mut libc::c_char, size),
            }
        }
    })
}

/// One attribute value.
pub(crate) fn get_raw(t: Target<'_>, name: &CStr) -> io::Result<Vec<u8>> {
    sized_call(|buf, size| {
        // SAFETY: as in `list_raw`.
        unsafe {
            match t {
                Target::Fd(fd) => {
                    libc::fgetxattr(fd, name.as_ptr(), buf as *mut libc::c_void, size)
                }
                Target::Path(p) => {
                    libc::lgetxattr(p.as_ptr(), name.as_ptr(), buf as *mut libc::c_void, size)
                }
            }
        }
    })
}

/// One attribute value, `None` if the attribute does not exist (`ENODATA`).
pub(crate) fn get_opt(t: Target<'_>, name: &CStr) -> io::Result<Option<Vec<u8>>> {
    match get_raw(t, name) {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.raw_os_error() == Some(libc::ENODATA) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Sets one attribute (create or replace).
pub(crate) fn set_raw(t: Target<'_>, name: &CStr, value: &[u8]) -> io::Result<()> {
    let v = value.as_ptr() as *const libc::c_void;
    // SAFETY: `value` is valid for `value.len()` bytes; the C strings outlive the call.
    let rv = unsafe {
        match t {
            Target::Fd(fd) => libc::fsetxattr(fd, name.as_ptr(), v, value.len(), 0),
            Target::Path(p) => libc::lsetxattr(p.as_ptr(), name.as_ptr(), v, value.len(), 0),
        }
    };
    if rv < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Splits a NUL-terminated name list, dropping empty names and the POSIX ACL names (as
/// borg's `listxattr` does).
pub fn split_names(buf: &[u8]) -> Vec<Vec<u8>> {
    let body = buf.strip_suffix(b"\0").unwrap_or(buf);
    if body.is_empty() {
        return Vec::new();
    }
    body.split(|&b| b == 0)
        .filter(|n| !n.is_empty() && !n.starts_with(ACL_PREFIX))
        .map(<[u8]>::to_vec)
        .collect()
}

/// The names of all extended attributes of `path` (or `fd`), without the POSIX ACL names,
/// in the order the kernel lists them. Errors are returned as they come (no ENOTSUP mapping).
pub fn list(path: &Path, fd: Option<RawFd>) -> Result<Vec<Vec<u8>>, XattrError> {
    let err = |source| XattrError {
        path: path.to_path_buf(),
        name: None,
        op: "listing",
        source,
    };
    let c;
    let t = match fd {
        Some(fd) => Target::Fd(fd),
        None => {
            c = cpath(path).map_err(err)?;
            Target::Path(&c)
        }
    };
    list_raw(t).map(|b| split_names(&b)).map_err(err)
}

/// All extended attributes of `path` (through `fd` when given; symlinks are not followed), as
/// borg's `xattr.get_all(fd or path, follow_symlinks=False)`.
///
/// `ENOTSUP`/`EPERM` while listing give an empty list; any other listing error is returned.
/// Per name: `ENODATA` (removed since listing) is skipped silently, other errors are collected
/// in [`XattrList::warnings`] and that name is skipped.
pub fn get_all(path: &Path, fd: Option<RawFd>) -> Result<XattrList, XattrError> {
    let c;
    let t = match fd {
        Some(fd) => Target::Fd(fd),
        None => {
            c = cpath(path).map_err(|source| XattrError {
                path: path.to_path_buf(),
                name: None,
                op: "listing",
                source,
            })?;
            Target::Path(&c)
        }
    };
    let mut out = XattrList::default();
    let names = match list_raw(t) {
        Ok(buf) => split_names(&buf),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTSUP) | Some(libc::EPERM)) => {
            return Ok(out)
        }
        Err(source) => {
            return Err(XattrError {
                path: path.to_path_buf(),
                name: None,
                op: "listing",
                source,
            })
        }
    };
    for name in names {
        let res = cname(&name).and_then(|n| get_raw(t, &n));
        match res {
            Ok(v) => out.attrs.push((name, v)),
            Err(e) if e.raw_os_error() == Some(libc::ENODATA) => {}
            Err(source) => out.warnings.push(XattrError {
                path: path.to_path_buf(),
                name: Some(name),
                op: "getting",
                source,
            }),
        }
    }
    out.attrs.sort();
    Ok(out)
}

/// Sets every attribute of `xattrs` on `path` (through `fd` when given; symlinks are not
/// followed), as borg's `xattr.set_all`. Failures do not stop the loop; each is returned
/// (borg logs them as warnings, e.g. `EPERM` for `trusted.*` as non-root, `ENOTSUP`, `E2BIG`,
/// or `ENOSPC` for a value too big for ext4). An empty result means everything was set.
pub fn set_all(path: &Path, fd: Option<RawFd>, xattrs: &[(Vec<u8>, Vec<u8>)]) -> Vec<XattrError> {
    let mut errors = Vec::new();
    let c;
    let t = match fd {
        Some(fd) => Target::Fd(fd),
        None => match cpath(path) {
            Ok(p) => {
                c = p;
                Target::Path(&c)
            }
            Err(source) => {
                errors.push(XattrError {
                    path: path.to_path_buf(),
                    name: None,
                    op: "setting",
                    source,
                });
                return errors;
            }
        },
    };
    for (name, value) in xattrs {
        if let Err(source) = cname(name).and_then(|n| set_raw(t, &n, value)) {
            errors.push(XattrError {
                path: path.to_path_buf(),
                name: Some(name.clone()),
                op: "setting",
                source,
            });
        }
    }
    errors
}

/// Whether `user.*` xattrs can be set and read back on files in `dir` (borg's
/// `xattr.is_enabled`).
pub fn is_enabled(dir: &Path) -> bool {
    let Ok(f) = tempfile_in(dir) else {
        return false;
    };
    let (file, tmp_path) = f;
    use std::os::fd::AsRawFd;
    let fd = file.as_raw_fd();
    let name = c"user.name";
    let ok = set_raw(Target::Fd(fd), name, b"value").is_ok()
        && list_raw(Target::Fd(fd))
            .map(|b| split_names(&b).iter().any(|n| n == b"user.name"))
            .unwrap_or(false)
        && get_raw(Target::Fd(fd), name)
            .map(|v| v == b"value")
            .unwrap_or(false);
    drop(file);
    let _ = std::fs::remove_file(tmp_path);
    ok
}

/// A fresh file in `dir` (no tempfile dependency outside tests).
fn tempfile_in(dir: &Path) -> io::Result<(std::fs::File, PathBuf)> {
    use std::os::unix::fs::OpenOptionsExt;
    let pid = std::process::id();
    for i in 0..100u32 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let p = dir.join(OsStr::from_bytes(
            format!("borg-tmp-xattr-{pid}-{nanos}-{i}").as_bytes(),
        ));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&p)
        {
            Ok(f) => return Ok((f, p)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::from(io::ErrorKind::AlreadyExists))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    fn supported(dir: &Path) -> bool {
        let ok = is_enabled(dir);
        if !ok {
            eprintln!("user xattrs not supported in {}", dir.display());
        }
        ok
    }

    #[test]
    fn split_names_filters_acl_and_empty() {
        assert!(split_names(b"").is_empty());
        assert!(split_names(b"\0").is_empty());
        assert_eq!(
            split_names(
                b"user.a\0system.posix_acl_access\0\0security.x\0system.posix_acl_default\0"
            ),
            vec![b"user.a".to_vec(), b"security.x".to_vec()]
        );
        // Not NUL-terminated (never from the kernel, but accept it).
        assert_eq!(split_names(b"user.a"), vec![b"user.a".to_vec()]);
    }

    #[test]
    fn round_trip_path_and_fd() {
        let dir = tempfile::tempdir().unwrap();
        if !supported(dir.path()) {
            return;
        }
        let p = dir.path().join("f");
        std::fs::write(&p, b"x").unwrap();
        let big = vec![0xa5u8; 3000];
        let want = vec![
            (b"user.a".to_vec(), b"1".to_vec()),
            (b"user.bin".to_vec(), vec![0, 1, 2, 255, 0]),
            (b"user.big".to_vec(), big),
            (b"user.empty".to_vec(), Vec::new()),
            (b"user.\xff\xfe".to_vec(), b"non-utf8 name".to_vec()),
        ];
        assert!(set_all(&p, None, &want).is_empty());
        let mut sorted = want.clone();
        sorted.sort();
        let got = get_all(&p, None).unwrap();
        assert!(got.warnings.is_empty());
        assert_eq!(got.attrs, sorted);
        let f = std::fs::File::open(&p).unwrap();
        let got = get_all(&p, Some(f.as_raw_fd())).unwrap();
        assert_eq!(got.attrs, sorted);
        let mut names = list(&p, None).unwrap();
        names.sort();
        assert_eq!(
            names,
            sorted.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>()
        );

        // Through an fd on a second file.
        let q = dir.path().join("g");
        let g = std::fs::File::create(&q).unwrap();
        assert!(set_all(&q, Some(g.as_raw_fd()), &want).is_empty());
        assert_eq!(get_all(&q, None).unwrap().attrs, sorted);
    }

    #[test]
    fn value_larger_than_initial_buffer() {
        let dir = tempfile::tempdir().unwrap();
        if !supported(dir.path()) {
            return;
        }
        let p = dir.path().join("f");
        std::fs::write(&p, b"").unwrap();
        // ext4 allows up to one block (4 KiB) per value; tmpfs more. Try a size just below.
        let v: Vec<u8> = (0..4000u32).map(|i| i as u8).collect();
        let errs = set_all(&p, None, &[(b"user.v".to_vec(), v.clone())]);
        if errs.is_empty() {
            let got = get_all(&p, None).unwrap();
            assert_eq!(got.attrs, vec![(b"user.v".to_vec(), v)]);
        }
        // Many names: listing larger than the initial buffer.
        let many: Vec<_> = (0..40)
            .map(|i| (format!("user.{i:0>100}").into_bytes(), vec![b'x']))
            .collect();
        let errs = set_all(&p, None, &many);
        if errs.is_empty() {
            let got = get_all(&p, None).unwrap();
            assert!(got.attrs.len() >= 40);
        }
    }

    #[test]
    fn symlink_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        if !supported(dir.path()) {
            return;
        }
        let target = dir.path().join("t");
        std::fs::write(&target, b"").unwrap();
        assert!(set_all(&target, None, &[(b"user.t".to_vec(), b"v".to_vec())]).is_empty());
        let link = dir.path().join("l");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        // The link itself has no xattrs (and user.* cannot be set on symlinks).
        assert!(get_all(&link, None).unwrap().attrs.is_empty());
        let errs = set_all(&link, None, &[(b"user.l".to_vec(), b"v".to_vec())]);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].name.as_deref(), Some(&b"user.l"[..]));
        assert_eq!(get_all(&target, None).unwrap().attrs.len(), 1);
    }

    #[test]
    fn errors_carry_path_and_name() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let e = get_all(&missing, None).unwrap_err();
        assert_eq!(e.errno(), Some(libc::ENOENT));
        assert_eq!(e.path, missing);
        assert!(e.to_string().contains("missing"));
        let errs = set_all(&missing, None, &[(b"user.x".to_vec(), b"1".to_vec())]);
        assert_eq!(errs.len(), 1);
        assert!(errs[0].to_string().contains("user.x"));
        // A name with an interior NUL cannot be set.
        let p = dir.path().join("f");
        std::fs::write(&p, b"").unwrap();
        let errs = set_all(&p, None, &[(b"user.a\0b".to_vec(), b"1".to_vec())]);
        assert_eq!(errs[0].errno(), Some(libc::EINVAL));
        // Unknown namespace.
        let errs = set_all(&p, None, &[(b"bogus.x".to_vec(), b"1".to_vec())]);
        assert_eq!(errs.len(), 1);
    }

    #[test]
    fn acl_names_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"").unwrap();
        let st = std::process::Command::new("setfacl")
            .args(["-m", "u:nobody:rw-"])
            .arg(&p)
            .status();
        if !matches!(st, Ok(s) if s.success()) {
            eprintln!("setfacl unavailable");
            return;
        }
        let c = cpath(&p).unwrap();
        assert!(get_opt(Target::Path(&c), c"system.posix_acl_access")
            .unwrap()
            .is_some());
        assert!(get_all(&p, None).unwrap().attrs.is_empty());
    }
}
