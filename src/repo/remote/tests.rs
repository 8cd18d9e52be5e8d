//! Client tests: command line, error reconstruction, and full round trips against the in-process
//! `serve` over socket pairs (real borg interop lives in tests/remote_interop.rs).

use std::os::unix::net::UnixStream;
use std::thread::JoinHandle;

use super::*;
use crate::repo::serve::{serve, ServeOptions};

fn loc(s: &str) -> Location {
    Location::parse(s).unwrap()
}

#[test]
fn command_line() {
    let ro = RemoteOptions {
        rsh: Some("ssh -i '/my key' -o BatchMode=yes".into()),
        remote_path: Some("/opt/borg/bin/borg".into()),
        log_level: Some(Level::Info),
        umask: Some(0o077),
        debug_topics: vec!["repository.compaction".into(), "files_cache".into()],
    };
    let oo = OpenOptions {
        storage_quota: Some(20_000_000),
        ..Default::default()
    };
    assert_eq!(
        ssh_command(&loc("ssh://joe@host:2222/srv/repo"), &oo, &ro).unwrap(),
        [
            "ssh",
            "-i",
            "/my key",
            "-o",
            "BatchMode=yes",
            "-p",
            "2222",
            "joe@host",
            "/opt/borg/bin/borg",
            "serve",
            "--info",
            "--debug-topic=repository.compaction",
            "--umask=0077",
            "--storage-quota=20000000",
        ]
    );
    let ro = RemoteOptions {
        rsh: Some("fake-ssh".into()),
        remote_path: Some("borg".into()),
        log_level: Some(Level::Warning),
        ..Default::default()
    };
    assert_eq!(
        ssh_command(&loc("ssh://[::1]/~/r"), &OpenOptions::default(), &ro).unwrap(),
        ["fake-ssh", "::1", "borg", "serve"]
    );
    let ro = RemoteOptions {
        rsh: Some("x".into()),
        remote_path: Some("b".into()),
        log_level: Some(Level::Debug),
        ..Default::default()
    };
    assert_eq!(
        ssh_command(&loc("h:rel"), &OpenOptions::default(), &ro).unwrap()[2..],
        ["b", "serve", "--debug"]
    );
    let bad = RemoteOptions {
        rsh: Some("ssh 'unterminated".into()),
        ..Default::default()
    };
    assert!(ssh_command(&loc("h:rel"), &OpenOptions::default(), &bad).is_err());
}

fn exc(class: &str, args: &[&str]) -> RemoteException {
    RemoteException {
        class: class.into(),
        args: args.iter().map(|a| Value::from(*a)).collect(),
        full: vec![],
        short: vec![format!("short text of {class}")],
        trace: false,
        sysinfo: String::new(),
    }
}

#[test]
fn error_reconstruction() {
    let l = "ssh://h/r";
    let m = |c: &str, a: &[&str]| exception_to_error(&exc(c, a), l);
    assert!(matches!(m("DoesNotExist", &["/srv/r"]), RepoError::DoesNotExist(p) if p == l));
    assert!(matches!(m("AlreadyExists", &["/srv/r"]), RepoError::AlreadyExists(p) if p == l));
    assert!(
        matches!(m("PathAlreadyExists", &["/x"]), RepoError::PathAlreadyExists(p) if p == "/x")
    );
    assert!(matches!(
        m("ParentPathDoesNotExist", &["/x"]),
        RepoError::ParentPathDoesNotExist(p) if p == "/x"
    ));
    assert!(matches!(m("InvalidRepository", &["/x"]), RepoError::InvalidRepository(p) if p == l));
    assert!(matches!(
        m("InvalidRepositoryConfig", &["/x", "bad"]),
        RepoError::InvalidRepositoryConfig(p, w) if p == l && w == "bad"
    ));
    assert!(matches!(m("CheckNeeded", &["/x"]), RepoError::CheckNeeded(p) if p == l));
    let hexid = "11".repeat(32);
    assert!(matches!(
        m("ObjectNotFound", &[&hexid, "/x"]),
        RepoError::ObjectNotFound(id, p) if id == ObjectId([0x11; 32]) && p == l
    ));
    assert!(matches!(
        m("ObjectNotFound", &["test string", "x"]),
        RepoError::Remote(RemoteError::Rpc { .. })
    ));
    assert!(matches!(m("IntegrityError", &["crc"]), RepoError::Integrity(s) if s == "crc"));
    assert!(matches!(
        m("StorageQuotaExceeded", &["10 MB", "11 MB"]),
        RepoError::StorageQuotaExceeded(a, b) if a == "10 MB" && b == "11 MB"
    ));
    assert!(matches!(
        m("PathNotAllowed", &["/x"]),
        RepoError::Remote(RemoteError::PathNotAllowed(p)) if p == "/x"
    ));
    assert!(matches!(
        m("InvalidRPCMethod", &["close"]),
        RepoError::Remote(RemoteError::InvalidRpcMethod(p)) if p == "close"
    ));
    assert!(matches!(
        m("LockTimeout", &["/x/lock.exclusive"]),
        RepoError::Lock(LockError::Timeout(p)) if p == "/x/lock.exclusive"
    ));
    assert!(matches!(
        m("LockFailed", &["/x", "why"]),
        RepoError::Lock(LockError::Failed(p, w)) if p == "/x" && w == "why"
    ));
    assert!(matches!(
        m("ValueError", &["/srv/r is in append-only mode"]),
        RepoError::AppendOnly(p) if p == "/srv/r"
    ));
    assert!(matches!(
        m(
            "Exception",
            &["nonce space reservation with mismatched previous state"]
        ),
        RepoError::NonceMismatch
    ));
    match m("AssertionError", &[]) {
        RepoError::Remote(RemoteError::Rpc { class, message }) => {
            assert_eq!(class, "AssertionError");
            assert_eq!(message, "short text of AssertionError");
        }
        other => panic!("{other:?}"),
    }
}

/// Client ↔ in-process server over two socket pairs.
fn start(
    sopts: ServeOptions,
    path: &std::path::Path,
    oo: &OpenOptions,
) -> (Result<RemoteRepository>, JoinHandle<i32>) {
    let (c_w, s_r) = UnixStream::pair().unwrap();
    let (s_w, c_r) = UnixStream::pair().unwrap();
    let h = std::thread::spawn(move || serve(sopts, s_r, s_w));
    let l = loc(&format!("ssh://testhost{}", path.display()));
    let r = RemoteRepository::with_streams(&l, oo, Box::new(c_w), Box::new(c_r), None, None);
    (r, h)
}

fn create_opts() -> OpenOptions {
    OpenOptions {
        create: true,
        exclusive: Some(true),
        ..Default::default()
    }
}

fn oid(i: u32) -> ObjectId {
    let mut id = [0u8; 32];
    id[..4].copy_from_slice(&i.to_be_bytes());
    id[31] = 0x5a;
    ObjectId(id)
}

#[test]
fn roundtrip_against_serve() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("repo");
    let (repo, h) = start(ServeOptions::default(), &p, &create_opts());
    let repo = repo.unwrap();
    assert_eq!(repo.server_version(), (1, 4, 1));
    assert_eq!(repo.server_version_tuple(), &[1, 4, 1, -1]);
    assert_eq!(repo.len().unwrap(), 0);
    assert!(repo.load_key().unwrap().is_empty());
    repo.save_key(b"a2V5").unwrap();
    assert_eq!(repo.load_key().unwrap(), b"a2V5");
    for i in 0..1000 {
        repo.put(&oid(i), format!("object {i}").as_bytes()).unwrap();
    }
    repo.put(&oid(5000), &vec![7u8; 3 << 20]).unwrap();
    repo.flush().unwrap();
    repo.commit(true, 0.1, false).unwrap();
    assert_eq!(repo.len().unwrap(), 1001);
    // pipelined reads, in request order, including a missing id in the middle
    let mut ids: Vec<ObjectId> = (0..1000).rev().map(oid).collect();
    ids.insert(500, oid(99_999));
    let got: Vec<GetResult> = repo.get_many(ids.clone()).collect();
    assert_eq!(got.len(), 1001);
    for (id, r) in ids.iter().zip(&got) {
        if *id == oid(99_999) {
            assert!(matches!(r, Err(RepoError::ObjectNotFound(x, _)) if x == id));
        } else {
            let i = u32::from_be_bytes(id.0[..4].try_into().unwrap());
            assert_eq!(r.as_ref().unwrap(), format!("object {i}").as_bytes());
        }
    }
    assert_eq!(repo.get(&oid(5000)).unwrap().len(), 3 << 20);
    // an abandoned get_many must not confuse later calls
    let mut it = repo.get_many((0..300).map(oid).collect());
    assert_eq!(it.next().unwrap().unwrap(), b"object 0");
    drop(it);
    assert_eq!(repo.get(&oid(7)).unwrap(), b"object 7");
    // list pages and scan
    let mut listed = Vec::new();
    let mut marker = None;
    loop {
        let page = repo.list(Some(300), marker.as_ref()).unwrap();
        if page.is_empty() {
            break;
        }
        marker = page.last().copied();
        listed.extend(page);
    }
    assert_eq!(listed.len(), 1001);
    let scanned = repo.scan(None, None).unwrap();
    assert_eq!(scanned.len(), 1001);
    assert_eq!(repo.scan(Some(10), None).unwrap(), scanned[..10]);
    match repo.scan(Some(0), None) {
        Err(RepoError::Remote(RemoteError::Rpc { class, .. })) => assert_eq!(class, "ValueError"),
        other => panic!("{other:?}"),
    }
    // deletes are asynchronous; a missing one surfaces at flush
    repo.delete(&oid(1)).unwrap();
    repo.delete(&oid(123_456)).unwrap();
    match repo.flush() {
        Err(RepoError::ObjectNotFound(id, l)) => {
            assert_eq!(id, oid(123_456));
            assert!(l.starts_with("ssh://testhost/"));
        }
        other => panic!("{other:?}"),
    }
    repo.flush().unwrap();
    repo.commit(true, 0.1, false).unwrap();
    assert_eq!(repo.len().unwrap(), 1000);
    assert!(matches!(
        repo.get(&oid(1)),
        Err(RepoError::ObjectNotFound(..))
    ));
    // nonces need the exclusive lock we hold
    assert_eq!(repo.get_free_nonce().unwrap(), None);
    repo.commit_nonce_reservation(0x1000, None).unwrap();
    assert_eq!(repo.get_free_nonce().unwrap(), Some(0x1000));
    assert!(matches!(
        repo.commit_nonce_reservation(0x2000, Some(1)),
        Err(RepoError::NonceMismatch)
    ));
    // rollback drops uncommitted puts
    repo.put(&oid(77_777), b"x").unwrap();
    repo.rollback().unwrap();
    assert!(matches!(
        repo.get(&oid(77_777)),
        Err(RepoError::ObjectNotFound(..))
    ));
    assert!(repo.check(false, 0).unwrap());
    // methods outside the allow-list
    assert!(matches!(
        repo.call("close", vec![]),
        Err(RepoError::Remote(RemoteError::InvalidRpcMethod(m))) if m == "close"
    ));
    assert!(matches!(
        repo.call(
            "inject_exception",
            vec![("kind", Value::from("CheckNeeded"))]
        ),
        Err(RepoError::CheckNeeded(_))
    ));
    repo.close().unwrap();
    assert!(matches!(
        repo.len(),
        Err(RepoError::Remote(RemoteError::ConnectionClosed))
    ));
    drop(repo);
    assert_eq!(h.join().unwrap(), 0);
    // the server released its lock: a local exclusive open works at once
    let l = Location::parse(p.to_str().unwrap()).unwrap();
    let local = crate::repo::local::LocalRepository::open(
        &l,
        &OpenOptions {
            exclusive: Some(true),
            lock_wait: 0.0,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(local.len().unwrap(), 1000);
}

#[test]
fn open_errors() {
    let t = tempfile::tempdir().unwrap();
    let missing = t.path().join("missing");
    let (r, h) = start(ServeOptions::default(), &missing, &OpenOptions::default());
    assert!(matches!(r, Err(RepoError::DoesNotExist(p)) if p.ends_with("/missing")));
    assert_eq!(h.join().unwrap(), 0);

    let (r, _) = start(
        ServeOptions::default(),
        &t.path().join("no/parent/repo"),
        &create_opts(),
    );
    assert!(
        matches!(r, Err(RepoError::ParentPathDoesNotExist(_))),
        "{r:?}"
    );

    let restricted = ServeOptions {
        restrict_to_paths: vec![t.path().join("only-here")],
        ..Default::default()
    };
    let (r, _) = start(restricted, &t.path().join("repo"), &create_opts());
    assert!(matches!(
        r,
        Err(RepoError::Remote(RemoteError::PathNotAllowed(_)))
    ));
    assert!(!t.path().join("repo").exists());

    let (r, _) = start(
        ServeOptions::default(),
        &t.path().join("r2"),
        &create_opts(),
    );
    drop(r.unwrap());
    let (r, _) = start(
        ServeOptions::default(),
        &t.path().join("r2"),
        &create_opts(),
    );
    assert!(matches!(r, Err(RepoError::AlreadyExists(_))));
    // make_parent_dirs
    let (r, _) = start(
        ServeOptions::default(),
        &t.path().join("a/b/c"),
        &OpenOptions {
            make_parent_dirs: true,
            ..create_opts()
        },
    );
    r.unwrap();
}

#[test]
fn append_only_server() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("repo");
    let ao = ServeOptions {
        append_only: true,
        ..Default::default()
    };
    let (r, _) = start(ao.clone(), &p, &create_opts());
    let r = r.unwrap();
    r.put(&oid(1), b"one").unwrap();
    r.commit(true, 0.1, false).unwrap();
    drop(r);
    let (r, _) = start(
        ao,
        &p,
        &OpenOptions {
            exclusive: Some(true),
            ..Default::default()
        },
    );
    let r = r.unwrap();
    r.delete(&oid(1)).unwrap();
    r.commit(true, 0.1, false).unwrap();
    assert!(matches!(r.destroy(), Err(RepoError::AppendOnly(_))));
    drop(r);
    assert!(p.join("transactions").exists());
}

#[test]
fn server_gone_is_connection_closed() {
    // A "server" that answers negotiate and then vanishes.
    let (c_w, mut s_r) = UnixStream::pair().unwrap();
    let (mut s_w, c_r) = UnixStream::pair().unwrap();
    let h = std::thread::spawn(move || {
        let mut dec = StreamDecoder::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = s_r.read(&mut buf).unwrap();
            dec.feed(&buf[..n]);
            if let Some(v) = dec.next_value().unwrap() {
                let reply = wire::encode_result(
                    v.req("i").unwrap(),
                    ordered_map(vec![(
                        "server_version",
                        wire::version_value(&[1, 2, 4, -1]),
                    )]),
                );
                s_w.write_all(&reply).unwrap();
                return;
            }
        }
    });
    let l = loc("ssh://h/r");
    let r = RemoteRepository::with_streams(
        &l,
        &OpenOptions::default(),
        Box::new(c_w),
        Box::new(c_r),
        None,
        None,
    );
    h.join().unwrap();
    assert!(
        matches!(r, Err(RepoError::Remote(RemoteError::ConnectionClosed))),
        "{r:?}"
    );
}

fn spawn_with_rsh(rsh: &str) -> Result<RemoteRepository> {
    RemoteRepository::connect(
        &loc("ssh://somehost/srv/repo"),
        &OpenOptions::default(),
        &RemoteOptions {
            rsh: Some(rsh.into()),
            remote_path: Some("borg".into()),
            log_level: Some(Level::Warning),
            ..Default::default()
        },
    )
}

#[test]
fn spawned_command_failures() {
    // The "ssh" exits at once: a hint, not a hang or panic.
    let r = spawn_with_rsh("sh -c 'exit 3' fake");
    assert!(
        matches!(&r, Err(RepoError::Remote(RemoteError::ConnectionClosedWithHint(h))) if h.contains("borg working")),
        "{r:?}"
    );
    // Garbage on stdout.
    let r =
        spawn_with_rsh("sh -c 'head -c 1 >/dev/null; printf \"\\301oops\"; cat >/dev/null' fake");
    assert!(
        matches!(
            &r,
            Err(RepoError::Remote(RemoteError::UnexpectedDataFormat(_)))
        ),
        "{r:?}"
    );
    // A missing ssh binary is an I/O error naming it.
    let r = spawn_with_rsh("/nonexistent/ssh-binary");
    assert!(
        matches!(&r, Err(RepoError::Io { path, .. }) if path.to_str() == Some("/nonexistent/ssh-binary"))
    );
    // An old (tuple-protocol) server is refused. (The fake servers answer only after the
    // request arrived: once a server's stdout is closed, new requests fail at once.)
    let r = spawn_with_rsh(
        "sh -c 'head -c 1 >/dev/null; printf \"\\202\\241i\\001\\241r\\002\"; cat >/dev/null' fake",
    );
    assert!(
        matches!(&r, Err(RepoError::Remote(RemoteError::ServerOutdated(..)))),
        "{r:?}"
    );
}

#[test]
fn shared_between_threads() {
    let t = tempfile::tempdir().unwrap();
    let (repo, h) = start(
        ServeOptions::default(),
        &t.path().join("repo"),
        &create_opts(),
    );
    let repo = repo.unwrap();
    for i in 0..400 {
        repo.put(&oid(i), &i.to_le_bytes()).unwrap();
    }
    repo.commit(true, 0.1, false).unwrap();
    let repo: &dyn Repository = &repo;
    std::thread::scope(|s| {
        for k in 0..8u32 {
            s.spawn(move || {
                for round in 0..5u32 {
                    let ids: Vec<ObjectId> = (0..400).filter(|i| i % 8 == k).map(oid).collect();
                    for (id, r) in ids.iter().zip(repo.get_many(ids.clone())) {
                        let i = u32::from_be_bytes(id.0[..4].try_into().unwrap());
                        assert_eq!(r.unwrap(), i.to_le_bytes());
                    }
                    let i = (k * 50 + round) % 400;
                    assert_eq!(repo.get(&oid(i)).unwrap(), i.to_le_bytes());
                    // puts interleaved with other threads' reads; their answers never reach
                    // a synchronous caller
                    repo.put(&oid(10_000 + k * 10 + round), b"new").unwrap();
                }
            });
        }
    });
    repo.flush().unwrap();
    repo.commit(true, 0.1, false).unwrap();
    assert_eq!(repo.len().unwrap(), 440);
    repo.close().unwrap();
    assert_eq!(h.join().unwrap(), 0);
}
