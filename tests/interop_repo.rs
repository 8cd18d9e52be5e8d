//! Repository-level interop with real borg (1.2.4 and 1.4): init in every mode both ways,
//! key export/import across tools, mutual lock exclusion, the borg-written fixture, and bad
//! input (each must give a clear one-line error with borg's exit code and leave the
//! repository at its last commit).

mod common;

use common::*;

#[test]
fn rborg_init_every_mode_then_borg_uses_it() {
    for (name, borg) in borgs() {
        let env = Env::new();
        std::fs::create_dir(env.path("src")).unwrap();
        std::fs::write(env.path("src/f"), b"content").unwrap();
        for mode in MODES {
            let repo = env.p(&format!("r-{mode}"));
            env.rborg(&["init", "-e", mode, &repo]).ok();
            let info = env.borg(&borg, &["info", &repo]);
            info.ok();
            assert!(
                info.stdout.contains("Repository ID:"),
                "{name} {mode}: {}",
                info.stdout
            );
            env.borg(&borg, &["check", &repo]).ok();
            env.borg(&borg, &["create", &format!("{repo}::a1"), "src"])
                .ok();
            env.borg(&borg, &["check", "--verify-data", &repo]).ok();
            // and rborg reads what borg wrote into it
            let l = env.rborg(&["list", &repo]);
            l.ok();
            assert!(l.stdout.starts_with("a1 "), "{name} {mode}: {}", l.stdout);
        }
    }
}

#[test]
fn borg_init_every_mode_then_rborg_info() {
    for (name, borg) in borgs() {
        let env = Env::new();
        for mode in MODES {
            let repo = env.p(&format!("b-{mode}"));
            env.borg(&borg, &["init", "-e", mode, &repo]).ok();
            let out = env.rborg(&["info", "--json", &repo]);
            out.ok();
            let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
            assert_eq!(v["encryption"]["mode"], mode, "{name}");
            assert_eq!(v["repository"]["location"], repo.as_str());
            let text = env.rborg(&["info", &repo]);
            text.ok();
            let want = match mode {
                "none" | "authenticated" => "Encrypted: No".to_string(),
                _ => "Encrypted: Yes".to_string(),
            };
            assert!(
                text.stdout.contains(&want),
                "{name} {mode}: {}",
                text.stdout
            );
        }
    }
}

#[test]
fn key_export_import_across_tools() {
    for (name, borg) in borgs() {
        for mode in ["repokey", "keyfile", "repokey-blake2", "keyfile-blake2"] {
            let env = Env::new();
            let repo = env.p("repo");
            env.rborg(&["init", "-e", mode, &repo]).ok();
            // rborg exports, borg imports
            let exp = env.p("key.txt");
            env.rborg(&["key", "export", &repo, &exp]).ok();
            let text = std::fs::read_to_string(&exp).unwrap();
            assert!(text.starts_with("BORG_KEY "), "{text}");
            remove_key(&env, &repo, mode);
            assert_ne!(
                env.borg(&borg, &["info", &repo]).rc,
                0,
                "{name} {mode}: key should be gone"
            );
            env.borg(&borg, &["key", "import", &repo, &exp]).ok();
            env.borg(&borg, &["info", &repo]).ok();
            // borg exports (plain and paper), rborg imports the plain one
            let exp2 = env.p("key2.txt");
            env.borg(&borg, &["key", "export", &repo, &exp2]).ok();
            let paper_b = env.borg(&borg, &["key", "export", "--paper", &repo]);
            let paper_r = env.rborg(&["key", "export", "--paper", &repo]);
            assert_eq!(
                paper_b.stdout, paper_r.stdout,
                "{name} {mode}: paper keys differ"
            );
            remove_key(&env, &repo, mode);
            env.rborg(&["key", "import", &repo, &exp2]).ok();
            env.rborg(&["info", &repo]).ok();
            env.borg(&borg, &["info", &repo]).ok();
            // the QR page carries the key text
            let qr = env.rborg(&["key", "export", "--qr-html", &repo]);
            qr.ok();
            assert!(qr.stdout.contains("BORG_KEY ") && qr.stdout.contains("<svg"));
        }
    }
}

/// Makes the repository's key unavailable (keyfile deleted / repokey removed from config).
fn remove_key(env: &Env, repo: &str, mode: &str) {
    if mode.starts_with("keyfile") {
        for e in std::fs::read_dir(env.path("home/.config/borg/keys"))
            .unwrap()
            .flatten()
        {
            std::fs::remove_file(e.path()).unwrap();
        }
    } else {
        let cfg = format!("{repo}/config");
        let text = std::fs::read_to_string(&cfg).unwrap();
        let mut out = String::new();
        let mut skipping = false;
        for line in text.lines() {
            if line.starts_with("key = ") {
                skipping = true;
                out.push_str("key = \n");
                continue;
            }
            if skipping && line.starts_with('\t') {
                continue;
            }
            skipping = false;
            out.push_str(line);
            out.push('\n');
        }
        std::fs::write(&cfg, out).unwrap();
    }
}

#[test]
fn change_passphrase_is_seen_by_borg() {
    let env = Env::new();
    let repo = env.p("repo");
    env.rborg(&["init", "-e", "repokey", &repo]).ok();
    let mut env2 = Env::new();
    env2.vars = env.vars.clone();
    env2.set("BORG_NEW_PASSPHRASE", "new-secret");
    env2.rborg(&["key", "change-passphrase", &repo]).ok();
    let mut e3 = Env::new();
    e3.vars = env.vars.clone();
    e3.set("BORG_PASSPHRASE", "new-secret");
    e3.borg12(&["info", &repo]).ok();
    e3.borg14(&["info", &repo]).ok();
    env.borg12(&["info", &repo]).rc(2);
}

#[test]
fn locks_exclude_each_other() {
    for (name, borg) in borgs() {
        let env = Env::new();
        let repo = env.p("repo");
        env.rborg(&["init", "-e", "none", &repo]).ok();
        // borg holds the lock: rborg waits --lock-wait seconds, then fails with LockTimeout
        let mut holder = env.spawn(&borg, &["with-lock", &repo, "sleep", "6"]);
        std::thread::sleep(std::time::Duration::from_millis(1500));
        let t = std::time::Instant::now();
        let o = env.rborg(&["--lock-wait", "1", "create", &format!("{repo}::x"), "."]);
        o.rc(2).stderr_has("Failed to create/acquire the lock");
        assert!(t.elapsed().as_secs_f64() >= 0.9, "{name}: did not wait");
        let mut env_m = Env::new();
        env_m.vars = env.vars.clone();
        env_m.set("BORG_EXIT_CODES", "modern");
        env_m.rborg(&["--lock-wait", "1", "info", &repo]).rc(73);
        holder.wait().unwrap();
        // rborg holds the lock: borg fails the same way
        let mut holder = std::process::Command::new(rborg_bin())
            .args(["with-lock", &repo, "sleep", "6"])
            .envs(&env.vars)
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1500));
        let o = env.borg(&borg, &["--lock-wait", "1", "info", &repo]);
        assert_eq!(o.rc, 2, "{name}: {o:?}");
        assert!(
            o.stderr.contains("Failed to create/acquire the lock"),
            "{name}: {}",
            o.stderr
        );
        holder.wait().unwrap();
        env.borg(&borg, &["check", &repo]).ok();
    }
}

#[test]
fn fixture_repository_written_by_borg_124() {
    let mut env = Env::new();
    let repo = unpack_borg_fixture(&mut env);
    let info = env.rborg(&["info", "--json", &repo]);
    info.ok();
    let v: serde_json::Value = serde_json::from_str(&info.stdout).unwrap();
    assert_eq!(
        v["repository"]["id"],
        "884c48a60db058ef990877e468f9f448386687a8820aa69c8ea9e6cbc80f0006"
    );
    let list = env.rborg(&["list", "--format", "{archive} {id}{NL}", &repo]);
    list.ok();
    assert_eq!(
        list.stdout,
        "fixture-1 2e4f89796b8d522eaae3b01ceed64b5b4e0a9acf5aa7a948fe9d2e1e07fa4f71\nfixture-2 155d1d41177ad69a518b28400ce5acb5cae326d98698c5bddce94673d618ed50\n"
    );
    std::fs::create_dir(env.path("out")).unwrap();
    env.cwd = env.path("out");
    env.rborg(&["extract", &format!("{repo}::fixture-1")]).ok();
    let expect = [
        (
            "src/dir/nested.txt",
            "414f8e9fd34ff68f66cbdab5ec63a5e738aa107f3454fa7edb51f49528abf9c6",
        ),
        (
            "src/dir/grüße.txt",
            "f682a5ef26796a5f98678d3a028d07c8853e6c5fc01005b55bd95852d00fc917",
        ),
        (
            "src/empty.txt",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ),
        (
            "src/hello.txt",
            "685cd74f7987f6913db56e4bdbe99bd3e0cfbc87c16c1769b78aa3696e766368",
        ),
        (
            "src/hardlink-b",
            "38ccf918fbba457a7e321e9bac6d81663f9f4dcdb02c2a8e3742a69f60a60e1e",
        ),
        (
            "src/hardlink-a",
            "38ccf918fbba457a7e321e9bac6d81663f9f4dcdb02c2a8e3742a69f60a60e1e",
        ),
        (
            "src/big-3MiB.bin",
            "803a9fa644565acb26dcee8646f058307d85f6fee79f066bdc406a6a3d68b49f",
        ),
    ];
    for (p, h) in expect {
        use sha2::Digest;
        let data = std::fs::read(env.path("out").join(p)).unwrap();
        assert_eq!(hex::encode(sha2::Sha256::digest(&data)), h, "{p}");
    }
    use std::os::unix::fs::MetadataExt;
    let a = std::fs::metadata(env.path("out/src/hardlink-a")).unwrap();
    let b = std::fs::metadata(env.path("out/src/hardlink-b")).unwrap();
    assert_eq!(a.ino(), b.ino(), "hardlink pair restored as a hardlink");
    assert_eq!(
        std::fs::read_link(env.path("out/src/symlink"))
            .unwrap()
            .to_str(),
        Some("hello.txt")
    );
    assert_eq!(a.mtime_nsec(), 123456789);
}

/// Snapshot of a repository directory (names, sizes, contents) to prove nothing changed.
fn snapshot(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    fn walk(root: &std::path::Path, p: &std::path::Path, out: &mut Vec<(String, Vec<u8>)>) {
        let mut es: Vec<_> = std::fs::read_dir(p).unwrap().flatten().collect();
        es.sort_by_key(|e| e.path());
        for e in es {
            let rel = e.path().strip_prefix(root).unwrap().display().to_string();
            if e.file_type().unwrap().is_dir() {
                walk(root, &e.path(), out);
            } else {
                out.push((rel, std::fs::read(e.path()).unwrap_or_default()));
            }
        }
    }
    walk(dir, dir, &mut out);
    out
}

#[test]
fn bad_input_gives_clear_errors_and_changes_nothing() {
    let mut env = Env::new();
    let repo = env.p("repo");
    env.rborg(&["init", "-e", "repokey", &repo]).ok();
    std::fs::write(env.path("f"), b"x").unwrap();
    env.rborg(&["create", &format!("{repo}::a1"), "f"]).ok();
    let before = snapshot(&env.path("repo"));

    // wrong passphrase
    env.set("BORG_PASSPHRASE", "wrong");
    let o = env.rborg(&["create", &format!("{repo}::a2"), "f"]);
    o.rc(2).stderr_has("Passphrase supplied in BORG_PASSPHRASE, by BORG_PASSCOMMAND, or via BORG_PASSPHRASE_FD is incorrect.");
    assert_eq!(
        o.stderr.trim().lines().count(),
        1,
        "one-line error: {}",
        o.stderr
    );
    env.set("BORG_EXIT_CODES", "modern");
    env.rborg(&["info", &repo]).rc(52);
    env.unset("BORG_EXIT_CODES");
    env.set("BORG_PASSPHRASE", "test-passphrase");
    assert!(
        snapshot(&env.path("repo")) == before,
        "wrong passphrase changed the repository"
    );

    // missing repository, not a repository, existing repository
    env.set("BORG_EXIT_CODES", "modern");
    env.rborg(&["info", &env.p("nope")])
        .rc(13)
        .stderr_has("does not exist");
    std::fs::create_dir(env.path("plain")).unwrap();
    std::fs::write(env.path("plain/x"), b"").unwrap();
    env.rborg(&["info", &env.p("plain")])
        .rc(15)
        .stderr_has("is not a valid repository");
    env.rborg(&["init", "-e", "none", &repo])
        .rc(10)
        .stderr_has("A repository already exists at");
    env.rborg(&["init", "-e", "none", &env.p("plain")]).rc(19);
    env.unset("BORG_EXIT_CODES");
    env.rborg(&["info", &env.p("nope")]).rc(2);

    // unsupported repository version
    let cfg = env.path("repo/config");
    let orig_cfg = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, orig_cfg.replace("version = 1", "version = 2")).unwrap();
    env.rborg(&["info", &repo])
        .rc(2)
        .stderr_has("repository version 2 is not supported");
    std::fs::write(&cfg, &orig_cfg).unwrap();
    env.rborg(&["info", &repo]).ok();
}

/// Finds the segment holding the first archive's data (the biggest segment file).
fn biggest_segment(repo: &std::path::Path) -> std::path::PathBuf {
    let mut best = (0, std::path::PathBuf::new());
    for d in std::fs::read_dir(repo.join("data")).unwrap().flatten() {
        for f in std::fs::read_dir(d.path()).unwrap().flatten() {
            let n = f.metadata().unwrap().len();
            if n > best.0 {
                best = (n, f.path());
            }
        }
    }
    best.1
}

#[test]
fn damaged_segments_are_reported_with_the_file_name() {
    let env = Env::new();
    let repo = env.p("repo");
    env.rborg(&["init", "-e", "repokey", &repo]).ok();
    let data: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
    std::fs::write(env.path("f"), &data).unwrap();
    env.rborg(&["create", &format!("{repo}::a1"), "f"]).ok();
    let seg = biggest_segment(&env.path("repo"));
    let seg_name = seg
        .strip_prefix(env.path("repo"))
        .unwrap()
        .display()
        .to_string();
    let orig = std::fs::read(&seg).unwrap();

    // bit flip inside the data of a committed segment
    let mut flipped = orig.clone();
    flipped[orig.len() / 2] ^= 0x40;
    std::fs::write(&seg, &flipped).unwrap();
    std::fs::create_dir_all(env.path("out")).unwrap();
    let mut e2 = Env::new();
    e2.vars = env.vars.clone();
    e2.cwd = env.path("out");
    let o = e2.rborg(&["extract", &format!("{repo}::a1")]);
    o.rc(2).stderr_has("checksum mismatch");
    let c = env.rborg(&["check", "--repository-only", &repo]);
    c.rc(1);
    assert!(
        c.stderr.contains(&seg_name) || c.stderr.contains("segment"),
        "{}",
        c.stderr
    );
    std::fs::write(&seg, &orig).unwrap();

    // truncated segment: the repository falls back to the last valid commit state for readers
    std::fs::write(&seg, &orig[..orig.len() - 100]).unwrap();
    let c = env.rborg(&["check", "--repository-only", &repo]);
    c.rc(1);
    std::fs::write(&seg, &orig).unwrap();
    env.rborg(&["check", &repo]).ok();
    env.borg12(&["check", &repo]).ok();
}

#[test]
fn unreadable_repository_directory() {
    let env = Env::new();
    let repo = env.p("repo");
    env.rborg(&["init", "-e", "none", &repo]).ok();
    // tests run as root: drop to nobody so permissions apply
    std::fs::set_permissions(
        env.dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    std::fs::set_permissions(
        env.path("repo"),
        std::os::unix::fs::PermissionsExt::from_mode(0o000),
    )
    .unwrap();
    let home = env.path("nobody-home");
    std::fs::create_dir(&home).unwrap();
    std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let o = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(rborg_bin())
        .args(["info", &repo])
        .env_clear()
        .env("BORG_BASE_DIR", &home)
        .env("BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK", "yes")
        .env("BORG_EXIT_CODES", "modern")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    std::fs::set_permissions(
        env.path("repo"),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(o.status.code(), Some(21), "{err}");
    assert!(
        err.contains("Permission denied") && err.contains("repo"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn disk_full_during_commit_keeps_last_commit() {
    let env = Env::new();
    let mnt = env.path("small");
    std::fs::create_dir(&mnt).unwrap();
    let st = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=3M", "tmpfs"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(
        st.success(),
        "mounting a small tmpfs needs root (CI runs as root)"
    );
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(mnt.clone());
    let repo = mnt.join("repo").display().to_string();
    env.rborg(&["init", "-e", "repokey", &repo]).ok();
    std::fs::write(env.path("small.txt"), b"small").unwrap();
    env.rborg(&["create", &format!("{repo}::a1"), "small.txt"])
        .ok();
    // random data does not compress: 8 MiB cannot fit into 3 MiB
    let mut big = vec![0u8; 8 << 20];
    getrandom_fill(&mut big);
    std::fs::write(env.path("big.bin"), &big).unwrap();
    let o = env.rborg(&["create", &format!("{repo}::a2"), "big.bin"]);
    o.rc(2);
    assert!(
        o.stderr.contains("No space left on device")
            || o.stderr.contains("Insufficient free space"),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr.contains(&repo) || o.stderr.contains("space"),
        "{}",
        o.stderr
    );
    // still at the last commit, readable by both tools, and writable again after cleanup
    let l = env.rborg(&["list", "--short", &repo]);
    l.ok();
    assert_eq!(l.stdout, "a1\n");
    env.borg12(&["check", &repo]).ok();
    env.rborg(&["create", &format!("{repo}::a3"), "small.txt"])
        .ok();
    env.borg14(&["check", &repo]).ok();
}

fn getrandom_fill(buf: &mut [u8]) {
    let mut x: u64 = 0x2545f4914f6cdd1d;
    for b in buf.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = (x >> 24) as u8;
    }
}
