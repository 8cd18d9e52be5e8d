//! uid/gid ↔ name lookups (cached), as borg's `uid2user`/`user2uid`.

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::path::PathBuf;
use std::sync::Mutex;

static USER_CACHE: Mutex<Option<HashMap<u32, Option<String>>>> = Mutex::new(None);
static GROUP_CACHE: Mutex<Option<HashMap<u32, Option<String>>>> = Mutex::new(None);
static UID_CACHE: Mutex<Option<HashMap<String, Option<u32>>>> = Mutex::new(None);
static GID_CACHE: Mutex<Option<HashMap<String, Option<u32>>>> = Mutex::new(None);

fn cached<K: std::hash::Hash + Eq + Clone, V: Clone>(
    cache: &Mutex<Option<HashMap<K, V>>>,
    key: &K,
    f: impl FnOnce() -> V,
) -> V {
    let mut g = cache.lock().unwrap_or_else(|e| e.into_inner());
    let map = g.get_or_insert_with(HashMap::new);
    if let Some(v) = map.get(key) {
        return v.clone();
    }
    let v = f();
    map.insert(key.clone(), v.clone());
    v
}

fn pw_by_uid(uid: u32) -> Option<(String, PathBuf)> {
    let mut buf = vec![0u8; 16384];
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: buffers are valid for the call; result points into `pwd`/`buf` on success.
    let rc = unsafe {
        libc::getpwuid_r(
            uid,
            &mut pwd,
            buf.as_mut_ptr() as *mut libc::c_char,
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() {
        return None;
    }
    let name = unsafe { CStr::from_ptr(pwd.pw_name) }
        .to_string_lossy()
        .into_owned();
    let dir = unsafe { CStr::from_ptr(pwd.pw_dir) }
        .to_string_lossy()
        .into_owned();
    Some((name, PathBuf::from(dir)))
}

/// Name of a uid, `None` if unknown.
pub fn uid2user(uid: u32) -> Option<String> {
    cached(&USER_CACHE, &uid, || pw_by_uid(uid).map(|(n, _)| n))
}

/// Name of a gid, `None` if unknown.
pub fn gid2group(gid: u32) -> Option<String> {
    cached(&GROUP_CACHE, &gid, || {
        let mut buf = vec![0u8; 16384];
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::group = std::ptr::null_mut();
        // SAFETY: as above.
        let rc = unsafe {
            libc::getgrgid_r(
                gid,
                &mut grp,
                buf.as_mut_ptr() as *mut libc::c_char,
                buf.len(),
                &mut result,
            )
        };
        if rc != 0 || result.is_null() {
            return None;
        }
        Some(
            unsafe { CStr::from_ptr(grp.gr_name) }
                .to_string_lossy()
                .into_owned(),
        )
    })
}

/// uid of a user name, `None` if unknown.
pub fn user2uid(name: &str) -> Option<u32> {
    cached(&UID_CACHE, &name.to_string(), || {
        let c = CString::new(name).ok()?;
        let mut buf = vec![0u8; 16384];
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: as above.
        let rc = unsafe {
            libc::getpwnam_r(
                c.as_ptr(),
                &mut pwd,
                buf.as_mut_ptr() as *mut libc::c_char,
                buf.len(),
                &mut result,
            )
        };
        (rc == 0 && !result.is_null()).then_some(pwd.pw_uid)
    })
}

/// gid of a group name, `None` if unknown.
pub fn group2gid(name: &str) -> Option<u32> {
    cached(&GID_CACHE, &name.to_string(), || {
        let c = CString::new(name).ok()?;
        let mut buf = vec![0u8; 16384];
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::group = std::ptr::null_mut();
        // SAFETY: as above.
        let rc = unsafe {
            libc::getgrnam_r(
                c.as_ptr(),
                &mut grp,
                buf.as_mut_ptr() as *mut libc::c_char,
                buf.len(),
                &mut result,
            )
        };
        (rc == 0 && !result.is_null()).then_some(grp.gr_gid)
    })
}

/// Home directory of `$USER` or of the current uid (used when `$HOME` is unset).
pub fn home_of_current_user() -> Option<PathBuf> {
    if let Ok(user) = std::env::var("USER") {
        if let Some(uid) = user2uid(&user) {
            if let Some((_, home)) = pw_by_uid(uid) {
                return Some(home);
            }
        }
    }
    // SAFETY: getuid has no preconditions.
    pw_by_uid(unsafe { libc::getuid() }).map(|(_, h)| h)
}

/// Home directory of a named user (for `~user` paths).
pub fn home_of(user: &str) -> Option<PathBuf> {
    pw_by_uid(user2uid(user)?).map(|(_, h)| h)
}

/// The OS user name of this process (BORG_USERNAME overrides it for archive metadata).
pub fn os_username() -> String {
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    uid2user(uid).unwrap_or_else(|| uid.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_known() {
        assert_eq!(uid2user(0).as_deref(), Some("root"));
        assert_eq!(user2uid("root"), Some(0));
        assert_eq!(gid2group(0).as_deref(), Some("root"));
        assert_eq!(group2gid("root"), Some(0));
        assert_eq!(user2uid("no-such-user-rborg"), None);
    }
}
