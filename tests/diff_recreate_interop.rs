//! `diff` and `recreate` against real borg 1.4: archives written by borg, `borg diff` and
//! `rborg diff` must print the same; archives recreated by rborg must pass
//! `borg check --verify-data`, list and extract like borg's own recreate results.
//!
//! Real borg is required: these tests fail (they do not skip) when it is missing.

mod common;

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

use common::{borg14_bin, noise, tree_diff, Env, Out};

fn write(root: &Path, rel: &str, data: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, data).unwrap();
}

fn text(lines: usize, tag: &str) -> Vec<u8> {
    (0..lines)
        .flat_map(|i| format!("{tag} line {i} of some compressible text\n").into_bytes())
        .collect()
}

fn cstr(p: &Path) -> std::ffi::CString {
    std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap()
}

fn mkfifo(p: &Path) {
    // SAFETY: valid C string.
    assert_eq!(unsafe { libc::mkfifo(cstr(p).as_ptr(), 0o644) }, 0);
}

fn mknod(p: &Path, kind: libc::mode_t, major: u32, minor: u32) {
    // SAFETY: valid C string (tests run as root).
    let rc = unsafe { libc::mknod(cstr(p).as_ptr(), kind | 0o600, libc::makedev(major, minor)) };
    assert_eq!(rc, 0, "mknod {} (tests need root)", p.display());
}

fn chown(p: &Path, uid: u32, gid: u32) {
    // SAFETY: valid C string.
    assert_eq!(
        unsafe { libc::lchown(cstr(p).as_ptr(), uid, gid) },
        0,
        "chown (tests need root)"
    );
}

fn set_mtime(p: &Path, secs: i64, nsec: i64) {
    let t = libc::timespec {
        tv_sec: secs,
        tv_nsec: nsec,
    };
    // SAFETY: valid path and timespecs.
    unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            cstr(p).as_ptr(),
            [t, t].as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The first state of the changing tree.
fn tree_v1(r: &Path) {
    std::fs::create_dir_all(r).unwrap();
    write(r, "keep.txt", b"unchanged\n");
    write(r, "mod.txt", b"first version\n");
    write(r, "big.bin", &noise(600_000, 7));
    write(r, "text.log", &text(3000, "v1"));
    write(r, "mode.txt", b"mode\n");
    chmod(&r.join("mode.txt"), 0o600);
    write(r, "owner.txt", b"owner\n");
    write(r, "owner2.txt", b"owner2\n");
    write(r, "mtime.txt", b"mtime\n");
    write(r, "removed.txt", b"will be removed\n");
    write(r, "grüße.txt", b"unicode\n");
    write(r, "typechg", b"file that becomes a directory\n");
    write(r, "dir_removed/inner.txt", b"inner\n");
    write(r, "sub/deep/file.txt", b"deep\n");
    write(r, "hl1", b"hardlinked v1\n");
    std::fs::hard_link(r.join("hl1"), r.join("hl2")).unwrap();
    write(r, "CACHEDIR.TAG", b"not a real tag at the top\n");
    symlink("keep.txt", r.join("link")).unwrap();
    symlink("mod.txt", r.join("link_removed")).unwrap();
    mkfifo(&r.join("fifo_removed"));
    mknod(&r.join("chr_removed"), libc::S_IFCHR, 1, 3);
    for (i, p) in ["keep.txt", "mtime.txt", "big.bin", "text.log", "grüße.txt"]
        .iter()
        .enumerate()
    {
        set_mtime(&r.join(p), 1_600_000_000 + i as i64, 123_456_789);
    }
}

/// Changes every kind of thing `diff` reports.
fn tree_v2(r: &Path) {
    write(r, "mod.txt", b"second version, longer than the first\n");
    let mut big = noise(600_000, 7);
    big[300_000..300_100].copy_from_slice(&[0x55; 100]);
    big.extend_from_slice(&noise(50_000, 9));
    write(r, "big.bin", &big);
    write(r, "text.log", &text(3500, "v2"));
    chmod(&r.join("mode.txt"), 0o755);
    chown(&r.join("owner.txt"), 65534, 65534);
    chown(&r.join("owner2.txt"), 4321, 4321);
    set_mtime(&r.join("mtime.txt"), 1_650_000_000, 987_654_321);
    std::fs::remove_file(r.join("removed.txt")).unwrap();
    write(r, "added.txt", b"new file\n");
    write(r, "grüße.txt", b"unicode, changed\n");
    std::fs::remove_file(r.join("typechg")).unwrap();
    std::fs::create_dir(r.join("typechg")).unwrap();
    std::fs::remove_dir_all(r.join("dir_removed")).unwrap();
    write(r, "dir_added/new_inner.txt", b"new inner\n");
    std::fs::write(r.join("hl1"), b"hardlinked v2 (both names)\n").unwrap();
    std::fs::remove_file(r.join("link")).unwrap();
    symlink("mod.txt", r.join("link")).unwrap();
    std::fs::remove_file(r.join("link_removed")).unwrap();
    symlink("added.txt", r.join("link_added")).unwrap();
    std::fs::remove_file(r.join("fifo_removed")).unwrap();
    mkfifo(&r.join("fifo_added"));
    std::fs::remove_file(r.join("chr_removed")).unwrap();
    mknod(&r.join("chr_added"), libc::S_IFCHR, 1, 5);
    mknod(&r.join("blk_added"), libc::S_IFBLK, 7, 0);
    std::fs::remove_file(r.join("sub/deep/file.txt")).unwrap();
}

fn init(env: &Env) {
    env.borg14(&["init", "-e", "repokey", "repo"]).ok();
}

/// Compares borg's and rborg's results of the same command: rc, stdout, stderr.
#[track_caller]
fn same_output(env: &Env, args: &[&str]) {
    let (b, r) = std::thread::scope(|s| {
        let b = s.spawn(|| env.borg14(args));
        let r = env.rborg(args);
        (b.join().unwrap(), r)
    });
    assert_eq!(
        (b.rc, &b.stdout, &b.stderr),
        (r.rc, &r.stdout, &r.stderr),
        "borg vs rborg differ for {args:?}"
    );
}

#[test]
fn diff_matches_borg() {
    assert!(borg14_bin().exists());
    let env = Env::new();
    let src = env.path("src");
    tree_v1(&src);
    init(&env);
    let small = ["--chunker-params", "10,14,12,4095"];
    let create = |name: &str, extra: &[&str]| {
        let mut a = vec!["create"];
        a.extend_from_slice(extra);
        let loc = format!("repo::{name}");
        a.push(&loc);
        a.push("src");
        env.borg14(&a).ok();
    };
    create("a1", &small);
    tree_v2(&src);
    create("a2", &small);
    // same tree with other chunker params: content compared by data, not ids
    create("a3", &[]);

    let cases: Vec<Vec<&str>> = vec![
        vec!["diff", "repo::a1", "a2"],
        vec!["diff", "repo::a2", "a1"],
        vec!["diff", "--json-lines", "repo::a1", "a2"],
        vec!["diff", "--content-only", "repo::a1", "a2"],
        vec!["diff", "--content-only", "--json-lines", "repo::a1", "a2"],
        vec!["diff", "--numeric-ids", "repo::a1", "a2"],
        vec!["diff", "--sort-by", "path", "repo::a1", "a2"],
        vec!["diff", "--sort-by", ">size_diff,path", "repo::a1", "a2"],
        vec![
            "diff",
            "--sort-by",
            "size_added,<size_removed",
            "repo::a1",
            "a2",
        ],
        vec!["diff", "--sort-by", ">size", "repo::a1", "a2"],
        vec![
            "diff",
            "--sort-by",
            "uid,>gid",
            "--json-lines",
            "repo::a1",
            "a2",
        ],
        vec![
            "diff",
            "--sort-by",
            ">mtime_diff,ctime_diff",
            "repo::a1",
            "a2",
        ],
        vec!["diff", "--sort-by", "mtime", "repo::a1", "a2"],
        vec![
            "diff",
            "--sort-by",
            "user,>group",
            "repo::a1",
            "a2",
            "src/mod.txt",
            "src/owner.txt",
            "src/hl1",
        ],
        vec!["diff", "--sort", "repo::a1", "a2"],
        vec![
            "diff",
            "repo::a1",
            "a2",
            "src/sub",
            "src/hl2",
            "src/nonexistent",
        ],
        vec!["diff", "-e", "*.txt", "repo::a1", "a2"],
        vec![
            "diff",
            "--pattern=- src/dir_*",
            "--json-lines",
            "repo::a1",
            "a2",
            "src",
        ],
        vec!["diff", "repo::a1", "a3"],
        vec!["diff", "--json-lines", "repo::a1", "a3"],
        vec!["diff", "--same-chunker-params", "repo::a2", "a3"],
        vec!["diff", "repo::a2", "a3"],
        vec!["diff", "repo::a1", "a1"],
        vec!["diff", "repo::a1", "nonexistent"],
    ];
    // a few at a time (each runs borg and rborg; all share the repository lock)
    for batch in cases.chunks(4) {
        std::thread::scope(|s| {
            for c in batch {
                let env = &env;
                let mut args = c.clone();
                args.insert(1, "--lock-wait=60");
                s.spawn(move || same_output(env, &args));
            }
        });
    }
    // times are local: another zone must give the same text as borg's
    let mut env = env;
    env.set("TZ", "America/St_Johns");
    same_output(&env, &["diff", "repo::a1", "a2", "src/mtime.txt"]);
    same_output(
        &env,
        &["diff", "--json-lines", "repo::a1", "a2", "src/mtime.txt"],
    );
    // every change kind is covered
    let out = env.rborg(&["diff", "repo::a1", "a2"]);
    for needle in [
        "added directory",
        "removed directory",
        "added link",
        "removed link",
        "changed link",
        "added fifo",
        "removed fifo",
        "added chrdev",
        "removed chrdev",
        "added blkdev",
        "[-rw------- -> -rwxr-xr-x]",
        "[root:root -> nobody:nogroup]",
        "[root:root -> None:None]",
        "[mtime: ",
        "[ctime: ",
        "added           9 B src/added.txt",
        "removed        16 B src/removed.txt",
    ] {
        assert!(
            out.stdout.contains(needle),
            "missing {needle:?}:\n{}",
            out.stdout
        );
    }
}

/// A borg-made repository and an identical copy in a second environment (own cache and
/// security dir, same repository id and key).
struct Pair {
    borg: Env,
    rborg: Env,
}

fn copy_dir(from: &Path, to: &Path) {
    let st = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success());
}

fn recreate_tree(r: &Path) {
    tree_v1(r);
    // exclusion tags
    write(
        r,
        "cache1/CACHEDIR.TAG",
        b"Signature: 8a477f597d28d172789f06886806bc55\n# x\n",
    );
    write(r, "cache1/data", b"cached data\n");
    write(r, "cache2/CACHEDIR.TAG", b"Signature: wrong\n");
    write(r, "cache2/data", b"not a cache\n");
    write(r, "tagged/.nobackup", b"");
    write(r, "tagged/data", b"tagged data\n");
    write(r, "tagged/sub/more", b"more tagged data\n");
    // a hardlink whose master (first in archive order) gets excluded
    write(r, "hlx/a_master", b"shared content of an excluded master\n");
    std::fs::hard_link(r.join("hlx/a_master"), r.join("hlx/b_slave")).unwrap();
    std::fs::hard_link(r.join("hlx/a_master"), r.join("hlx/c_slave")).unwrap();
    write(r, "many/x.tmp", b"temp\n");
    write(r, "many/y.tmp", &noise(100_000, 3));
    write(r, "many/keep.dat", &text(2000, "keep"));
}

fn pair() -> Pair {
    let borg = Env::new();
    let src = borg.path("src");
    recreate_tree(&src);
    init(&borg);
    borg.borg14(&["create", "--comment", "first", "repo::one", "src"])
        .ok();
    write(&src, "added-later.txt", &text(100, "later"));
    std::fs::write(src.join("mod.txt"), b"changed for two\n").unwrap();
    borg.borg14(&["create", "-C", "zstd,1", "repo::two", "src"])
        .ok();
    let rborg = Env::new();
    copy_dir(&borg.path("repo"), &rborg.path("repo"));
    Pair { borg, rborg }
}

const LIST_FMT: &str =
    "{mode} {user} {group} {uid} {gid} {size} {num_chunks} {isomtime} {path}{extra} {sha256}{NL}";

fn listing(env: &Env, archive: &str) -> String {
    env.borg14(&["list", "--format", LIST_FMT, &format!("repo::{archive}")])
        .ok()
        .stdout
        .clone()
}

fn archives(env: &Env) -> Vec<String> {
    env.borg14(&["list", "--short", "repo"])
        .ok()
        .stdout
        .lines()
        .map(String::from)
        .collect()
}

fn check(env: &Env) {
    let o = env.borg14(&["check", "--verify-data", "repo"]);
    o.ok();
}

/// Extracts with borg in both environments and compares the trees.
fn same_extract(p: &Pair, archive: &str) {
    for env in [&p.borg, &p.rborg] {
        let dir = env.path(&format!("x-{archive}"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut e = Env {
            dir: tempfile::tempdir().unwrap(),
            vars: env.vars.clone(),
            cwd: dir.clone(),
        };
        e.set("BORG_RELOCATED_REPO_ACCESS_IS_OK", "yes");
        let repo = format!("{}::{archive}", env.p("repo"));
        e.borg14(&["extract", &repo]).ok();
    }
    let a = p.borg.path(&format!("x-{archive}"));
    let b = p.rborg.path(&format!("x-{archive}"));
    let d = tree_diff(&a, &b);
    assert!(d.is_empty(), "extracted trees differ: {d:#?}");
}

/// Runs the same recreate with borg (on the original) and rborg (on the copy); returns
/// both results.
fn recreate_both(p: &Pair, args: &[&str]) -> (Out, Out) {
    std::thread::scope(|s| {
        let b = s.spawn(|| p.borg.borg14(args));
        let r = p.rborg.rborg(args);
        (b.join().unwrap(), r)
    })
}

fn lines_sorted(s: &str) -> Vec<&str> {
    let mut v: Vec<&str> = s.lines().collect();
    v.sort();
    v
}

#[test]
fn recreate_excludes_like_borg() {
    let p = pair();
    let args = [
        "recreate",
        "--list",
        "-e",
        "*.tmp",
        "-e",
        "src/hlx/a_master",
        "--exclude-caches",
        "--exclude-if-present",
        ".nobackup",
        "repo::one",
    ];
    let (b, r) = recreate_both(&p, &args);
    b.ok();
    r.ok();
    // --list: same status lines in the same order
    assert_eq!(b.stderr, r.stderr, "--list output differs");
    assert!(r.stderr.contains("x src/many/x.tmp"), "{}", r.stderr);
    assert_eq!(archives(&p.borg), archives(&p.rborg));
    assert_eq!(listing(&p.borg, "one"), listing(&p.rborg, "one"));
    assert_eq!(listing(&p.borg, "two"), listing(&p.rborg, "two"));
    let l = listing(&p.rborg, "one");
    assert!(!l.contains("x.tmp") && !l.contains("cache1/data") && !l.contains("tagged/"));
    assert!(l.contains("cache2/data") && l.contains("src/hlx/b_slave"));
    check(&p.rborg);
    same_extract(&p, "one");
    // rborg's own view agrees with borg's (no isomtime: rborg's list truncates to µs where
    // borg rounds the float)
    let fmt = "{mode} {user} {group} {size} {num_chunks} {path}{extra} {sha256}{NL}";
    let rl = p.rborg.rborg(&["list", "--format", fmt, "repo::one"]);
    let bl = p.rborg.borg14(&["list", "--format", fmt, "repo::one"]);
    assert_eq!(rl.ok().stdout, bl.ok().stdout);
    // recreate metadata: comment, times and command line kept, recreate_cmdline added
    let info = |env: &Env| {
        let o = env.borg14(&["info", "--json", "repo::one"]);
        let v: serde_json::Value = serde_json::from_str(&o.ok().stdout).unwrap();
        let a = &v["archives"][0];
        (
            a["comment"].clone(),
            a["start"].clone(),
            a["end"].clone(),
            a["command_line"].clone(),
            a["stats"]["nfiles"].clone(),
            a["stats"]["original_size"].clone(),
        )
    };
    assert_eq!(info(&p.borg), info(&p.rborg));
    let dump = p.rborg.path("dump.json");
    p.rborg
        .borg14(&["debug", "dump-archive", "repo::one", dump.to_str().unwrap()])
        .ok();
    let d: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&dump).unwrap()).unwrap();
    let rc = d["_meta"]["recreate_cmdline"].as_array().unwrap();
    assert_eq!(rc[1], "recreate");
}

#[test]
fn recreate_keep_tags_and_paths_like_borg() {
    let p = pair();
    let args = [
        "recreate",
        "--list",
        "--exclude-caches",
        "--exclude-if-present",
        ".nobackup",
        "--keep-exclude-tags",
        "repo::two",
        "src/cache1",
        "src/tagged",
        "src/hlx/c_slave",
        "src/keep.txt",
    ];
    let (b, r) = recreate_both(&p, &args);
    b.ok();
    r.ok();
    assert_eq!(b.stderr, r.stderr);
    assert_eq!(listing(&p.borg, "two"), listing(&p.rborg, "two"));
    check(&p.rborg);
    same_extract(&p, "two");
}

#[test]
fn recreate_recompress_like_borg() {
    let p = pair();
    let before = listing(&p.rborg, "one");
    let csizes = |env: &Env, a: &str| -> Vec<(String, i64)> {
        env.borg14(&[
            "list",
            "--format",
            "{path} {csize}{NL}",
            &format!("repo::{a}"),
        ])
        .ok()
        .stdout
        .lines()
        .map(|l| {
            let (p, c) = l.rsplit_once(' ').unwrap();
            (p.to_string(), c.parse().unwrap())
        })
        .collect()
    };
    let lz4 = csizes(&p.rborg, "one");
    let (b, r) = recreate_both(&p, &["recreate", "--recompress", "-C", "zstd,3", "repo"]);
    b.ok();
    r.ok();
    assert_eq!(b.stdout, r.stdout, "Processing lines differ");
    assert_eq!(r.stdout, "Processing one\nProcessing two\n");
    for a in ["one", "two"] {
        assert_eq!(listing(&p.borg, a), listing(&p.rborg, a));
    }
    assert_eq!(listing(&p.rborg, "one"), before);
    // zstd really was applied: same sizes as borg's (within a few bytes: libzstd versions)
    let (cb, cr) = (csizes(&p.borg, "one"), csizes(&p.rborg, "one"));
    for ((pb, b), ((pr, r), (_, old))) in cb.iter().zip(cr.iter().zip(lz4.iter())) {
        assert_eq!(pb, pr);
        assert!((b - r).abs() <= b / 50 + 8, "{pb}: csize {r} vs borg {b}");
        if pb.ends_with("text.log") {
            assert!(*r < *old, "{pb}: zstd csize {r} not below lz4 csize {old}");
        }
    }
    check(&p.rborg);
    same_extract(&p, "two");
    // always: level change is applied; if-different afterwards changes nothing
    let (b, r) = recreate_both(
        &p,
        &[
            "recreate",
            "--recompress=always",
            "-C",
            "zstd,10",
            "repo::two",
        ],
    );
    b.ok();
    r.ok();
    assert_eq!(listing(&p.borg, "two"), listing(&p.rborg, "two"));
    check(&p.rborg);
}

#[test]
fn recreate_rechunk_like_borg() {
    let p = pair();
    let (b, r) = recreate_both(
        &p,
        &["recreate", "--chunker-params", "10,14,12,4095", "repo::one"],
    );
    b.ok();
    r.ok();
    assert_eq!(listing(&p.borg, "one"), listing(&p.rborg, "one"));
    let cp = |env: &Env| {
        let o = env.borg14(&["info", "--json", "repo::one"]);
        let v: serde_json::Value = serde_json::from_str(&o.ok().stdout).unwrap();
        v["archives"][0]["chunker_params"].clone()
    };
    assert_eq!(
        cp(&p.rborg),
        serde_json::json!(["buzhash", 10, 14, 12, 4095])
    );
    assert_eq!(cp(&p.borg), cp(&p.rborg));
    check(&p.rborg);
    same_extract(&p, "one");
    // diff now compares contents (different chunker params), like borg's
    same_output(&p.rborg, &["diff", "repo::one", "two"]);
    // and back to the defaults
    let (b, r) = recreate_both(
        &p,
        &[
            "recreate",
            "--chunker-params",
            "default",
            "-C",
            "lz4",
            "repo::one",
        ],
    );
    b.ok();
    r.ok();
    assert_eq!(listing(&p.borg, "one"), listing(&p.rborg, "one"));
    assert_eq!(
        cp(&p.rborg),
        serde_json::json!(["buzhash", 19, 23, 21, 4095])
    );
    check(&p.rborg);
}

#[test]
fn recreate_target_comment_timestamp_dry_run() {
    let p = pair();
    let orig = listing(&p.rborg, "one");
    let ids = |env: &Env| env.borg14(&["list", "repo"]).ok().stdout.clone();
    // dry run: status lines like borg, nothing changes
    let before = ids(&p.rborg);
    let (b, r) = recreate_both(
        &p,
        &["recreate", "-n", "--list", "-e", "src/sub", "repo::one"],
    );
    b.ok();
    r.ok();
    assert_eq!(b.stderr, r.stderr);
    assert!(r.stderr.contains("x src/sub/deep/file.txt") && r.stderr.contains("- src/keep.txt"));
    assert_eq!(ids(&p.rborg), before);
    // nothing to do: same error and rc
    let (b, r) = recreate_both(&p, &["recreate", "repo::one"]);
    assert_eq!((b.rc, &b.stderr), (r.rc, &r.stderr));
    assert_eq!(r.rc, 2);
    let (b, r) = recreate_both(&p, &["recreate", "--target", "x", "repo"]);
    assert_eq!((b.rc, &b.stderr), (r.rc, &r.stderr));
    // --target keeps the original
    let args = [
        "recreate",
        "--target",
        "one-slim",
        "-e",
        "src/big.bin",
        "--comment",
        "slimmed",
        "--timestamp",
        "2020-02-02T10:11:12",
        "repo::one",
    ];
    let (b, r) = recreate_both(&p, &args);
    b.ok();
    r.ok();
    // sorted by time: the new timestamp puts it first
    assert_eq!(archives(&p.rborg), ["one-slim", "one", "two"]);
    assert_eq!(archives(&p.borg), archives(&p.rborg));
    assert_eq!(listing(&p.rborg, "one"), orig);
    assert_eq!(listing(&p.borg, "one-slim"), listing(&p.rborg, "one-slim"));
    let info = p.rborg.borg14(&["info", "--json", "repo::one-slim"]);
    let v: serde_json::Value = serde_json::from_str(&info.ok().stdout).unwrap();
    assert_eq!(v["archives"][0]["comment"], "slimmed");
    assert!(v["archives"][0]["start"]
        .as_str()
        .unwrap()
        .starts_with("2020-02-02T10:11:12"));
    // an existing target is refused
    let (b, r) = recreate_both(&p, &["recreate", "--target", "two", "-e", "x", "repo::one"]);
    assert_eq!((b.rc, &b.stderr), (r.rc, &r.stderr));
    check(&p.rborg);
    same_extract(&p, "one-slim");
    // rborg's diff of borg-listed archives agrees with borg's
    same_output(&p.rborg, &["diff", "repo::one", "one-slim"]);
    // borg and rborg list the repository alike
    same_output(&p.rborg, &["list", "repo"]);
    // all archives: checkpoints and the others' leftovers are not recreated
    write(&p.rborg.path("src"), "keep.txt", b"checkpoint content\n");
    p.rborg
        .borg14(&["create", "repo::three.checkpoint", "src/keep.txt"])
        .ok();
    let cp_before = p
        .rborg
        .borg14(&[
            "list",
            "--consider-checkpoints",
            "--format",
            "{name} {id}{NL}",
            "repo",
        ])
        .ok()
        .stdout
        .clone();
    let r = p.rborg.rborg(&["recreate", "--comment", "all", "repo"]);
    assert_eq!(
        r.ok().stdout,
        "Processing one-slim\nProcessing one\nProcessing two\n"
    );
    let cp_after = p
        .rborg
        .borg14(&[
            "list",
            "--consider-checkpoints",
            "--format",
            "{name} {id}{NL}",
            "repo",
        ])
        .ok()
        .stdout
        .clone();
    let cp_line = |s: &str| {
        s.lines()
            .find(|l| l.starts_with("three.checkpoint "))
            .unwrap()
            .to_string()
    };
    assert_eq!(cp_line(&cp_before), cp_line(&cp_after));
    assert_ne!(cp_before, cp_after);
    assert_eq!(
        lines_sorted(&listing(&p.rborg, "two")),
        lines_sorted(&listing(&p.borg, "two"))
    );
}
