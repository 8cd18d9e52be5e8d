//! Interoperability of rborg's remote client and server with real borg.
//!
//! (a) rborg's client against real `borg serve`, (b) real borg clients against `rborg serve`.
//! No sshd is involved: `BORG_RSH`/`--rsh` point to a small `fake-ssh` script that drops its
//! options and the host argument and runs the remote command through `sh -c`, as sshd would.
//!
//! Requirements: `borg` 1.2 on PATH and borg 1.4 at `/opt/borg14/bin/borg` (or `BORG14_BIN`);
//! these tests fail, not skip, without them.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use rborg::repo::local::lock::LockError;
use rborg::repo::remote::{self, RemoteError, RemoteOptions, RemoteRepository};
use rborg::repo::{Location, ObjectId, OpenOptions, RepoError};

const BORG14: &str = "/opt/borg14/bin/borg";

fn borg_version(borg: &str) -> String {
    let out = Command::new(borg)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("`{borg}` is required for these tests but cannot run: {e}"));
    assert!(out.status.success(), "{borg} --version failed");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The real borg on PATH (required).
fn borg() -> &'static str {
    static CHECK: std::sync::Once = std::sync::Once::new();
    CHECK.call_once(|| {
        let v = borg_version("borg");
        assert!(v.starts_with("borg 1."), "need borg 1.x on PATH, found {v}");
    });
    "borg"
}

/// borg 1.4 is required (CI installs it); a missing one fails the test instead of skipping.
fn borg14() -> Option<&'static str> {
    let p: &'static str = Box::leak(
        std::env::var("BORG14_BIN")
            .unwrap_or_else(|_| BORG14.to_string())
            .into_boxed_str(),
    );
    assert!(
        Path::new(p).exists(),
        "borg 1.4 not found at {p} (.ci/run installs it)"
    );
    Some(p)
}

/// The rborg binary: `<remote-path> serve ...` is how borg starts the server side.
fn serve_bin() -> PathBuf {
    match std::env::var_os("RBORG_BIN") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_BIN_EXE_rborg")),
    }
}

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let e = Env { dir };
        // Drops ssh-style options and the host, then runs the rest like sshd: via a shell.
        e.script(
            "fake-ssh",
            r#"#!/bin/sh
while [ $# -gt 0 ]; do
  case "$1" in
    -p) shift 2;;
    -*) shift;;
    *) break;;
  esac
done
shift
echo $$ > "$(dirname "$0")/last-ssh.pid"
exec sh -c "exec $*"
"#,
        );
        fs::create_dir(e.path("base")).unwrap();
        e
    }
    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }
    fn script(&self, name: &str, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = self.path(name);
        fs::write(&p, body).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        p
    }
    /// An ssh whose "authorized_keys" forces `forced`, exporting the client's command as
    /// SSH_ORIGINAL_COMMAND.
    fn forced_ssh(&self, name: &str, forced: &str) -> PathBuf {
        self.script(
            name,
            &format!(
                r#"#!/bin/sh
while [ $# -gt 0 ]; do
  case "$1" in
    -p) shift 2;;
    -*) shift;;
    *) break;;
  esac
done
shift
SSH_ORIGINAL_COMMAND="$*"
export SSH_ORIGINAL_COMMAND
exec {forced}
"#
            ),
        )
    }
    fn url(&self, repo: &str) -> String {
        format!("ssh://fakehost{}", self.path(repo).display())
    }
    fn borg_cmd(&self, borg: &str, rsh: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(borg);
        c.args(args)
            .env("BORG_RSH", rsh)
            .env("BORG_BASE_DIR", self.path("base"))
            .env("BORG_PASSPHRASE", "secret passphrase")
            .env("BORG_RELOCATED_REPO_ACCESS_IS_OK", "yes")
            .env("BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK", "yes")
            .env("BORG_DELETE_I_KNOW_WHAT_I_AM_DOING", "YES")
            .env_remove("BORG_REPO")
            .env_remove("BORG_REMOTE_PATH")
            .env_remove("SSH_ORIGINAL_COMMAND")
            .stdin(Stdio::null());
        c
    }
    /// Runs borg; returns its output (status not checked).
    fn borg(&self, borg: &str, args: &[&str]) -> Output {
        self.borg_rsh(borg, &self.path("fake-ssh"), args)
    }
    fn borg_rsh(&self, borg: &str, rsh: &Path, args: &[&str]) -> Output {
        self.borg_cmd(borg, rsh, args).output().unwrap()
    }
    fn borg_ok(&self, borg: &str, args: &[&str]) -> Output {
        let out = self.borg(borg, args);
        assert!(
            out.status.success(),
            "{borg} {args:?} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
    fn remote_opts(&self, remote_path: &str) -> RemoteOptions {
        RemoteOptions {
            rsh: Some(self.path("fake-ssh").display().to_string()),
            remote_path: Some(remote_path.into()),
            log_level: Some(rborg::log::Level::Warning),
            ..Default::default()
        }
    }
}

fn oid(i: u32) -> ObjectId {
    let mut id = [0u8; 32];
    id[..4].copy_from_slice(&i.to_be_bytes());
    id[31] = 0xa5;
    ObjectId(id)
}

fn payload(i: u32) -> Vec<u8> {
    let mut v = format!("rborg object {i} ").into_bytes();
    v.resize(100 + (i as usize * 37) % 3000, (i % 251) as u8);
    v
}

fn exclusive() -> OpenOptions {
    OpenOptions {
        exclusive: Some(true),
        ..Default::default()
    }
}

// ---------------------------------------------------------------------------------------------
// (a) rborg client → real `borg serve`

fn client_scenario(env: &Env, borg: &str, expect_version: (u32, u32, u32)) {
    env.borg_ok(
        borg,
        &[
            "init",
            "-e",
            "none",
            &env.path("repo").display().to_string(),
        ],
    );
    let loc = Location::parse(&env.url("repo")).unwrap();
    let repo = remote::open_with(&loc, &exclusive(), &env.remote_opts(borg)).unwrap();
    assert_eq!(repo.server_version(), expect_version);
    let before = repo.len().unwrap();
    assert_eq!(before, 1, "a fresh repo holds just the manifest");
    let n = 1000;
    for i in 0..n {
        repo.put(&oid(i), &payload(i)).unwrap();
    }
    repo.put(&oid(9_999), &vec![0x42; 2 << 20]).unwrap();
    repo.flush().unwrap();
    repo.commit(true, 0.1, false).unwrap();
    assert_eq!(repo.len().unwrap(), before + n as usize + 1);

    // pipelined reads (up to 100 in flight), results in request order
    let t = Instant::now();
    let ids: Vec<ObjectId> = (0..n).rev().map(oid).collect();
    for (i, r) in (0..n).rev().zip(repo.get_many(ids)) {
        assert_eq!(r.unwrap(), payload(i), "object {i}");
    }
    eprintln!("{borg}: get_many of {n} objects took {:?}", t.elapsed());
    assert_eq!(repo.get(&oid(9_999)).unwrap().len(), 2 << 20);

    // errors: a missing object, synchronously and inside get_many
    match repo.get(&oid(123_456)) {
        Err(RepoError::ObjectNotFound(id, l)) => {
            assert_eq!(id, oid(123_456));
            assert_eq!(l, env.url("repo"));
        }
        other => panic!("{other:?}"),
    }
    let mixed: Vec<_> = repo.get_many(vec![oid(1), oid(123_457), oid(2)]).collect();
    assert_eq!(mixed[0].as_ref().unwrap(), &payload(1));
    assert!(matches!(mixed[1], Err(RepoError::ObjectNotFound(..))));
    assert_eq!(mixed[2].as_ref().unwrap(), &payload(2));

    // list in pages, scan
    let mut listed = Vec::new();
    let mut marker = None;
    loop {
        let page = repo.list(Some(250), marker.as_ref()).unwrap();
        if page.is_empty() {
            break;
        }
        marker = page.last().copied();
        listed.extend(page);
    }
    assert_eq!(listed.len(), before + n as usize + 1);
    let scanned = repo.scan(None, None).unwrap();
    assert_eq!(scanned.len(), listed.len());
    let mut a = listed.clone();
    let mut b = scanned.clone();
    a.sort();
    b.sort();
    assert_eq!(a, b);
    assert_eq!(repo.scan(Some(7), None).unwrap(), scanned[..7]);

    // async deletes; a missing one surfaces at flush
    for i in 0..100 {
        repo.delete(&oid(i)).unwrap();
    }
    repo.delete(&oid(424_242)).unwrap();
    assert!(matches!(repo.flush(), Err(RepoError::ObjectNotFound(id, _)) if id == oid(424_242)));
    repo.commit(true, 0.1, false).unwrap();
    assert_eq!(repo.len().unwrap(), before + n as usize + 1 - 100);
    assert!(matches!(
        repo.get(&oid(5)),
        Err(RepoError::ObjectNotFound(..))
    ));

    // rollback of uncommitted work
    repo.put(&oid(777_777), b"gone").unwrap();
    repo.rollback().unwrap();
    assert!(matches!(
        repo.get(&oid(777_777)),
        Err(RepoError::ObjectNotFound(..))
    ));

    // key / nonce methods
    assert!(repo.load_key().unwrap().is_empty());
    let nonce = repo.get_free_nonce().unwrap();
    repo.commit_nonce_reservation(0x2000_0000, nonce).unwrap();
    assert_eq!(repo.get_free_nonce().unwrap(), Some(0x2000_0000));
    assert!(matches!(
        repo.commit_nonce_reservation(0x3000_0000, Some(1)),
        Err(RepoError::NonceMismatch)
    ));
    assert!(repo.check(false, 0).unwrap());
    repo.close().unwrap();
    drop(repo);

    let out = env.borg_ok(
        borg,
        &[
            "check",
            "--repository-only",
            &env.path("repo").display().to_string(),
        ],
    );
    assert!(out.status.success());
}

#[test]
fn rborg_client_against_borg12_serve() {
    let env = Env::new();
    client_scenario(&env, borg(), (1, 2, 4));
}

#[test]
fn rborg_client_against_borg14_serve() {
    borg();
    let Some(b14) = borg14() else {
        eprintln!("{BORG14} not present; 1.2 covered elsewhere");
        return;
    };
    let env = Env::new();
    let v = borg_version(b14);
    let parts: Vec<u32> = v
        .trim_start_matches("borg ")
        .split('.')
        .map(|p| p.parse().unwrap())
        .collect();
    client_scenario(&env, b14, (parts[0], parts[1], parts[2]));
}

#[test]
fn rborg_repo_open_uses_default_options() {
    let env = Env::new();
    env.borg_ok(
        borg(),
        &[
            "init",
            "-e",
            "none",
            &env.path("repo").display().to_string(),
        ],
    );
    remote::set_default_options(RemoteOptions {
        rsh: Some(env.path("fake-ssh").display().to_string()),
        remote_path: Some(borg().into()),
        ..Default::default()
    });
    let loc = Location::parse(&env.url("repo")).unwrap();
    let repo = rborg::repo::open(&loc, &OpenOptions::default()).unwrap();
    assert_eq!(repo.len().unwrap(), 1);
    assert_eq!(repo.location().canonical_path(), env.url("repo"));
    // The manifest is there and readable through the trait.
    assert!(!repo.get(&ObjectId::MANIFEST).unwrap().is_empty());
    // a missing repository
    let missing = Location::parse(&env.url("nope")).unwrap();
    match rborg::repo::open(&missing, &OpenOptions::default()) {
        Err(RepoError::DoesNotExist(p)) => assert_eq!(p, env.url("nope")),
        Err(e) => panic!("{e:?}"),
        Ok(_) => panic!("opened a missing repository"),
    }
}

#[test]
fn rborg_client_errors_from_borg_serve() {
    let env = Env::new();
    let repo_path = env.path("repo").display().to_string();
    env.borg_ok(borg(), &["init", "-e", "none", &repo_path]);
    let loc = Location::parse(&env.url("repo")).unwrap();

    // LockTimeout while another borg holds the exclusive lock.
    let mut holder = env
        .borg_cmd(
            borg(),
            &env.path("fake-ssh"),
            &["with-lock", &repo_path, "sleep", "4"],
        )
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !env.path("repo/lock.exclusive").exists() {
        assert!(
            Instant::now() < deadline,
            "borg with-lock did not take the lock"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let t = Instant::now();
    let r = remote::open_with(
        &loc,
        &OpenOptions {
            lock_wait: 1.0,
            ..exclusive()
        },
        &env.remote_opts(borg()),
    );
    match r {
        Err(RepoError::Lock(LockError::Timeout(p))) => assert!(p.contains("lock")),
        Err(e) => panic!("{e:?}"),
        Ok(_) => panic!("got the lock although borg with-lock holds it"),
    }
    assert!(t.elapsed() < Duration::from_secs(10));
    assert!(holder.wait().unwrap().success());

    // Error reconstruction against the server's own test hook.
    let raw = RemoteRepository::connect(&loc, &exclusive(), &env.remote_opts(borg())).unwrap();
    let inject = |kind: &str| {
        raw.call(
            "inject_exception",
            vec![("kind", rborg::msgpack::Value::from(kind))],
        )
        .unwrap_err()
    };
    assert!(matches!(inject("DoesNotExist"), RepoError::DoesNotExist(p) if p == env.url("repo")));
    assert!(matches!(
        inject("AlreadyExists"),
        RepoError::AlreadyExists(_)
    ));
    assert!(matches!(inject("CheckNeeded"), RepoError::CheckNeeded(_)));
    assert!(matches!(inject("IntegrityError"), RepoError::Integrity(m) if m == "test string"));
    assert!(matches!(
        inject("PathNotAllowed"),
        RepoError::Remote(RemoteError::PathNotAllowed(p)) if p == "foo"
    ));
    assert!(matches!(
        inject("InvalidRPCMethod"),
        RepoError::Remote(RemoteError::InvalidRpcMethod(_))
    ));
    match inject("divide") {
        RepoError::Remote(RemoteError::Rpc { class, message }) => {
            assert_eq!(class, "ZeroDivisionError");
            assert!(message.contains("ZeroDivisionError"), "{message}");
        }
        e => panic!("{e:?}"),
    }
    assert!(matches!(
        raw.call("close", vec![]),
        Err(RepoError::Remote(RemoteError::InvalidRpcMethod(m))) if m == "close"
    ));
    drop(raw);

    // --restrict-to-path in a forced command wins over what the client asks for.
    let forced = env.forced_ssh(
        "forced-ssh",
        &format!(
            "{} serve --restrict-to-path {}",
            borg(),
            env.path("allowed").display()
        ),
    );
    let ro = RemoteOptions {
        rsh: Some(forced.display().to_string()),
        remote_path: Some(borg().into()),
        ..Default::default()
    };
    match remote::open_with(&loc, &OpenOptions::default(), &ro) {
        Err(RepoError::Remote(RemoteError::PathNotAllowed(p))) => assert_eq!(p, repo_path),
        Err(e) => panic!("{e:?}"),
        Ok(_) => panic!("restriction ignored"),
    }

    // The server dies mid-session: ConnectionClosed, no hang, no panic.
    let repo = remote::open_with(&loc, &OpenOptions::default(), &env.remote_opts(borg())).unwrap();
    assert_eq!(repo.len().unwrap(), 1);
    let pid: i32 = fs::read_to_string(env.path("last-ssh.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SAFETY: plain kill(2) of the server process this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    let t = Instant::now();
    let r = repo.len();
    assert!(
        matches!(r, Err(RepoError::Remote(RemoteError::ConnectionClosed))),
        "{r:?}"
    );
    let r: Vec<_> = repo.get_many((0..500).map(oid).collect()).collect();
    assert!(r.len() <= 1 && r.iter().all(|x| x.is_err()));
    assert!(repo.put(&oid(1), b"x").is_err() || repo.flush().is_err());
    assert!(t.elapsed() < Duration::from_secs(10));
}

// ---------------------------------------------------------------------------------------------
// (b) real borg client → rborg serve

fn make_tree(root: &Path) {
    fs::create_dir_all(root.join("sub/deeper")).unwrap();
    fs::write(root.join("hello.txt"), b"hello world\n").unwrap();
    fs::write(root.join("sub/empty"), b"").unwrap();
    let big: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    fs::write(root.join("sub/deeper/big.bin"), &big).unwrap();
    std::os::unix::fs::symlink("hello.txt", root.join("link")).unwrap();
}

fn same_tree(a: &Path, b: &Path) {
    for rel in ["hello.txt", "sub/empty", "sub/deeper/big.bin"] {
        assert_eq!(
            fs::read(a.join(rel)).unwrap(),
            fs::read(b.join(rel)).unwrap(),
            "{rel}"
        );
    }
    assert_eq!(
        fs::read_link(b.join("link")).unwrap(),
        PathBuf::from("hello.txt")
    );
}

fn borg_client_scenario(borg: &str) {
    let env = Env::new();
    let serve = serve_bin();
    let rp = serve.display().to_string();
    let url = env.url("repo");
    make_tree(&env.path("data"));
    let data = env.path("data").display().to_string();
    env.borg_ok(borg, &["init", "-e", "repokey", "--remote-path", &rp, &url]);
    env.borg_ok(
        borg,
        &[
            "create",
            "--remote-path",
            &rp,
            &format!("{url}::first"),
            &data,
        ],
    );
    fs::write(env.path("data/hello.txt"), b"changed\n").unwrap();
    env.borg_ok(
        borg,
        &[
            "create",
            "--remote-path",
            &rp,
            &format!("{url}::second"),
            &data,
        ],
    );
    fs::write(env.path("data/hello.txt"), b"hello world\n").unwrap();
    let out = env.borg_ok(borg, &["list", "--short", "--remote-path", &rp, &url]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "first\nsecond\n");
    let out = env.borg_ok(
        borg,
        &[
            "list",
            "--short",
            "--remote-path",
            &rp,
            &format!("{url}::first"),
        ],
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("sub/deeper/big.bin"));

    let dest = env.path("restore");
    fs::create_dir(&dest).unwrap();
    let out = env
        .borg_cmd(
            borg,
            &env.path("fake-ssh"),
            &["extract", "--remote-path", &rp, &format!("{url}::first")],
        )
        .current_dir(&dest)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    same_tree(&env.path("data"), &dest.join(data.trim_start_matches('/')));

    env.borg_ok(borg, &["check", "--remote-path", &rp, &url]);
    env.borg_ok(
        borg,
        &["delete", "--remote-path", &rp, &format!("{url}::first")],
    );
    env.borg_ok(borg, &["compact", "--remote-path", &rp, &url]);
    env.borg_ok(borg, &["check", "--remote-path", &rp, &url]);
    let out = env.borg_ok(borg, &["list", "--short", "--remote-path", &rp, &url]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "second\n");
    // and the repository is a plain borg repository for a local borg, too
    env.borg_ok(borg, &["check", &env.path("repo").display().to_string()]);
    // remote log lines reach the client (borg prints them prefixed "Remote: ")
    let out = env.borg_ok(borg, &["list", "--debug", "--remote-path", &rp, &url]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Remote: Resolved repository path to"), "{err}");
}

#[test]
fn borg12_client_against_rborg_serve() {
    borg_client_scenario(borg());
}

#[test]
fn borg14_client_against_rborg_serve() {
    borg();
    match borg14() {
        Some(b) => borg_client_scenario(b),
        None => eprintln!("{BORG14} not present; skipped the 1.4 client run"),
    }
}

/// A `--remote-path` program that runs `rborg serve <opts>`: borg appends `serve <client
/// options>` to the remote path, and server options must follow the subcommand.
fn serve_with(env: &Env, name: &str, opts: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let p = env.path(name);
    fs::write(
        &p,
        format!(
            "#!/bin/sh\nshift\nexec '{}' serve {opts} \"$@\"\n",
            serve_bin().display()
        ),
    )
    .unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    p.display().to_string()
}

#[test]
fn rborg_serve_restrictions_and_append_only() {
    let env = Env::new();
    let serve = serve_bin().display().to_string();
    fs::create_dir(env.path("allowed")).unwrap();
    make_tree(&env.path("data"));
    let data = env.path("data").display().to_string();
    let restricted = serve_with(
        &env,
        "serve-restricted",
        &format!("--restrict-to-path {}", env.path("allowed").display()),
    );
    for b in [Some(borg()), borg14()].into_iter().flatten() {
        let out = env.borg(
            b,
            &[
                "init",
                "-e",
                "none",
                "--remote-path",
                &restricted,
                &env.url("elsewhere"),
            ],
        );
        assert_eq!(out.status.code(), Some(2), "{b}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("Repository path not allowed"), "{b}: {err}");
        assert!(!env.path("elsewhere").exists());
    }
    env.borg_ok(
        borg(),
        &[
            "init",
            "-e",
            "none",
            "--remote-path",
            &restricted,
            &env.url("allowed/repo"),
        ],
    );

    // A forced command keeps its restriction even if the client asks for something else.
    let forced = env.forced_ssh(
        "forced-ssh",
        &format!(
            "{serve} serve --restrict-to-path {}",
            env.path("allowed").display()
        ),
    );
    let out = env.borg_rsh(
        borg(),
        &forced,
        &[
            "init",
            "-e",
            "none",
            "--remote-path",
            &serve_with(&env, "serve-root", "--restrict-to-path /"),
            &env.url("sneaky"),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Repository path not allowed"));
    assert!(!env.path("sneaky").exists());
    let out = env.borg_rsh(borg(), &forced, &["list", &env.url("allowed/repo")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // --append-only: init makes a normal repository; writes only append; destroy is refused.
    let ao = serve_with(&env, "serve-ao", "--append-only");
    let url = env.url("ao");
    env.borg_ok(borg(), &["init", "-e", "none", "--remote-path", &ao, &url]);
    let cfg = fs::read_to_string(env.path("ao/config")).unwrap();
    assert!(cfg.contains("append_only = 0"), "{cfg}");
    env.borg_ok(
        borg(),
        &["create", "--remote-path", &ao, &format!("{url}::a"), &data],
    );
    env.borg_ok(
        borg(),
        &["delete", "--remote-path", &ao, &format!("{url}::a")],
    );
    let tx = fs::read_to_string(env.path("ao/transactions")).unwrap();
    assert!(
        tx.lines().count() >= 2 && tx.starts_with("transaction "),
        "{tx}"
    );
    let out = env.borg(borg(), &["delete", "--remote-path", &ao, &url]);
    assert!(!out.status.success());
    assert!(env.path("ao/config").exists());
    env.borg_ok(borg(), &["check", "--remote-path", &ao, &url]);
}

#[test]
fn rborg_client_against_rborg_serve_process() {
    let env = Env::new();
    let serve = serve_bin().display().to_string();
    let loc = Location::parse(&env.url("repo")).unwrap();
    let repo = remote::open_with(
        &loc,
        &OpenOptions {
            create: true,
            ..exclusive()
        },
        &env.remote_opts(&serve),
    )
    .unwrap();
    assert_eq!(repo.server_version(), (1, 4, 1));
    for i in 0..300 {
        repo.put(&oid(i), &payload(i)).unwrap();
    }
    repo.commit(true, 0.1, false).unwrap();
    let got: Vec<_> = repo.get_many((0..300).map(oid).collect()).collect();
    assert!(got
        .iter()
        .enumerate()
        .all(|(i, r)| r.as_ref().unwrap() == &payload(i as u32)));
    drop(repo);
    // the result is a valid borg repository
    env.borg_ok(
        borg(),
        &[
            "check",
            "--repository-only",
            &env.path("repo").display().to_string(),
        ],
    );
}
