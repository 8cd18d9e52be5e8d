//! `export-tar` / `import-tar` against real borg and GNU tar.
//!
//! 1. An archive made by borg 1.2.4 (every file type, multi-chunk files, hardlinks incl.
//!    one in a subdirectory, long names and link targets) is exported by borg 1.4 and by
//!    rborg: plain, `.tar.gz`, to stdout, with `--strip-components`, PATHs and excludes.
//!    The tarballs must be byte-identical (so `tar -tvf` listings and extracted trees are
//!    too, which is checked as well). `--tar-format=PAX` must list like borg's GNU export
//!    and restore ns mtimes, xattrs and ACLs with GNU tar.
//! 2. GNU tar archives (GNU format, pax, GNU and pax sparse files) are imported by rborg: `borg check
//!    --verify-data` passes, `borg extract` restores exactly what `tar -x` of the same
//!    tarball restores, and the items equal those of borg 1.4's own import-tar.
//! 3. import-tar options: stdin, filters, `--ignore-zeros`, `--json`, `--list --filter`,
//!    `--comment`/`--timestamp`, errors, and the BORG tar format round trip.
//!
//! borg and GNU tar are required: the tests fail (not skip) without them. Run as root (for
//! the device node and owner restoration).

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::process::{Command, Stdio};

use common::{borg14_bin, make_tree, Env, Out};

/// Runs a tool (GNU tar, gzip ...) in the test directory.
fn tool(env: &Env, prog: &str, args: &[&str]) -> Out {
    let o = Command::new(prog)
        .args(args)
        .current_dir(&env.cwd)
        .env("TZ", "UTC")
        .env("LANG", "C.UTF-8")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {prog} (required by this test): {e}"));
    Out {
        rc: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        what: format!("{prog} {}", args.join(" ")),
    }
}

/// A borg/rborg command with the test's isolated environment, run in `cwd`.
fn isolated(env: &Env, bin: &Path, args: &[&str], cwd: &Path) -> std::process::Output {
    Command::new(bin)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("LANG", "C.UTF-8")
        .env("HOME", env.path("home"))
        .envs(&env.vars)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()))
}

fn tar_list(env: &Env, file: &str) -> String {
    let o = tool(env, "tar", &["-tvf", file]);
    o.ok();
    o.stdout
}

/// Extracts a tarball with GNU tar into a fresh directory.
fn tar_extract(env: &Env, file: &str, dir: &str, extra: &[&str]) {
    let d = env.path(dir);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    let mut args = vec!["-xf", file, "-C", dir];
    args.extend_from_slice(extra);
    tool(env, "tar", &args).ok();
}

/// One line per entry: type, mode, owner, size, content hash, link target, device,
/// hardlink group and mtime (ns, or whole seconds).
fn snapshot(root: &Path, ns: bool) -> String {
    snapshot_with(root, ns, true)
}

/// `dir_times: false`: directories' mtimes are left out (parents that are not in a
/// partial tarball get the time of extraction).
fn snapshot_with(root: &Path, ns: bool, dir_times: bool) -> String {
    use std::hash::{Hash, Hasher};
    let mut paths = Vec::new();
    fn walk(root: &Path, p: &Path, out: &mut Vec<String>) {
        let mut v: Vec<_> = std::fs::read_dir(p).unwrap().flatten().collect();
        v.sort_by_key(|e| e.file_name());
        for e in v {
            out.push(e.path().strip_prefix(root).unwrap().display().to_string());
            if e.file_type().unwrap().is_dir() {
                walk(root, &e.path(), out);
            }
        }
    }
    walk(root, root, &mut paths);
    let mut groups: BTreeMap<(u64, u64), String> = BTreeMap::new();
    let mut lines = Vec::new();
    for rel in paths {
        let p = root.join(&rel);
        let m = std::fs::symlink_metadata(&p).unwrap();
        let ft = m.file_type();
        let kind = if ft.is_dir() {
            "d"
        } else if ft.is_symlink() {
            "l"
        } else if ft.is_fifo() {
            "p"
        } else if ft.is_char_device() {
            "c"
        } else if ft.is_block_device() {
            "b"
        } else {
            "-"
        };
        let mut extra = String::new();
        if ft.is_file() {
            let data = std::fs::read(&p).unwrap();
            let mut h = std::collections::hash_map::DefaultHasher::new();
            data.hash(&mut h);
            extra = format!("size={} hash={:x}", data.len(), h.finish());
            if m.nlink() > 1 {
                let g = groups
                    .entry((m.dev(), m.ino()))
                    .or_insert_with(|| rel.clone());
                extra.push_str(&format!(" hardlink-group={g}"));
            }
        }
        if ft.is_symlink() {
            extra = format!("-> {}", std::fs::read_link(&p).unwrap().display());
        }
        if ft.is_char_device() || ft.is_block_device() {
            extra = format!("rdev={:x}", m.rdev());
        }
        let mtime = if ns {
            format!("{}.{:09}", m.mtime(), m.mtime_nsec())
        } else {
            m.mtime().to_string()
        };
        // symlink times are not restored by every tool; directories are
        let mtime = if ft.is_symlink() || (ft.is_dir() && !dir_times) {
            "-".into()
        } else {
            mtime
        };
        lines.push(format!(
            "{kind} {:o} {}:{} {extra} mtime={mtime} {rel}",
            m.mode() & 0o7777,
            m.uid(),
            m.gid()
        ));
    }
    lines.join("\n")
}

/// The test tree: `make_tree` plus a hardlink in a subdirectory, names and a symlink
/// target longer than 100 bytes (GNU long-name members).
fn make_test_tree(env: &Env) {
    let src = env.path("src");
    make_tree(&src);
    std::fs::hard_link(src.join("hl-a"), src.join("dir/hl-c")).unwrap();
    let deep = src.join(["d".repeat(40), "e".repeat(40), "f".repeat(40)].join("/"));
    std::fs::create_dir_all(&deep).unwrap();
    std::fs::write(deep.join("g".repeat(110)), b"long name\n").unwrap();
    std::os::unix::fs::symlink("t".repeat(150), src.join("longlink")).unwrap();
    assert!(
        std::fs::symlink_metadata(src.join("null-dev")).is_ok(),
        "cannot create a device node: run the tests as root"
    );
}

fn setup(env: &mut Env) -> String {
    make_test_tree(env);
    let repo = env.p("repo");
    env.borg12(&["init", "-e", "repokey", &repo]).ok();
    // small chunks: big files span many chunks
    env.borg12(&[
        "create",
        "--chunker-params",
        "10,16,12,4095",
        &format!("{repo}::a"),
        "src",
    ])
    .ok();
    repo
}

#[test]
fn export_tar_matches_borg() {
    let mut env = Env::new();
    let repo = setup(&mut env);
    let arch = format!("{repo}::a");
    struct Case {
        file: &'static str,
        opts: &'static [&'static str],
        paths: &'static [&'static str],
    }
    let cases = [
        Case {
            file: "plain.tar",
            opts: &["--list"],
            paths: &[],
        },
        Case {
            file: "comp.tar.gz",
            opts: &[],
            paths: &[],
        },
        Case {
            file: "strip.tar",
            opts: &["--strip-components", "1"],
            paths: &[],
        },
        // master hl-a not selected: hl-b carries the content, dir/hl-c links to it
        Case {
            file: "paths.tar",
            opts: &["--strip-components", "1", "--list"],
            paths: &["src/hl-b", "src/dir", "src/big.bin", "src/nothing-here"],
        },
        Case {
            file: "excl.tar",
            opts: &["-e", "src/hl-a", "--pattern=-src/dir/sub"],
            paths: &[],
        },
        Case {
            file: "pats.tar",
            opts: &[],
            paths: &["sh:src/*.txt", "re:null-dev$", "pp:src/dir/sub"],
        },
    ];
    for c in &cases {
        let bfile = format!("borg-{}", c.file);
        let rfile = format!("rborg-{}", c.file);
        let mut bargs = vec!["export-tar"];
        bargs.extend_from_slice(c.opts);
        bargs.push(&arch);
        let mut rargs = bargs.clone();
        bargs.push(&bfile);
        rargs.push(&rfile);
        bargs.extend_from_slice(c.paths);
        rargs.extend_from_slice(c.paths);
        let b = env.borg14(&bargs);
        let r = env.rborg(&rargs);
        assert_eq!(b.rc, r.rc, "exit codes differ:\n{b:?}\n{r:?}");
        assert!(b.rc == 0 || c.paths.contains(&"src/nothing-here"), "{b:?}");
        assert_eq!(
            b.stderr, r.stderr,
            "{}: stderr (--list, warnings) differs",
            c.file
        );
        assert_eq!(
            tar_list(&env, &bfile),
            tar_list(&env, &rfile),
            "{}: tar -tvf listings differ",
            c.file
        );
        let (bb, rb) = if c.file.ends_with(".gz") {
            (
                tool(&env, "gzip", &["-dc", &bfile]).ok().stdout.clone(),
                tool(&env, "gzip", &["-dc", &rfile]).ok().stdout.clone(),
            )
        } else {
            (
                String::from_utf8_lossy(&std::fs::read(env.path(&bfile)).unwrap()).into_owned(),
                String::from_utf8_lossy(&std::fs::read(env.path(&rfile)).unwrap()).into_owned(),
            )
        };
        assert!(bb == rb, "{}: tar streams are not byte-identical", c.file);
        tar_extract(&env, &bfile, "x-borg", &[]);
        tar_extract(&env, &rfile, "x-rborg", &[]);
        assert_eq!(
            snapshot_with(&env.path("x-borg"), true, false),
            snapshot_with(&env.path("x-rborg"), true, false),
            "{}: extracted trees differ",
            c.file
        );
    }
    // the unfiltered export restores the source tree (whole-second mtimes)
    tar_extract(&env, "rborg-plain.tar", "x-plain", &[]);
    assert_eq!(
        snapshot(&env.path("src"), false),
        snapshot(&env.path("x-plain/src"), false)
    );

    // FILE "-": the same bytes on stdout
    let out = isolated(
        &env,
        &common::rborg_bin(),
        &["export-tar", &arch, "-"],
        &env.cwd,
    );
    assert!(out.status.success());
    assert!(
        out.stdout == std::fs::read(env.path("borg-plain.tar")).unwrap(),
        "export to stdout differs from borg's tarball"
    );

    // --tar-format=PAX: same listing as borg's GNU export; ns mtimes and xattrs survive
    let r = env.rborg(&["export-tar", "--tar-format=PAX", &arch, "pax.tar"]);
    r.ok();
    assert_eq!(tar_list(&env, "borg-plain.tar"), tar_list(&env, "pax.tar"));
    tar_extract(
        &env,
        "pax.tar",
        "x-pax",
        &["--xattrs", "--xattrs-include=user.*", "--acls"],
    );
    assert_eq!(
        snapshot(&env.path("src"), true),
        snapshot(&env.path("x-pax/src"), true),
        "PAX export does not restore the source tree with ns mtimes"
    );
    // xattrs (SCHILY.xattr.*) and ACLs (SCHILY.acl.*) too
    let diffs = common::tree_diff(&env.path("src"), &env.path("x-pax/src"));
    assert!(diffs.is_empty(), "PAX export: {diffs:#?}");
    let x = tool(&env, "getfattr", &["-d", "x-pax/src/hello.txt"]);
    x.ok();
    assert!(x.stdout.contains("user.comment=\"hello\""), "{x:?}");
    // the same with a compression filter and a path selection
    env.borg14(&["export-tar", &arch, "sel.tar.xz", "src/dir"])
        .ok();
    env.rborg(&[
        "export-tar",
        "--tar-format=PAX",
        &arch,
        "sel-pax.tar.xz",
        "src/dir",
    ])
    .ok();
    assert_eq!(
        tar_list(&env, "sel.tar.xz"),
        tar_list(&env, "sel-pax.tar.xz")
    );
}

/// Imports `tarball` with rborg and checks `borg extract` against `tar -x`.
fn import_and_compare(env: &Env, repo: &str, name: &str, tarball: &str) -> Out {
    let r = env.rborg(&[
        "import-tar",
        "--stats",
        "--list",
        &format!("{repo}::{name}"),
        tarball,
    ]);
    r.ok();
    let xdir = env.path(&format!("x-borg-{name}"));
    std::fs::create_dir_all(&xdir).unwrap();
    let o = isolated(
        env,
        &borg14_bin(),
        &["extract", &format!("{repo}::{name}")],
        &xdir,
    );
    assert!(
        o.status.success(),
        "borg extract {name}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let tdir = format!("x-tar-{name}");
    tar_extract(env, tarball, &tdir, &[]);
    assert_eq!(
        snapshot(&env.path(&tdir), true),
        snapshot(&xdir, true),
        "{name}: borg extract of rborg's import differs from tar -x"
    );
    r
}

#[test]
fn import_tar_restores_like_gnu_tar() {
    let env = Env::new();
    make_test_tree(&env);
    let repo = env.p("repo");
    env.borg12(&["init", "-e", "repokey", &repo]).ok();
    tool(&env, "tar", &["--format=gnu", "-cf", "gnu.tar", "src"]).ok();
    tool(&env, "tar", &["--format=posix", "-cf", "pax.tar", "src"]).ok();
    tool(
        &env,
        "tar",
        &["--format=gnu", "-S", "-cf", "sparse.tar", "src"],
    )
    .ok();
    for (name, tarball) in [
        ("gnu", "gnu.tar"),
        ("pax", "pax.tar"),
        ("sparse", "sparse.tar"),
    ] {
        let r = import_and_compare(&env, &repo, name, tarball);
        for line in [
            "d src",
            "A src/hello.txt",
            "s src/link",
            "f src/fifo",
            "c src/null-dev",
        ] {
            assert!(
                r.stderr.lines().any(|l| l == line),
                "{name}: --list lacks {line:?}:\n{}",
                r.stderr
            );
        }
        let links = r.stderr.lines().filter(|l| l.starts_with("h src/")).count();
        assert_eq!(links, 2, "{name}: two of the three hardlinks are tar links");
    }
    env.borg14(&["check", "--verify-data", &repo]).ok();

    // the same items as borg 1.4's own import (mtimes compared at 1 s: borg rounds pax
    // times through a float, rborg keeps their exact ns)
    let fmt = "{mode} {user} {group} {uid} {gid} {size} {mtime} {path} {source} {extra} {num_chunks} {xxh64}{NL}";
    for (name, tarball) in [("gnu", "gnu.tar"), ("pax", "pax.tar")] {
        let b = env.borg14(&[
            "import-tar",
            "--stats",
            &format!("{repo}::borg-{name}"),
            tarball,
        ]);
        b.ok();
        let bl = env.borg14(&["list", &format!("{repo}::borg-{name}"), "--format", fmt]);
        let rl = env.borg14(&["list", &format!("{repo}::{name}"), "--format", fmt]);
        assert_eq!(
            bl.ok().stdout,
            rl.ok().stdout,
            "{name}: items differ from borg's import"
        );
        let nfiles = |s: &str| {
            s.lines()
                .find(|l| l.starts_with("Number of files:"))
                .map(str::to_string)
        };
        let info = env.borg14(&["info", &format!("{repo}::{name}")]);
        let binfo = env.borg14(&["info", &format!("{repo}::borg-{name}")]);
        assert_eq!(nfiles(&info.ok().stdout), nfiles(&binfo.ok().stdout));
    }
}

#[test]
fn import_tar_options() {
    let env = Env::new();
    make_test_tree(&env);
    let repo = env.p("repo");
    env.borg12(&["init", "-e", "repokey", &repo]).ok();
    tool(&env, "tar", &["--format=gnu", "-cf", "a.tar", "src/dir"]).ok();
    tool(
        &env,
        "tar",
        &[
            "--format=posix",
            "-czf",
            "b.tar.gz",
            "src/hello.txt",
            "src/link",
        ],
    )
    .ok();
    let fmt = "{mode} {user} {group} {size} {mtime} {path} {source}{NL}";
    let list = |name: &str| {
        env.borg14(&["list", &format!("{repo}::{name}"), "--format", fmt])
            .ok()
            .stdout
            .clone()
    };

    // stdin
    let data = std::fs::read(env.path("a.tar")).unwrap();
    env.rborg_in(&["import-tar", &format!("{repo}::stdin"), "-"], &data)
        .ok();
    // auto filter by suffix, explicit filter
    env.rborg(&["import-tar", &format!("{repo}::gz"), "b.tar.gz"])
        .ok();
    std::fs::copy(env.path("b.tar.gz"), env.path("b.bin")).unwrap();
    env.rborg(&[
        "import-tar",
        "--tar-filter=gzip -dc",
        &format!("{repo}::gz2"),
        "b.bin",
    ])
    .ok();
    assert_eq!(list("gz"), list("gz2"));
    assert!(list("gz").contains("src/link hello.txt"), "{}", list("gz"));
    // concatenated tarballs need --ignore-zeros
    let mut cat = std::fs::read(env.path("a.tar")).unwrap();
    cat.extend(
        tool(&env, "gzip", &["-dc", "b.tar.gz"])
            .ok()
            .stdout
            .as_bytes(),
    );
    std::fs::write(env.path("cat.tar"), &cat).unwrap();
    env.rborg(&["import-tar", &format!("{repo}::cat1"), "cat.tar"])
        .ok();
    env.rborg(&[
        "import-tar",
        "--ignore-zeros",
        &format!("{repo}::cat2"),
        "cat.tar",
    ])
    .ok();
    assert_eq!(list("cat1"), list("stdin"));
    assert_eq!(list("cat2"), format!("{}{}", list("stdin"), list("gz")));

    // --list --filter, --json, --comment, --timestamp
    let r = env.rborg(&[
        "import-tar",
        "--list",
        "--filter=d",
        "--json",
        "--comment",
        "imported {now}",
        "--timestamp",
        "2021-02-03T04:05:06",
        &format!("{repo}::opts"),
        "a.tar",
    ]);
    r.ok();
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(lines, ["d src/dir", "d src/dir/sub"], "{}", r.stderr);
    let j: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(j["archive"]["name"], "opts");
    let regular = tar_list(&env, "a.tar")
        .lines()
        .filter(|l| l.starts_with('-'))
        .count();
    assert_eq!(
        j["archive"]["stats"]["nfiles"],
        2 * regular,
        "borg counts imported files twice"
    );
    assert_eq!(j["archive"]["start"], "2021-02-03T04:05:06.000000");
    assert!(j["cache"]["stats"]["total_chunks"].as_u64().unwrap() > 0);
    assert!(j["repository"]["id"].is_string() && j["encryption"]["mode"] == "repokey");
    let info = env.borg14(&["info", &format!("{repo}::opts")]);
    info.ok();
    assert!(
        info.stdout.contains("Comment: imported {now}"),
        "{}",
        info.stdout
    );

    // errors: existing archive, garbage, truncated data (no archive, repository intact)
    env.rborg(&["import-tar", &format!("{repo}::opts"), "a.tar"])
        .rc(2)
        .stderr_has("Archive opts already exists");
    std::fs::write(env.path("junk.tar"), vec![b'x'; 3000]).unwrap();
    env.rborg(&["import-tar", &format!("{repo}::junk"), "junk.tar"])
        .rc(2)
        .stderr_has("invalid header");
    tool(&env, "tar", &["-cf", "big.tar", "src/big.bin"]).ok();
    let big = std::fs::read(env.path("big.tar")).unwrap();
    std::fs::write(env.path("trunc.tar"), &big[..100_000]).unwrap();
    env.rborg(&["import-tar", &format!("{repo}::trunc"), "trunc.tar"])
        .rc(2)
        .stderr_has("unexpected end of data");
    env.rborg(&[
        "import-tar",
        "--tar-filter=false",
        &format!("{repo}::f"),
        "a.tar",
    ])
    .rc(2);
    let names = env.borg14(&["list", "--short", &repo]);
    assert!(!names.ok().stdout.contains("junk") && !names.stdout.contains("trunc"));

    // BORG format: the full borg item survives export → import (ns times, xattrs, ACLs)
    env.rborg(&["create", &format!("{repo}::orig"), "src"]).ok();
    env.rborg(&[
        "export-tar",
        "--tar-format=BORG",
        &format!("{repo}::orig"),
        "borg.tar",
    ])
    .ok();
    env.rborg(&["import-tar", &format!("{repo}::back"), "borg.tar"])
        .ok();
    let full = "{mode} {user} {group} {uid} {gid} {size} {isomtime} {isoctime} {path} {source} {extra} {xxh64}{NL}";
    let a = env.borg14(&["list", &format!("{repo}::orig"), "--format", full]);
    let b = env.borg14(&["list", &format!("{repo}::back"), "--format", full]);
    assert_eq!(a.ok().stdout, b.ok().stdout);
    let xdir = env.path("x-back");
    std::fs::create_dir_all(&xdir).unwrap();
    let o = isolated(
        &env,
        &borg14_bin(),
        &["extract", &format!("{repo}::back")],
        &xdir,
    );
    assert!(o.status.success());
    let diffs = common::tree_diff(&env.path("src"), &xdir.join("src"));
    assert!(diffs.is_empty(), "BORG round trip: {diffs:#?}");

    env.borg14(&["check", "--verify-data", &repo]).ok();
}

/// Archives from import-tar mark no `hardlink_master`; partial and full extraction by rborg
/// give the same files and link counts as borg's.
#[test]
fn imported_hardlinks_extract_like_borg() {
    use std::os::unix::fs::MetadataExt;
    let env = Env::new();
    let src = env.path("hl/src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("m"), b"linked content\n").unwrap();
    for n in ["b", "c", "d"] {
        std::fs::hard_link(src.join("m"), src.join(n)).unwrap();
    }
    let tarball = env.p("hl.tar");
    let st = std::process::Command::new("tar")
        .args(["-C", &env.p("hl"), "-cf", &tarball, "src"])
        .status()
        .unwrap();
    assert!(st.success());
    let repo = env.p("repo");
    env.rborg(&["init", "-e", "none", &repo]).ok();
    env.rborg(&["import-tar", &format!("{repo}::ours"), &tarball])
        .ok();
    env.borg14(&["import-tar", &format!("{repo}::theirs"), &tarball])
        .ok();
    let snapshot = |dir: &std::path::Path| -> Vec<String> {
        let mut v = Vec::new();
        for e in std::fs::read_dir(dir.join("src")).unwrap() {
            let e = e.unwrap();
            let md = e.metadata().unwrap();
            let data = std::fs::read(e.path()).unwrap();
            v.push(format!(
                "{} nlink={} {}",
                e.file_name().to_string_lossy(),
                md.nlink(),
                String::from_utf8_lossy(&data).trim()
            ));
        }
        v.sort();
        v
    };
    let mut n = 0;
    for sel in [
        &[][..],
        &["src/c"],
        &["src/c", "src/d"],
        &["src/m", "src/d"],
    ] {
        for arc in ["ours", "theirs"] {
            let mut results = Vec::new();
            for tool in ["rborg", "borg"] {
                n += 1;
                let out = env.path(&format!("out{n}"));
                std::fs::create_dir(&out).unwrap();
                let mut e = Env::new();
                e.vars = env.vars.clone();
                e.cwd = out.clone();
                let mut args = vec!["extract".to_string(), format!("{repo}::{arc}")];
                args.extend(sel.iter().map(|s| s.to_string()));
                let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
                if tool == "rborg" {
                    e.rborg(&args).ok();
                } else {
                    e.borg14(&args).ok();
                }
                results.push(snapshot(&out));
            }
            assert_eq!(results[0], results[1], "extract {arc} {sel:?}");
        }
    }
}
