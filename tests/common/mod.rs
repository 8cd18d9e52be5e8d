//! Shared harness for the end-to-end and interop tests: an isolated environment per test
//! (own BORG_BASE_DIR, keys, security dir, caches) and runners for rborg and real borg.
//!
//! Real borg is required: tests fail (they do not skip) when it is missing. `.ci/run`
//! installs borg 1.2.4 (Debian) and borg 1.4 (venv at /opt/borg14). Override the binaries
//! with `RBORG_BIN`, `BORG12_BIN`, `BORG14_BIN`.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub fn rborg_bin() -> PathBuf {
    match std::env::var_os("RBORG_BIN") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_BIN_EXE_rborg")),
    }
}

pub fn borg12_bin() -> PathBuf {
    let p = std::env::var_os("BORG12_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/borg"));
    assert!(
        p.exists(),
        "real borg 1.2 not found at {} (install Debian's borgbackup; .ci/run does)",
        p.display()
    );
    p
}

pub fn borg14_bin() -> PathBuf {
    let p = std::env::var_os("BORG14_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/borg14/bin/borg"));
    assert!(p.exists(), "real borg 1.4 not found at {} (pip install 'borgbackup==1.4.*' into /opt/borg14; .ci/run does)", p.display());
    p
}

/// Both borg versions the suite checks against.
pub fn borgs() -> Vec<(&'static str, PathBuf)> {
    vec![("borg-1.2", borg12_bin()), ("borg-1.4", borg14_bin())]
}

#[derive(Debug)]
pub struct Out {
    pub rc: i32,
    pub stdout: String,
    pub stderr: String,
    pub what: String,
}

impl Out {
    #[track_caller]
    pub fn ok(&self) -> &Self {
        assert_eq!(
            self.rc, 0,
            "{} failed (rc {}):\nstdout: {}\nstderr: {}",
            self.what, self.rc, self.stdout, self.stderr
        );
        self
    }
    #[track_caller]
    pub fn rc(&self, rc: i32) -> &Self {
        assert_eq!(
            self.rc, rc,
            "{}: expected rc {rc}, got {}:\nstdout: {}\nstderr: {}",
            self.what, self.rc, self.stdout, self.stderr
        );
        self
    }
    #[track_caller]
    pub fn stderr_has(&self, s: &str) -> &Self {
        assert!(
            self.stderr.contains(s),
            "{}: stderr lacks {s:?}:\n{}",
            self.what,
            self.stderr
        );
        self
    }
    /// No Rust panic message anywhere (panic=abort would hide them from the exit code).
    #[track_caller]
    pub fn no_panic(&self) -> &Self {
        assert!(
            !self.stderr.contains("panicked at") && !self.stderr.contains("RUST_BACKTRACE"),
            "{}: panicked:\n{}",
            self.what,
            self.stderr
        );
        self
    }
}

pub struct Env {
    pub dir: tempfile::TempDir,
    pub vars: BTreeMap<String, String>,
    pub cwd: PathBuf,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::Builder::new()
            .prefix("rborg-test.")
            .tempdir()
            .expect("tempdir");
        let mut vars = BTreeMap::new();
        vars.insert(
            "BORG_BASE_DIR".into(),
            dir.path().join("home").display().to_string(),
        );
        vars.insert("BORG_PASSPHRASE".into(), "test-passphrase".into());
        vars.insert(
            "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK".into(),
            "yes".into(),
        );
        vars.insert("BORG_RELOCATED_REPO_ACCESS_IS_OK".into(), "yes".into());
        vars.insert("BORG_CHECK_I_KNOW_WHAT_I_AM_DOING".into(), "YES".into());
        vars.insert("BORG_DELETE_I_KNOW_WHAT_I_AM_DOING".into(), "YES".into());
        vars.insert("TZ".into(), "UTC".into());
        let cwd = dir.path().to_path_buf();
        Env { dir, vars, cwd }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    pub fn p(&self, rel: &str) -> String {
        self.path(rel).display().to_string()
    }

    pub fn set(&mut self, k: &str, v: &str) {
        self.vars.insert(k.into(), v.into());
    }
    pub fn unset(&mut self, k: &str) {
        self.vars.remove(k);
    }

    fn command(&self, bin: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(bin);
        c.args(args);
        c.env_clear();
        c.env("PATH", std::env::var("PATH").unwrap_or_default());
        c.env("LANG", "C.UTF-8");
        c.env("HOME", self.path("home"));
        for (k, v) in &self.vars {
            c.env(k, v);
        }
        c.current_dir(&self.cwd);
        c.stdin(Stdio::null());
        c
    }

    pub fn run_bin(&self, bin: &Path, args: &[&str], stdin: Option<&[u8]>) -> Out {
        let mut c = self.command(bin, args);
        if stdin.is_some() {
            c.stdin(Stdio::piped());
        }
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = c
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
        if let Some(data) = stdin {
            use std::io::Write;
            let mut si = child.stdin.take().expect("stdin");
            let data = data.to_vec();
            std::thread::spawn(move || {
                let _ = si.write_all(&data);
            });
        }
        let o = child.wait_with_output().expect("wait");
        Out {
            rc: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
            what: format!(
                "{} {}",
                bin.file_name().unwrap_or_default().to_string_lossy(),
                args.join(" ")
            ),
        }
    }

    pub fn rborg(&self, args: &[&str]) -> Out {
        let o = self.run_bin(&rborg_bin(), args, None);
        o.no_panic();
        o
    }
    pub fn rborg_in(&self, args: &[&str], stdin: &[u8]) -> Out {
        let o = self.run_bin(&rborg_bin(), args, Some(stdin));
        o.no_panic();
        o
    }
    pub fn borg(&self, bin: &Path, args: &[&str]) -> Out {
        self.run_bin(bin, args, None)
    }
    pub fn borg12(&self, args: &[&str]) -> Out {
        self.run_bin(&borg12_bin(), args, None)
    }
    pub fn borg14(&self, args: &[&str]) -> Out {
        self.run_bin(&borg14_bin(), args, None)
    }

    /// Spawns a process in the background (e.g. `borg with-lock ... sleep`).
    pub fn spawn(&self, bin: &Path, args: &[&str]) -> std::process::Child {
        let mut c = self.command(bin, args);
        c.stdout(Stdio::null()).stderr(Stdio::null());
        c.spawn().expect("spawn")
    }

    /// Spawns a process in the background with its stderr going to `log`.
    pub fn spawn_logged(&self, bin: &Path, args: &[&str], log: &Path) -> std::process::Child {
        let mut c = self.command(bin, args);
        let f = std::fs::File::create(log).expect("log file");
        c.stdout(Stdio::null()).stderr(f);
        c.spawn().expect("spawn")
    }
}

/// Deterministic incompressible bytes (xorshift), different for each `seed`.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// Builds a tree with every file type borg stores (plus content that spans chunks).
pub fn make_tree(root: &Path) {
    use std::os::unix::fs::{symlink, PermissionsExt};
    let w = |p: &str, data: &[u8]| {
        let f = root.join(p);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, data).unwrap();
    };
    std::fs::create_dir_all(root.join("dir/sub")).unwrap();
    w("hello.txt", b"hello rborg\n");
    w("empty", b"");
    w("dir/sub/nested.txt", b"nested\n");
    w("dir/grüße.txt", "unicode name\n".as_bytes());
    // 3 MiB of pseudo-random data (several chunks with small chunker params)
    let mut data = Vec::with_capacity(3 << 20);
    let mut x: u64 = 0x9e3779b97f4a7c15;
    while data.len() < 3 << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes());
    }
    w("big.bin", &data);
    // compressible text
    let text: Vec<u8> = (0..20000)
        .flat_map(|i| format!("line {i} of some text\n").into_bytes())
        .collect();
    w("text.log", &text);
    w("hl-a", b"hardlinked content\n");
    std::fs::hard_link(root.join("hl-a"), root.join("hl-b")).unwrap();
    symlink("hello.txt", root.join("link")).unwrap();
    symlink("/nonexistent/target", root.join("dangling")).unwrap();
    let fifo = std::ffi::CString::new(root.join("fifo").as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: valid C string.
    unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) };
    // a sparse file: 1 MiB hole, data, hole
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::File::create(root.join("sparse")).unwrap();
        f.seek(SeekFrom::Start(1 << 20)).unwrap();
        f.write_all(b"data in the middle").unwrap();
        f.set_len(3 << 20).unwrap();
    }
    std::fs::set_permissions(
        root.join("hello.txt"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    std::fs::set_permissions(root.join("dir/sub"), std::fs::Permissions::from_mode(0o750)).unwrap();
    // xattrs and ACLs when the file system supports them
    let _ = Command::new("setfattr")
        .args(["-n", "user.comment", "-v", "hello"])
        .arg(root.join("hello.txt"))
        .status();
    let _ = Command::new("setfacl")
        .args(["-m", "u:nobody:rw-"])
        .arg(root.join("text.log"))
        .status();
    let _ = Command::new("setfacl")
        .args(["-d", "-m", "g:nogroup:r-x"])
        .arg(root.join("dir"))
        .status();
    // a char device (needs root; tests run as root in CI)
    let dev = std::ffi::CString::new(root.join("null-dev").as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: valid C string; failure (not root) is tolerated.
    unsafe { libc::mknod(dev.as_ptr(), libc::S_IFCHR | 0o600, libc::makedev(1, 3)) };
    // fixed mtimes (ns) so restores can be compared exactly
    set_mtimes(root);
}

fn set_mtimes(root: &Path) {
    let mut paths = Vec::new();
    fn walk(p: &Path, out: &mut Vec<PathBuf>) {
        out.push(p.to_path_buf());
        if p.is_dir() && !p.is_symlink() {
            for e in std::fs::read_dir(p).unwrap().flatten() {
                walk(&e.path(), out);
            }
        }
    }
    walk(root, &mut paths);
    for (i, p) in paths.iter().rev().enumerate() {
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        let t = libc::timespec {
            tv_sec: 1_700_000_000 + i as libc::time_t,
            tv_nsec: 123_456_789,
        };
        // SAFETY: valid path and timespecs.
        unsafe {
            libc::utimensat(
                libc::AT_FDCWD,
                c.as_ptr(),
                [t, t].as_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
    }
}

/// Compares a restored tree with its source: type, mode, owner, size, content, symlink
/// target, ns mtime, hardlink structure, xattrs, ACLs. Returns a list of differences.
pub fn tree_diff(a: &Path, b: &Path) -> Vec<String> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut diffs = Vec::new();
    let mut ino_a: BTreeMap<u64, String> = BTreeMap::new();
    let mut ino_b: BTreeMap<u64, String> = BTreeMap::new();
    fn list(root: &Path, p: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(p).unwrap().flatten() {
            let rel = e.path().strip_prefix(root).unwrap().display().to_string();
            out.push(rel);
            if e.file_type().unwrap().is_dir() {
                list(root, &e.path(), out);
            }
        }
    }
    let (mut la, mut lb) = (Vec::new(), Vec::new());
    list(a, a, &mut la);
    list(b, b, &mut lb);
    la.sort();
    lb.sort();
    if la != lb {
        diffs.push(format!("entries differ:\n{la:?}\n{lb:?}"));
        return diffs;
    }
    for rel in &la {
        let (pa, pb) = (a.join(rel), b.join(rel));
        let (ma, mb) = (
            std::fs::symlink_metadata(&pa).unwrap(),
            std::fs::symlink_metadata(&pb).unwrap(),
        );
        if ma.mode() != mb.mode() {
            diffs.push(format!("{rel}: mode {:o} vs {:o}", ma.mode(), mb.mode()));
        }
        if (ma.uid(), ma.gid()) != (mb.uid(), mb.gid()) {
            diffs.push(format!("{rel}: owner differs"));
        }
        let ft = ma.file_type();
        if ft.is_file() {
            if std::fs::read(&pa).unwrap() != std::fs::read(&pb).unwrap() {
                diffs.push(format!("{rel}: content differs"));
            }
            if (ma.mtime(), ma.mtime_nsec()) != (mb.mtime(), mb.mtime_nsec()) {
                diffs.push(format!("{rel}: mtime differs"));
            }
            if ma.nlink() > 1 {
                let ga = ino_a.entry(ma.ino()).or_insert_with(|| rel.clone()).clone();
                let gb = ino_b.entry(mb.ino()).or_insert_with(|| rel.clone()).clone();
                if ga != gb {
                    diffs.push(format!("{rel}: hardlink group differs ({ga} vs {gb})"));
                }
            }
        }
        if ft.is_symlink() && std::fs::read_link(&pa).unwrap() != std::fs::read_link(&pb).unwrap() {
            diffs.push(format!("{rel}: symlink target differs"));
        }
        if (ft.is_char_device() || ft.is_block_device()) && ma.rdev() != mb.rdev() {
            diffs.push(format!("{rel}: rdev differs"));
        }
        if !ft.is_symlink() {
            for tool in [["getfattr", "-d"], ["getfacl", "-cp"]] {
                let run = |p: &Path| {
                    Command::new(tool[0]).arg(tool[1]).arg(p).output().map(|o| {
                        String::from_utf8_lossy(&o.stdout)
                            .lines()
                            .filter(|l| !l.starts_with("# file"))
                            .collect::<Vec<_>>()
                            .join("\n")
                    })
                };
                if let (Ok(x), Ok(y)) = (run(&pa), run(&pb)) {
                    if x != y {
                        diffs.push(format!("{rel}: {} differs:\n{x}\nvs\n{y}", tool[0]));
                    }
                }
            }
        }
    }
    diffs
}

/// Allocated blocks of a file (to check holes were restored).
pub fn allocated_bytes(p: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p).map(|m| m.blocks() * 512).unwrap_or(0)
}

/// Apparent size of a directory tree in bytes.
pub fn du_bytes(p: &Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let m = e.metadata().unwrap();
            if m.is_dir() {
                total += du_bytes(&e.path());
            } else {
                total += m.len();
            }
        }
    }
    total
}

pub const MODES: [&str; 7] = [
    "none",
    "authenticated",
    "authenticated-blake2",
    "repokey",
    "keyfile",
    "repokey-blake2",
    "keyfile-blake2",
];

/// Unpacks the repository borg 1.2.4 wrote (tests/data) into the env's directory, sets its
/// passphrase; returns the repository path.
pub fn unpack_borg_fixture(env: &mut Env) -> String {
    let st = Command::new("tar")
        .args([
            "xzf",
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/data/borg124-repokey-repo.tar.gz"
            ),
            "-C",
        ])
        .arg(env.dir.path())
        .status()
        .expect("tar");
    assert!(st.success(), "unpacking the fixture repository failed");
    env.set("BORG_PASSPHRASE", "rborg-fixture");
    env.p("repo")
}
