//! Archive interop with real borg (1.2.4 and 1.4): rborg's archives are checked and extracted
//! exactly by borg, borg's by rborg, for every encryption mode and compressor, on a tree with
//! every file type; both tools produce the same chunks (cross-tool dedup); bad input and
//! hostile archives are handled safely.

mod common;

use common::*;

const COMPRESSORS: [&str; 7] = [
    "none",
    "lz4",
    "zstd,3",
    "zlib,6",
    "lzma,1",
    "auto,zstd",
    "obfuscate,3,lz4",
];

/// rborg creates → borg check --verify-data, borg extract identical; and the reverse.
fn roundtrip(env: &Env, borg: &std::path::Path, mode: &str, comp: &str, tag: &str) {
    let repo = env.p(&format!("repo-{tag}"));
    env.rborg(&["init", "-e", mode, &repo]).ok();
    let src = env.path("src");
    env.rborg(&[
        "create",
        "--sparse",
        "-C",
        comp,
        "--chunker-params",
        "14,18,16,4095",
        &format!("{repo}::r"),
        "src",
    ])
    .ok();
    env.borg(borg, &["check", "--verify-data", &repo]).ok();
    let out = env.path(&format!("out-borg-{tag}"));
    std::fs::create_dir(&out).unwrap();
    let mut e = Env::new();
    e.vars = env.vars.clone();
    e.cwd = out.clone();
    e.borg(borg, &["extract", "--sparse", &format!("{repo}::r")])
        .ok();
    let d = tree_diff(&src, &out.join("src"));
    assert!(
        d.is_empty(),
        "{tag}: borg extract of rborg archive differs: {d:#?}"
    );
    assert!(
        allocated_bytes(&out.join("src/sparse")) < 1 << 20,
        "{tag}: borg restored no holes"
    );
    // borg creates → rborg extracts
    env.borg(
        borg,
        &[
            "create",
            "-C",
            comp,
            "--chunker-params",
            "14,18,16,4095",
            &format!("{repo}::b"),
            "src",
        ],
    )
    .ok();
    let out2 = env.path(&format!("out-rborg-{tag}"));
    std::fs::create_dir(&out2).unwrap();
    e.cwd = out2.clone();
    e.rborg(&["extract", "--sparse", &format!("{repo}::b")])
        .ok();
    let d = tree_diff(&src, &out2.join("src"));
    assert!(
        d.is_empty(),
        "{tag}: rborg extract of borg archive differs: {d:#?}"
    );
    // holes restored with --sparse
    assert!(
        allocated_bytes(&out2.join("src/sparse")) < 1 << 20,
        "{tag}: holes not restored"
    );
    env.rborg(&["check", "--verify-data", &repo]).ok();
}

#[test]
fn every_mode_both_ways() {
    for (name, borg) in borgs() {
        let env = Env::new();
        make_tree(&env.path("src"));
        for mode in MODES {
            roundtrip(&env, &borg, mode, "lz4", &format!("{name}-{mode}"));
        }
    }
}

#[test]
fn every_compressor_both_ways() {
    for (name, borg) in borgs() {
        let env = Env::new();
        make_tree(&env.path("src"));
        for comp in COMPRESSORS {
            roundtrip(
                &env,
                &borg,
                "repokey-blake2",
                comp,
                &format!("{name}-{}", comp.replace(',', "_")),
            );
        }
    }
}

#[test]
fn cross_tool_dedup_and_identical_chunks() {
    for (name, borg) in borgs() {
        let env = Env::new();
        make_tree(&env.path("src"));
        let repo = env.p("repo");
        env.borg(&borg, &["init", "-e", "repokey", &repo]).ok();
        env.borg(
            &borg,
            &[
                "create",
                "--chunker-params",
                "14,18,16,4095",
                &format!("{repo}::b"),
                "src",
            ],
        )
        .ok();
        let before = du_bytes(&env.path("repo/data"));
        env.rborg(&[
            "create",
            "--chunker-params",
            "14,18,16,4095",
            &format!("{repo}::r"),
            "src",
        ])
        .ok();
        let growth = du_bytes(&env.path("repo/data")) - before;
        // only the new archive object, the manifest and transaction overhead
        assert!(
            growth < 8 * 1024,
            "{name}: repository grew by {growth} bytes"
        );
        let fmt = "{path} {num_chunks} {sha256}{NL}";
        let lb = env.borg(&borg, &["list", "--format", fmt, &format!("{repo}::b")]);
        let lr = env.borg(&borg, &["list", "--format", fmt, &format!("{repo}::r")]);
        assert_eq!(lb.stdout, lr.stdout, "{name}");
        env.borg(&borg, &["check", &repo]).ok();
    }
}

#[test]
fn chunker_params_and_stats_json() {
    let env = Env::new();
    make_tree(&env.path("src"));
    let repo = env.p("repo");
    env.rborg(&["init", "-e", "none", &repo]).ok();
    let o = env.rborg(&[
        "create",
        "--json",
        "--chunker-params",
        "fixed,65536",
        &format!("{repo}::{{hostname}}-a"),
        "src",
    ]);
    o.ok();
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert!(v["archive"]["name"].as_str().unwrap().ends_with("-a"));
    assert_eq!(v["archive"]["stats"]["nfiles"], 8);
    let info = env.borg14(&[
        "info",
        "--json",
        &format!("{repo}::{}", v["archive"]["name"].as_str().unwrap()),
    ]);
    info.ok();
    let iv: serde_json::Value = serde_json::from_str(&info.stdout).unwrap();
    assert_eq!(
        iv["archives"][0]["chunker_params"],
        serde_json::json!(["fixed", 65536, 0])
    );
    assert_eq!(iv["archives"][0]["stats"]["nfiles"], 8);
}

#[test]
fn list_status_letters_and_dry_run() {
    let env = Env::new();
    make_tree(&env.path("src"));
    // files whose ctime is not older than the newest one seen are not memorized (borg's
    // timestamp-granularity rule): give the tree a strictly newer file
    std::thread::sleep(std::time::Duration::from_millis(30));
    std::fs::write(env.path("src/zz-newest"), b"new").unwrap();
    let repo = env.p("repo");
    env.rborg(&["init", "-e", "none", &repo]).ok();
    let o = env.rborg(&["create", "--list", &format!("{repo}::a"), "src"]);
    o.ok();
    for line in [
        "A src/hello.txt",
        "d src/dir",
        "s src/link",
        "f src/fifo",
        "h src/hl-b",
        "d src",
    ] {
        assert!(
            o.stderr.lines().any(|l| l == line)
                || line == "h src/hl-b" && o.stderr.contains("h src/hl-a"),
            "missing {line:?} in:\n{}",
            o.stderr
        );
    }
    // unchanged second run: files cache hits
    let o = env.rborg(&[
        "create",
        "--list",
        "--filter",
        "AMU",
        &format!("{repo}::b"),
        "src",
    ]);
    o.ok();
    assert!(o.stderr.contains("U src/big.bin"), "{}", o.stderr);
    assert!(!o.stderr.contains("d src"), "filter not applied");
    // borgmatic's dry-run parse: every item as "- path"
    let o = env.rborg(&[
        "create",
        "--dry-run",
        "--list",
        "-e",
        "src/text.log",
        &format!("{repo}::c"),
        "src",
    ]);
    o.ok();
    assert!(
        o.stderr.contains("- src/hello.txt") && o.stderr.contains("x src/text.log"),
        "{}",
        o.stderr
    );
    let l = env.rborg(&["list", "--short", &repo]);
    assert_eq!(l.stdout, "a\nb\n");
}

#[test]
fn create_warnings_and_errors() {
    let mut env = Env::new();
    make_tree(&env.path("src"));
    let repo = env.p("repo");
    env.rborg(&["init", "-e", "none", &repo]).ok();
    env.set("BORG_EXIT_CODES", "modern");
    // missing source path: warning 107, archive still committed
    let o = env.rborg(&["create", &format!("{repo}::a"), "src", "does-not-exist"]);
    o.rc(107)
        .stderr_has("does-not-exist: [Errno 2] No such file or directory");
    env.unset("BORG_EXIT_CODES");
    assert_eq!(env.rborg(&["list", "--short", &repo]).stdout, "a\n");
    // existing archive name: error
    env.rborg(&["create", &format!("{repo}::a"), "src"])
        .rc(2)
        .stderr_has("Archive a already exists");
    // unreadable file (run as nobody): warning, status E, archive committed
    std::fs::set_permissions(
        env.dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let nob = env.path("nob");
    std::fs::create_dir(&nob).unwrap();
    std::fs::write(nob.join("ok.txt"), b"ok").unwrap();
    std::fs::write(nob.join("secret.txt"), b"secret").unwrap();
    std::fs::set_permissions(
        nob.join("secret.txt"),
        std::os::unix::fs::PermissionsExt::from_mode(0o000),
    )
    .unwrap();
    let home = env.path("nhome");
    let nrepo = home.join("nrepo");
    std::fs::create_dir(&home).unwrap();
    for p in [&nob, &home] {
        std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    }
    let run_nobody = |args: &[&str]| {
        std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(rborg_bin())
            .args(args)
            .current_dir(&nob)
            .env_clear()
            .env("BORG_BASE_DIR", &home)
            .env("BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK", "yes")
            .output()
            .unwrap()
    };
    let nrepo_s = nrepo.display().to_string();
    let o = run_nobody(&["init", "-e", "none", &nrepo_s]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run_nobody(&["create", "--list", &format!("{nrepo_s}::a"), "."]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("secret.txt: [Errno 13] Permission denied"),
        "{err}"
    );
    assert!(
        err.contains("E secret.txt") || err.contains("E ./secret.txt"),
        "{err}"
    );
    let o = run_nobody(&["list", "--short", &format!("{nrepo_s}::a")]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("ok.txt") && !out.contains("secret.txt"),
        "{out}"
    );
}

#[test]
fn file_changing_while_read_is_reported() {
    let mut env = Env::new();
    let repo = env.p("repo");
    env.rborg(&["init", "-e", "none", &repo]).ok();
    std::fs::create_dir(env.path("src")).unwrap();
    let big = env.path("src/growing.bin");
    std::fs::write(&big, vec![7u8; 256 << 20]).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s2 = stop.clone();
    let b2 = big.clone();
    // keep changing the file's ctime (and shrinking it) while it is read
    let t = std::thread::spawn(move || {
        let mut n = 0u64;
        while !s2.load(std::sync::atomic::Ordering::Relaxed) {
            let mode = if n.is_multiple_of(2) { 0o644 } else { 0o600 };
            let _ =
                std::fs::set_permissions(&b2, std::os::unix::fs::PermissionsExt::from_mode(mode));
            if n == 50 {
                let f = std::fs::OpenOptions::new().write(true).open(&b2).unwrap();
                let _ = f.set_len(64 << 20);
            }
            n += 1;
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    });
    env.set("BORG_EXIT_CODES", "modern");
    let o = env.rborg(&["create", "--list", &format!("{repo}::a"), "src"]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    t.join().unwrap();
    o.rc(100)
        .stderr_has("growing.bin: file changed while we backed it up");
    assert!(o.stderr.contains("C src/growing.bin"), "{}", o.stderr);
    env.unset("BORG_EXIT_CODES");
    env.borg12(&["check", &repo]).ok();
    assert_eq!(env.rborg(&["list", "--short", &repo]).stdout, "a\n");
}

/// Writes archive `name` with the items `make` returns (it may store chunks) straight
/// through the library, bypassing everything `create` would refuse to write.
fn write_raw_archive(
    env: &Env,
    repo: &str,
    name: &str,
    make: impl FnOnce(
        &dyn rborg::repo::Repository,
        &rborg::crypto::Key,
        &rborg::compress::Compression,
    ) -> Vec<rborg::archive::item::Item>,
) {
    std::env::set_var("BORG_BASE_DIR", env.path("home"));
    std::env::set_var("BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK", "yes");
    let loc = rborg::repo::Location::parse(repo).unwrap();
    let opts = rborg::repo::OpenOptions {
        exclusive: Some(true),
        ..Default::default()
    };
    let mut s = rborg::archive::session::Session::open(
        &loc,
        &opts,
        rborg::archive::manifest::Operation::Write,
    )
    .unwrap();
    let comp = rborg::compress::Compression::Lz4;
    let mut w = rborg::archive::itemstream::ItemWriter::new(0);
    let (repo_ref, key) = (&*s.repo, &s.key);
    let items = make(repo_ref, key, &comp);
    let mut store = rborg::archive::itemstream::ItemWriter::store_fn(repo_ref, key, &comp);
    for it in &items {
        w.add(it, &mut store).unwrap();
    }
    w.flush(true, &mut store).unwrap();
    let meta = rborg::archive::meta::ArchiveMeta {
        version: 1,
        name: name.as_bytes().to_vec(),
        items: w.chunks.clone(),
        time: "2024-01-01T00:00:00.000000".into(),
        time_end: "2024-01-01T00:00:00.000000".into(),
        ..Default::default()
    };
    let (id, _, _) = meta.save(repo_ref, key, &comp).unwrap();
    drop(store);
    s.manifest.archives.insert(
        name.as_bytes().to_vec(),
        rborg::archive::manifest::ArchiveEntry {
            id,
            time: meta.time.clone(),
        },
    );
    s.commit_manifest(&comp).unwrap();
}

#[test]
fn hostile_archive_cannot_write_outside_target() {
    use rborg::archive::item::Item;
    let env = Env::new();
    let repo = env.p("repo");
    env.rborg(&["init", "-e", "none", &repo]).ok();
    write_raw_archive(&env, &repo, "evil", |repo_ref, key, comp| {
        let (cid, size, csize) =
            rborg::archive::meta::store_object(repo_ref, key, comp, b"evil\n").unwrap();
        let file = |p: &str| Item {
            path: p.as_bytes().to_vec(),
            mode: 0o100644,
            mtime: 0,
            chunks: Some(vec![rborg::archive::item::ChunkRef {
                id: cid,
                size,
                csize,
            }]),
            size: Some(size as u64),
            ..Item::default()
        };
        vec![
            file("../escape-dotdot"),
            file("/tmp-escape-abs-should-not-exist"),
            Item {
                path: b"link".to_vec(),
                mode: 0o120777,
                mtime: 0,
                source: Some(env.path("outside").display().to_string().into_bytes()),
                ..Item::default()
            },
            file("link/through-symlink"),
            Item {
                path: b"hl".to_vec(),
                mode: 0o100644,
                mtime: 0,
                source: Some(b"../../etc/passwd".to_vec()),
                ..Item::default()
            },
            file("ok.txt"),
        ]
    });
    std::fs::create_dir(env.path("outside")).unwrap();
    let target = env.path("target/deeper");
    std::fs::create_dir_all(&target).unwrap();
    let mut e = Env::new();
    e.vars = env.vars.clone();
    e.cwd = target.clone();
    e.set("BORG_EXIT_CODES", "modern");
    let o = e.rborg(&["extract", &format!("{repo}::evil")]);
    assert!(o.rc == 1 || (108..=110).contains(&o.rc), "{o:?}");
    assert!(
        o.stderr.contains("malicious or corrupted archive"),
        "{}",
        o.stderr
    );
    assert!(!env.path("target/escape-dotdot").exists());
    assert!(!std::path::Path::new("/tmp-escape-abs-should-not-exist").exists());
    assert!(
        std::fs::read_dir(env.path("outside"))
            .unwrap()
            .next()
            .is_none(),
        "wrote through a symlink"
    );
    assert_eq!(std::fs::read(target.join("ok.txt")).unwrap(), b"evil\n");
    // the same archive through borg 1.4.5 is refused the same way (reference behaviour)
    assert!(std::fs::symlink_metadata(target.join("link"))
        .unwrap()
        .file_type()
        .is_symlink());
}

#[test]
fn extract_into_full_disk_leaves_no_partial_file() {
    let env = Env::new();
    let repo = env.p("repo");
    env.rborg(&["init", "-e", "none", &repo]).ok();
    std::fs::create_dir(env.path("src")).unwrap();
    let mut x: u64 = 1;
    let data: Vec<u8> = (0..(6 << 20))
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) as u8
        })
        .collect();
    std::fs::write(env.path("src/big.bin"), &data).unwrap();
    std::fs::write(env.path("src/small.txt"), b"small").unwrap();
    env.rborg(&["create", &format!("{repo}::a"), "src"]).ok();
    let mnt = env.path("mnt");
    std::fs::create_dir(&mnt).unwrap();
    assert!(std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2M", "tmpfs"])
        .arg(&mnt)
        .status()
        .unwrap()
        .success());
    let mut e = Env::new();
    e.vars = env.vars.clone();
    e.cwd = mnt.clone();
    let o = e.rborg(&["extract", &format!("{repo}::a")]);
    let partial = mnt.join("src/big.bin").exists();
    let small = std::fs::read(mnt.join("src/small.txt")).ok();
    let _ = std::process::Command::new("umount").arg(&mnt).status();
    assert_eq!(o.rc, 1, "{o:?}");
    assert!(o.stderr.contains("No space left on device"), "{}", o.stderr);
    assert!(!partial, "a partial file was left behind");
    assert_eq!(small.as_deref(), Some(&b"small"[..]));
}

#[test]
fn fixture_extends_with_rborg_and_borg_reads_it() {
    let mut env = Env::new();
    let repo = unpack_borg_fixture(&mut env);
    make_tree(&env.path("src"));
    env.rborg(&["create", &format!("{repo}::from-rborg"), "src"])
        .ok();
    for (_, borg) in borgs() {
        env.borg(&borg, &["check", "--verify-data", &repo]).ok();
        let l = env.borg(&borg, &["list", "--short", &repo]);
        assert_eq!(l.stdout, "fixture-1\nfixture-2\nfrom-rborg\n");
    }
}

/// Unchanged files are archived from the walker's stat and the files cache alone (no open),
/// yet their xattrs come out exactly, attribute changes are seen (ctime), and a run that
/// stored fewer kinds of attributes does not stand in for one that needs them.
#[test]
fn unchanged_files_keep_their_attributes() {
    let env = Env::new();
    let src = env.path("src");
    make_tree(&src);
    // on a file and on a directory without ACLs (directories' attributes are remembered too)
    let setfattr = |v: &str| {
        for target in ["hello.txt", "dir/sub"] {
            let st = std::process::Command::new("setfattr")
                .args(["-n", "user.rborg", "-v", v])
                .arg(src.join(target))
                .status()
                .expect("setfattr (package attr) is needed");
            assert!(
                st.success(),
                "setfattr failed: the test dir must allow user xattrs"
            );
        }
    };
    setfattr("one");
    // only files older than the newest one seen are memorized (borg's granularity rule)
    std::thread::sleep(std::time::Duration::from_millis(30));
    std::fs::write(env.path("src/zz-newest"), b"new").unwrap();
    let repo = env.p("repo");
    env.rborg(&["init", "-e", "repokey", &repo]).ok();
    let create = |name: &str, extra: &[&str]| {
        let a = format!("{repo}::{name}");
        let mut args = vec!["create", "--list"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[&a, "src"]);
        let o = env.rborg(&args);
        o.ok();
        o.stderr
    };
    let borg_extract_matches = |name: &str| {
        let out = env.path(&format!("out-{name}"));
        std::fs::create_dir(&out).unwrap();
        let mut e = Env::new();
        e.vars = env.vars.clone();
        e.cwd = out.clone();
        e.borg12(&["extract", &format!("{repo}::{name}")]).ok();
        let d = tree_diff(&src, &out.join("src"));
        assert!(d.is_empty(), "archive {name} differs from the tree: {d:#?}");
    };
    create("a", &[]);
    create("b", &[]); // reads attributes once more and remembers them
    let log = create("c", &[]); // archived without opening
    assert!(log.contains("U src/hello.txt"), "{log}");
    assert!(log.contains("U src/big.bin"), "{log}");
    borg_extract_matches("c");
    // an xattr change moves the ctime: the file is read again
    setfattr("two");
    let log = create("d", &[]);
    assert!(log.contains("M src/hello.txt"), "{log}");
    borg_extract_matches("d");
    // a --noxattrs run does not make the next full run drop xattrs
    create("e", &["--noxattrs"]);
    create("f", &[]);
    borg_extract_matches("f");
    env.borg12(&["check", &repo]).ok();
}

/// Each `--files-cache` mode decides, as in borg 1.4, which files are read again: the same
/// tree and the same changes give rborg and borg the same status letters run after run
/// (unchanged files are answered without a worker under ctime modes, by a worker otherwise).
#[test]
fn files_cache_modes_give_borgs_statuses() {
    use std::os::unix::fs::PermissionsExt;
    for mode in ["ctime,size,inode", "mtime,size,inode", "size", "disabled"] {
        let env = Env::new();
        let src = env.path("src");
        std::fs::create_dir_all(src.join("dir")).unwrap();
        for (name, len) in [("a", 10), ("b", 5000), ("dir/c", 70_000), ("dir/d", 3)] {
            std::fs::write(src.join(name), noise(len, len as u64)).unwrap();
        }
        // only files older than the newest one seen are remembered (borg's race guard)
        std::thread::sleep(std::time::Duration::from_millis(30));
        std::fs::write(src.join("newest"), b"n").unwrap();
        let statuses = |tool: &str, repo: &str, name: &str| -> Vec<String> {
            let a = format!("{repo}::{name}");
            let args = ["create", "--list", "--files-cache", mode, &a, "src"];
            let o = if tool == "rborg" {
                env.rborg(&args)
            } else {
                env.borg14(&args)
            };
            o.ok();
            let mut v: Vec<String> = o
                .stderr
                .lines()
                .filter(|l| !l.ends_with(" src") && !l.ends_with(" src/dir"))
                .map(str::to_string)
                .collect();
            v.sort();
            v
        };
        let rrepo = env.p("rrepo");
        let brepo = env.p("brepo");
        env.rborg(&["init", "-e", "none", &rrepo]).ok();
        env.borg14(&["init", "-e", "none", &brepo]).ok();
        let mut runs = Vec::new();
        for run in ["1", "2", "3", "4"] {
            match run {
                // a ctime-only change, then an mtime change of the same size
                "3" => {
                    std::fs::set_permissions(src.join("a"), std::fs::Permissions::from_mode(0o600))
                        .unwrap()
                }
                "4" => {
                    let f = std::fs::OpenOptions::new()
                        .write(true)
                        .open(src.join("b"))
                        .unwrap();
                    f.set_modified(
                        std::time::SystemTime::UNIX_EPOCH
                            + std::time::Duration::from_secs(1_000_000_000),
                    )
                    .unwrap();
                }
                _ => {}
            }
            let r = statuses("rborg", &rrepo, run);
            let b = statuses("borg", &brepo, run);
            assert_eq!(r, b, "--files-cache {mode}, run {run}");
            runs.push(r);
        }
        // the test must see both re-reads and cache hits where the mode allows them
        let unchanged = runs[1].iter().filter(|l| l.starts_with("U ")).count();
        if mode == "disabled" {
            assert_eq!(unchanged, 0, "{runs:?}");
        } else {
            assert!(unchanged >= 4, "--files-cache {mode}: {runs:?}");
        }
        // the ctime change is seen by ctime modes, the mtime change by ctime and mtime modes
        let modified = runs
            .iter()
            .flatten()
            .filter(|l| l.starts_with("M "))
            .count();
        let want = match mode {
            "ctime,size,inode" => 2,
            "mtime,size,inode" => 1,
            _ => 0,
        };
        assert_eq!(modified, want, "--files-cache {mode}: {runs:?}");
    }
}

/// Files of several batches are written by all workers at their offsets; the bytes (holes
/// with --sparse included) are what borg extracts, and a file whose chunk references lie
/// about sizes is written in order as borg does, with its size warning.
#[test]
fn big_files_extract_at_offsets_like_borg() {
    use rborg::archive::item::{ChunkRef, Item};
    let env = Env::new();
    let repo = env.p("repo");
    env.rborg(&["init", "-e", "repokey", &repo]).ok();
    std::env::set_var("BORG_PASSPHRASE", "test-passphrase");
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let mut noise = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 56) as u8
            })
            .collect()
    };
    // 9 chunks, one of them all zeros: more than two 4 MiB batches
    let pieces: Vec<Vec<u8>> = (0..9)
        .map(|k| match k {
            4 => vec![0u8; 1 << 20],
            _ => noise(1_300_000 + 77_777 * k),
        })
        .collect();
    let whole: Vec<u8> = pieces.concat();
    write_raw_archive(&env, &repo, "big", |repo_ref, key, comp| {
        let refs: Vec<ChunkRef> = pieces
            .iter()
            .map(|p| {
                let (id, size, csize) =
                    rborg::archive::meta::store_object(repo_ref, key, comp, p).unwrap();
                ChunkRef { id, size, csize }
            })
            .collect();
        let mut liar = refs.clone();
        liar[2].size += 100;
        let file = |path: &str, chunks: Vec<ChunkRef>| Item {
            path: path.as_bytes().to_vec(),
            mode: 0o100644,
            mtime: 0,
            size: Some(chunks.iter().map(|c| c.size as u64).sum()),
            chunks: Some(chunks),
            // borg's extract needs the owner fields
            uid: Some(0),
            gid: Some(0),
            user: Some(None),
            group: Some(None),
            ..Item::default()
        };
        vec![file("big", refs), file("liar", liar)]
    });
    for (tool, args) in [
        ("rborg", vec!["extract"]),
        ("rborg-sparse", vec!["extract", "--sparse"]),
        ("borg", vec!["extract"]),
    ] {
        let dir = env.path(tool);
        std::fs::create_dir(&dir).unwrap();
        let mut e = Env::new();
        e.vars = env.vars.clone();
        e.cwd = dir.clone();
        let archive = format!("{repo}::big");
        let mut argv = args.clone();
        argv.push(&archive);
        let o = if tool == "borg" {
            e.borg14(&argv)
        } else {
            e.rborg(&argv)
        };
        assert_eq!(o.rc, 1, "{tool}: the liar's size warning: {o:?}");
        // borg 1.4.5 prints only "liar: backup error" for this BackupError
        let want = if tool == "borg" {
            "liar: "
        } else {
            "liar: Size inconsistency"
        };
        assert!(o.stderr.contains(want), "{tool}: {:?}", o.stderr);
        assert!(
            std::fs::read(dir.join("big")).unwrap() == whole,
            "{tool}: big file differs"
        );
        assert!(
            std::fs::read(dir.join("liar")).unwrap() == whole,
            "{tool}: liar file differs"
        );
        if tool == "rborg-sparse" {
            use std::os::unix::fs::MetadataExt;
            let m = std::fs::metadata(dir.join("big")).unwrap();
            assert!(
                m.blocks() * 512 <= whole.len() as u64 - (1 << 20) + 65536,
                "the zero chunk is a hole: {} blocks",
                m.blocks()
            );
        }
    }
}
