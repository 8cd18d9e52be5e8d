//! Interoperability of `rborg::platform::{acl, xattr, flags}` with borg's own functions.
//!
//! 1. Files get ACLs (`setfacl`), xattrs (`setfattr`) and inode flags (`chattr`); rborg's
//!    getters must return exactly what borg 1.2.4's `acl_get`, `xattr.get_all` and `get_flags`
//!    return for the same paths (with and without numeric ids, by path and by fd).
//! 2. The reverse: rborg's setters restore those values on fresh files; borg's getters,
//!    `getfacl` and `getfattr` must see the same as on the originals.
//! 3. Archived ACL texts (incl. unknown names, stored ids, the `\t` quirk) are applied by
//!    borg's `acl_set` and by rborg's `acl::set`; the resulting ACLs must be identical.
//!
//! borg is a test dependency: these tests FAIL (they do not skip) when borg 1.2 cannot be
//! imported by `/usr/bin/python3` (override with `RBORG_BORG_PYTHON=/path/to/python3`), or
//! when `setfacl`/`getfacl`/`setfattr`/`getfattr` are missing. borg 1.4 at /opt/borg14 is
//! checked too when present.

use std::ffi::OsStr;
use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use rborg::platform::{acl, flags, users, xattr};
use serde_json::Value;

/// Prints, for every path on the command line, what borg's getters return (bytes as hex).
const GET_SCRIPT: &str = r#"
import errno, os, sys, json
import borg
from borg.platform import acl_get, get_flags
from borg import xattr
res = {"version": borg.__version__, "files": []}
for p in sys.argv[1:]:
    pb = os.fsencode(p)
    st = os.lstat(pb)
    r = {}
    for num in (False, True):
        item = {}
        try:
            acl_get(pb, item, st, numeric_ids=num)
        except OSError as e:
            # borg 1.4 raises for symlinks; its archive.py ignores ENOTSUP like this.
            if e.errno != errno.ENOTSUP:
                raise
        r["acl_num" if num else "acl"] = {k: v.hex() for k, v in item.items()}
    x = xattr.get_all(pb, follow_symlinks=False)
    r["xattrs"] = {k.hex(): (None if v is None else v.hex()) for k, v in x.items()}
    r["flags"] = get_flags(pb, st)
    res["files"].append(r)
print(json.dumps(res))
"#;

/// Applies ACL texts with borg's `acl_set`: argv = (path, access_hex, default_hex, numeric)*.
const SET_SCRIPT: &str = r#"
import os, sys
import borg
from borg.platform import acl_set
a = sys.argv[1:]
for i in range(0, len(a), 4):
    pb = os.fsencode(a[i])
    st = os.lstat(pb)
    item = {"mode": st.st_mode}
    if a[i + 1] != "-":
        item["acl_access"] = bytes.fromhex(a[i + 1])
    if a[i + 2] != "-":
        item["acl_default"] = bytes.fromhex(a[i + 2])
    acl_set(pb, item, numeric_ids=(a[i + 3] == "1"))
print("ok", borg.__version__)
"#;

fn borg12() -> String {
    std::env::var("RBORG_BORG_PYTHON").unwrap_or_else(|_| "/usr/bin/python3".into())
}

const BORG14: &str = "/opt/borg14/bin/python";

fn python_run(python: &str, script: &str, args: &[&OsStr]) -> String {
    let out = Command::new(python)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e} (borg is required for this test)"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{python} with borg failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// borg's getter results for `paths`, checking the borg version prefix.
fn borg_get(python: &str, version: &str, paths: &[PathBuf]) -> Vec<Value> {
    let args: Vec<&OsStr> = paths.iter().map(|p| p.as_os_str()).collect();
    let out = python_run(python, GET_SCRIPT, &args);
    let v: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    let got = v["version"].as_str().unwrap();
    assert!(
        got.starts_with(version),
        "{python} is borg {got}, want {version}"
    );
    let files = v["files"].as_array().unwrap().clone();
    assert_eq!(files.len(), paths.len());
    files
}

/// Runs a tool that must exist and succeed.
fn tool(cmd: &str, args: &[&OsStr]) -> Vec<u8> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e} (required for this test)"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn setfacl(args: &[&str], p: &Path) {
    let mut a: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    a.push(p.as_os_str());
    tool("setfacl", &a);
}

fn setfattr(name: &str, value: &str, p: &Path) {
    tool(
        "setfattr",
        &[
            OsStr::new("-h"),
            OsStr::new("-n"),
            OsStr::new(name),
            OsStr::new("-v"),
            OsStr::new(value),
            p.as_os_str(),
        ],
    );
}

/// `getfacl -n` without the `# file:` header (which names the path).
fn getfacl(p: &Path) -> String {
    let out = tool(
        "getfacl",
        &[
            OsStr::new("-n"),
            OsStr::new("-p"),
            OsStr::new("--"),
            p.as_os_str(),
        ],
    );
    String::from_utf8_lossy(&out)
        .lines()
        .filter(|l| !l.starts_with("# file:"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `getfattr -h -d -m - -e hex` without the header and the ACL xattrs, sorted.
fn getfattr(p: &Path) -> Vec<String> {
    let out = tool(
        "getfattr",
        &[
            OsStr::new("-h"),
            OsStr::new("-d"),
            OsStr::new("-m"),
            OsStr::new("-"),
            OsStr::new("-e"),
            OsStr::new("hex"),
            OsStr::new("--"),
            p.as_os_str(),
        ],
    );
    let mut v: Vec<String> = String::from_utf8_lossy(&out)
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with("# file:"))
        .filter(|l| !l.starts_with("system.posix_acl_"))
        .map(str::to_owned)
        .collect();
    v.sort();
    v
}

fn hex_of(v: &Value) -> Option<Vec<u8>> {
    v.as_str().map(|s| hex::decode(s).unwrap())
}

/// `(acl_access, acl_default)` from one of borg's acl dicts.
fn borg_acl(v: &Value) -> acl::AclTexts {
    let m = v.as_object().unwrap();
    for k in m.keys() {
        assert!(
            k == "acl_access" || k == "acl_default",
            "unexpected key {k}"
        );
    }
    (
        m.get("acl_access").and_then(hex_of),
        m.get("acl_default").and_then(hex_of),
    )
}

/// borg's xattrs as rborg represents them (empty value: borg `None`, rborg empty).
fn borg_xattrs(v: &Value) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out: Vec<_> = v
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            let val = hex_of(v).unwrap_or_default();
            assert!(
                v.is_null() || !val.is_empty(),
                "borg stores empty values as None"
            );
            (hex::decode(k).unwrap(), val)
        })
        .collect();
    out.sort();
    out
}

fn is_root() -> bool {
    // SAFETY: no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A uid/gid without a name here.
fn unknown_id(start: u32) -> u32 {
    (start..60000)
        .find(|&i| users::uid2user(i).is_none() && users::gid2group(i).is_none())
        .unwrap()
}

/// Whether `chattr FLAG` works on `p` (checked with our own getter).
fn try_chattr(flag: &str, p: &Path) -> bool {
    Command::new("chattr")
        .arg(flag)
        .arg(p)
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Clears immutable/append flags we set, so the temp dir can be removed even on failure.
struct ClearFlags(Vec<PathBuf>);

impl Drop for ClearFlags {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = flags::set(p, None, 0);
        }
    }
}

struct Fixture {
    path: PathBuf,
    is_dir: bool,
}

/// Files and directories covering the interesting cases.
fn make_fixtures(dir: &Path, cleanup: &mut ClearFlags) -> Vec<Fixture> {
    let x = unknown_id(4242);
    let mut out = Vec::new();
    let file = |name: &[u8], mode: u32| {
        let p = dir.join(OsStr::from_bytes(name));
        fs::write(&p, b"data").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        p
    };
    let plain = file(b"plain", 0o644);
    let f_acl = file(b"f_acl", 0o640);
    setfacl(&["-m", "u:nobody:rw-"], &f_acl);
    let f_mask = file(b"f_mask", 0o644);
    setfacl(&["-m", "u:nobody:rw-,g:nogroup:r--,m::r--"], &f_mask);
    let f_unknown = file(b"f_unknown", 0o600);
    setfacl(
        &[
            "-m",
            &format!("u:{x}:rwx,g:{x}:r-x,u:root:--x,g:daemon:rw-"),
        ],
        &f_unknown,
    );
    let f_groupobj = file(b"f_groupobj", 0o664);
    setfacl(&["-m", "u:bin:r--,m::r--"], &f_groupobj);
    let f_x = file(b"f_\xff xattr", 0o644);
    setfattr("user.foo", "bar", &f_x);
    setfattr("user.empty", "", &f_x);
    setfattr("user.bin", "0x00ff10", &f_x);
    setfattr("user.long", &"v".repeat(3000), &f_x);
    if is_root() {
        setfattr("trusted.rborg", "t", &f_x);
    }
    setfacl(&["-m", "g:daemon:r-x"], &f_x);
    let nodump = file(b"nodump", 0o644);
    let _ = try_chattr("+d", &nodump);
    let append = file(b"append", 0o644);
    if is_root() && try_chattr("+a", &append) {
        cleanup.0.push(append.clone());
    }
    for p in [
        plain, f_acl, f_mask, f_unknown, f_groupobj, f_x, nodump, append,
    ] {
        out.push(Fixture {
            path: p,
            is_dir: false,
        });
    }

    let mkdir = |name: &str, mode: u32| {
        let p = dir.join(name);
        fs::create_dir(&p).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        p
    };
    let d_plain = mkdir("d_plain", 0o755);
    let d_default = mkdir("d_default", 0o750);
    setfacl(&["-d", "-m", "u:nobody:rwx"], &d_default);
    let d_access = mkdir("d_access", 0o755);
    setfacl(&["-m", "u:nobody:r-x"], &d_access);
    let d_both = mkdir("d_both", 0o700);
    setfacl(&["-m", &format!("u:{x}:rwx,g:nogroup:r-x,m::r-x")], &d_both);
    setfacl(
        &["-d", "-m", &format!("u:nobody:rwx,g:{x}:rw-,m::r--")],
        &d_both,
    );
    setfattr("user.dir", "yes", &d_both);
    let d_base = mkdir("d_base", 0o751);
    setfacl(&["-d", "-m", "g::r-x"], &d_base);
    let d_nodump = mkdir("d_nodump", 0o755);
    let _ = try_chattr("+d", &d_nodump);
    for p in [d_plain, d_default, d_access, d_both, d_base, d_nodump] {
        out.push(Fixture {
            path: p,
            is_dir: true,
        });
    }

    // No ACLs/xattrs/flags possible: symlink and fifo.
    let link = dir.join("link");
    std::os::unix::fs::symlink(dir.join("f_acl"), &link).unwrap();
    out.push(Fixture {
        path: link,
        is_dir: false,
    });
    let fifo = dir.join("fifo");
    let c = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
    // SAFETY: valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    out.push(Fixture {
        path: fifo,
        is_dir: false,
    });
    out
}

/// Opens a fixture like borg's create does (files O_RDONLY|O_NOFOLLOW|O_NONBLOCK, dirs with
/// O_DIRECTORY); `None` for symlinks.
fn open_like_borg(f: &Fixture) -> Option<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let md = fs::symlink_metadata(&f.path).unwrap();
    if md.file_type().is_symlink() {
        return None;
    }
    let mut flags = libc::O_NOFOLLOW | libc::O_NONBLOCK;
    if f.is_dir {
        flags |= libc::O_DIRECTORY;
    }
    Some(
        fs::OpenOptions::new()
            .read(true)
            .custom_flags(flags)
            .open(&f.path)
            .unwrap(),
    )
}

fn compare_getters(python: &str, version: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let mut cleanup = ClearFlags(Vec::new());
    let fixtures = make_fixtures(tmp.path(), &mut cleanup);
    let paths: Vec<PathBuf> = fixtures.iter().map(|f| f.path.clone()).collect();
    let borg = borg_get(python, version, &paths);
    let mut with_acl = 0;
    let mut with_default = 0;
    let mut with_xattrs = 0;
    let mut with_flags = 0;
    let mut tab_quirk = 0;
    for (f, b) in fixtures.iter().zip(&borg) {
        let name = f.path.display();
        let md = fs::symlink_metadata(&f.path).unwrap();
        let fd = open_like_borg(f);
        let fd = fd.as_ref().map(|f| f.as_raw_fd());
        for (numeric, key) in [(false, "acl"), (true, "acl_num")] {
            let want = borg_acl(&b[key]);
            let got = acl::get(&f.path, None, f.is_dir, numeric).unwrap();
            assert_eq!(got, want, "acl {name} numeric={numeric}");
            let got = acl::get(&f.path, fd, f.is_dir, numeric).unwrap();
            assert_eq!(got, want, "acl by fd {name} numeric={numeric}");
            if !numeric {
                with_acl += want.0.is_some() as usize;
                with_default += want.1.as_ref().is_some_and(|d| !d.is_empty()) as usize;
                tab_quirk += want.0.as_ref().is_some_and(|a| a.contains(&b'\t')) as usize;
            }
        }
        let want = borg_xattrs(&b["xattrs"]);
        let got = xattr::get_all(&f.path, None).unwrap();
        assert!(got.warnings.is_empty(), "{:?}", got.warnings);
        assert_eq!(got.attrs, want, "xattrs {name}");
        let got = xattr::get_all(&f.path, fd).unwrap();
        assert_eq!(got.attrs, want, "xattrs by fd {name}");
        with_xattrs += !want.is_empty() as usize;

        let want = b["flags"].as_u64().unwrap() as u32;
        assert_eq!(flags::get(&f.path, md.mode(), None), want, "flags {name}");
        assert_eq!(
            flags::get(&f.path, md.mode(), fd),
            want,
            "flags by fd {name}"
        );
        with_flags += (want != 0) as usize;
    }
    // The fixtures really exercised something.
    assert_eq!(with_acl, 9, "files with ACLs");
    assert_eq!(with_default, 3, "dirs with default ACLs");
    assert!(tab_quirk >= 2, "entries with the effective-rights tab");
    assert!(with_xattrs >= 2);
    // nodump: both must agree (checked above); report whether the fs supported it.
    let nodump = fixtures
        .iter()
        .position(|f| f.path.ends_with("nodump"))
        .unwrap();
    let supported = flags::get_linux(&fixtures[nodump].path, None)
        .map(|f| f & flags::FS_NODUMP_FL != 0)
        .unwrap_or(false);
    if supported {
        assert_eq!(
            borg[nodump]["flags"].as_u64(),
            Some(flags::UF_NODUMP as u64)
        );
        assert!(with_flags >= 2);
    } else {
        eprintln!("chattr +d unsupported on this file system: flags are 0 on both sides");
        assert_eq!(with_flags, 0);
    }
}

#[test]
fn getters_match_borg_12() {
    compare_getters(&borg12(), "1.2");
}

#[test]
fn getters_match_borg_14_when_installed() {
    if !Path::new(BORG14).exists() {
        eprintln!("borg 1.4 not installed at /opt/borg14: skipped (borg 1.2 test is mandatory)");
        return;
    }
    compare_getters(BORG14, "1.4");
}

/// A fresh object of the same type and mode as `f`.
fn fresh_like(f: &Fixture, dir: &Path, i: usize) -> Option<PathBuf> {
    let md = fs::symlink_metadata(&f.path).unwrap();
    let p = dir.join(format!("fresh{i}"));
    if md.is_dir() {
        fs::create_dir(&p).unwrap();
    } else if md.is_file() {
        fs::write(&p, b"data").unwrap();
    } else {
        return None;
    }
    fs::set_permissions(&p, fs::Permissions::from_mode(md.mode() & 0o7777)).unwrap();
    Some(p)
}

#[test]
fn setters_verified_by_borg_and_tools() {
    let python = borg12();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    let mut cleanup = ClearFlags(Vec::new());
    let fixtures = make_fixtures(&src, &mut cleanup);
    let paths: Vec<PathBuf> = fixtures.iter().map(|f| f.path.clone()).collect();
    let orig = borg_get(&python, "1.2", &paths);

    for numeric in [false, true] {
        let dst = tmp.path().join(format!("dst{}", numeric as u8));
        fs::create_dir(&dst).unwrap();
        let mut pairs = Vec::new();
        for (i, (f, b)) in fixtures.iter().zip(&orig).enumerate() {
            let Some(p) = fresh_like(f, &dst, i) else {
                continue;
            };
            let (access, default) = borg_acl(&b[if numeric { "acl_num" } else { "acl" }]);
            acl::set(&p, None, access.as_deref(), default.as_deref(), numeric)
                .unwrap_or_else(|e| panic!("{e}"));
            let x = borg_xattrs(&b["xattrs"]);
            let errs = xattr::set_all(&p, None, &x);
            assert!(errs.is_empty(), "{errs:?}");
            let fl = b["flags"].as_u64().unwrap() as u32;
            if fl != 0 {
                if fl & (flags::UF_APPEND | flags::UF_IMMUTABLE) != 0 {
                    cleanup.0.push(p.clone());
                }
                flags::set(&p, None, fl).unwrap();
            }
            pairs.push((i, f, p));
        }
        let fresh: Vec<PathBuf> = pairs.iter().map(|(_, _, p)| p.clone()).collect();
        let got = borg_get(&python, "1.2", &fresh);
        for ((i, f, p), g) in pairs.iter().zip(&got) {
            let o = &orig[*i];
            let name = f.path.display();
            assert_eq!(
                g["acl"], o["acl"],
                "acl of {name} restored numeric={numeric}"
            );
            assert_eq!(g["acl_num"], o["acl_num"], "acl of {name} restored");
            assert_eq!(g["xattrs"], o["xattrs"], "xattrs of {name} restored");
            assert_eq!(g["flags"], o["flags"], "flags of {name} restored");
            assert_eq!(getfacl(p), getfacl(&f.path), "getfacl {name}");
            assert_eq!(getfattr(p), getfattr(&f.path), "getfattr {name}");
            assert_eq!(
                fs::metadata(p).unwrap().mode(),
                fs::metadata(&f.path).unwrap().mode(),
                "mode of {name}"
            );
        }
    }
}

#[test]
fn flags_set_preserves_other_bits_and_borg_sees_them() {
    let python = borg12();
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("f");
    fs::write(&p, b"x").unwrap();
    let mode = fs::metadata(&p).unwrap().mode();
    let before = match flags::get_linux(&p, None) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("FS_IOC_GETFLAGS unsupported: {e}");
            assert_eq!(flags::get(&p, mode, None), 0);
            assert_eq!(
                borg_get(&python, "1.2", std::slice::from_ref(&p))[0]["flags"],
                0
            );
            return;
        }
    };
    flags::set(&p, None, flags::UF_NODUMP).unwrap();
    let after = flags::get_linux(&p, None).unwrap();
    let b = borg_get(&python, "1.2", std::slice::from_ref(&p));
    if after & flags::FS_NODUMP_FL == 0 {
        eprintln!("nodump unsupported on this file system");
        assert_eq!(b[0]["flags"], 0);
        return;
    }
    assert_eq!(after, before | flags::FS_NODUMP_FL);
    assert_eq!(b[0]["flags"], flags::UF_NODUMP as u64);
    let lsattr = tool("lsattr", &[OsStr::new("-d"), p.as_os_str()]);
    let attrs = String::from_utf8_lossy(&lsattr);
    assert!(
        attrs.split_whitespace().next().unwrap().contains('d'),
        "{attrs}"
    );
    flags::set(&p, None, 0).unwrap();
    assert_eq!(flags::get_linux(&p, None).unwrap(), before);
    assert_eq!(
        borg_get(&python, "1.2", std::slice::from_ref(&p))[0]["flags"],
        0
    );
}

#[test]
fn archived_acl_texts_apply_like_borg_acl_set() {
    let python = borg12();
    let tmp = tempfile::tempdir().unwrap();
    let x = unknown_id(4300);
    let y = unknown_id(x + 1);
    let nobody = users::user2uid("nobody").expect("user nobody");
    // (access, default, is_dir) as found in archives, incl. names unknown here.
    let cases: Vec<(String, Option<String>, bool)> = vec![
        (
            "user::rw-\nuser:nobody:rw-:65534\ngroup::r--\nmask::rw-\nother::r--".into(),
            None,
            false,
        ),
        (
            format!("user::rw-\nuser:nosuchuser-rborg:rw-\t:{x}\ngroup::r--\ngroup:nosuchgroup-rborg:r--:{y}\nmask::r--\nother::r--"),
            None,
            false,
        ),
        (
            // The name is known here but with a stored id from elsewhere.
            format!("user::rw-\nuser:nobody:r--:{x}\ngroup::rw-\t\ngroup:root:r--:{y}\nmask::r--\nother::---"),
            None,
            false,
        ),
        (
            "user::rwx\ngroup::r-x\nother::r-x".into(),
            Some(format!("user::rwx\nuser:{x}:rwx:{x}\ngroup::r-x\nmask::rwx\nother::r-x")),
            true,
        ),
        (
            format!("user::rwx\nuser:daemon:r-x:{nobody}\ngroup::r-x\nmask::r-x\nother::r-x"),
            Some(String::new()),
            true,
        ),
    ];
    for numeric in [false, true] {
        let mut args: Vec<PathBuf> = Vec::new();
        let mut script_args: Vec<std::ffi::OsString> = Vec::new();
        for (i, (access, default, is_dir)) in cases.iter().enumerate() {
            let mk = |tag: &str| {
                let p = tmp.path().join(format!("{tag}{}_{i}", numeric as u8));
                if *is_dir {
                    fs::create_dir(&p).unwrap();
                } else {
                    fs::write(&p, b"").unwrap();
                }
                p
            };
            let (pb, pr) = (mk("borg"), mk("rborg"));
            acl::set(
                &pr,
                None,
                Some(access.as_bytes()),
                default.as_deref().map(str::as_bytes),
                numeric,
            )
            .unwrap_or_else(|e| panic!("case {i}: {e}"));
            script_args.push(pb.clone().into_os_string());
            script_args.push(hex::encode(access).into());
            script_args.push(default.as_ref().map_or("-".into(), hex::encode).into());
            script_args.push(if numeric { "1" } else { "0" }.into());
            args.push(pb);
            args.push(pr);
        }
        let a: Vec<&OsStr> = script_args.iter().map(|s| s.as_os_str()).collect();
        let out = python_run(&python, SET_SCRIPT, &a);
        assert!(out.starts_with("ok 1.2"), "{out}");
        for pair in args.chunks(2) {
            let (b, r) = (getfacl(&pair[0]), getfacl(&pair[1]));
            assert_eq!(r, b, "{} vs {}", pair[1].display(), pair[0].display());
        }
    }
    // Spot check of the id choice: unknown name → stored id; known name → local id unless
    // numeric ids are used.
    let acl_of =
        |i: usize, numeric: bool| getfacl(&tmp.path().join(format!("rborg{}_{i}", numeric as u8)));
    assert!(acl_of(1, false).contains(&format!("user:{x}:rw-")));
    assert!(acl_of(2, false).contains(&format!("user:{nobody}:r--")));
    assert!(acl_of(2, true).contains(&format!("user:{x}:r--")));
    assert!(acl_of(4, false).contains("user:1:r-x"));
    assert!(acl_of(4, true).contains(&format!("user:{nobody}:r-x")));
}
