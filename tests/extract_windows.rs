//! Extract works through an archive in windows of 4096 items: while the pool writes one
//! window, the next one is read and its directories are made, and directory attributes are
//! restored at the end, the deepest directories first, each depth in parallel. Archives of
//! several windows must come out exactly as borg 1.4 extracts them:
//!
//! 1. hardlink slaves one window after their master, with the master extracted and without
//!    it (the slaves then take its chunks); directory modes and mtimes at every depth;
//! 2. directories at or under a file's path (possible in tar imports), in the same window
//!    as the file and one window later: they must not be made before the file is written.
//!
//! borg 1.4 is required: the test fails (not skips) without it.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use common::{borg14_bin, Env};

/// What a restored entry must share with borg's: type and mode, mtime (ns), content or
/// link target, and for hardlinked files the first path of their inode group.
fn snapshot(root: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, inodes: &mut BTreeMap<u64, String>, out: &mut Vec<String>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let rel = e.path().strip_prefix(root).unwrap().display().to_string();
            let m = std::fs::symlink_metadata(e.path()).unwrap();
            let mut desc = format!("{:o} {}.{:09}", m.mode(), m.mtime(), m.mtime_nsec());
            if m.is_file() {
                let data = std::fs::read(e.path()).unwrap();
                desc += &format!(" {} bytes {:x}", data.len(), fnv(&data));
                if m.nlink() > 1 {
                    let first = inodes.entry(m.ino()).or_insert_with(|| rel.clone());
                    desc += &format!(" linked to {first}");
                }
            } else if m.file_type().is_symlink() {
                desc += &format!(" -> {}", std::fs::read_link(e.path()).unwrap().display());
            }
            out.push(format!("{rel}\t{desc}"));
            if m.is_dir() {
                walk(root, &e.path(), inodes, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut BTreeMap::new(), &mut out);
    out.into_iter()
        .map(|l| {
            let (k, v) = l.split_once('\t').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect()
}

fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf29ce484222325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    })
}

fn set_mtime(p: &Path, secs: u64) {
    let t = std::time::UNIX_EPOCH + std::time::Duration::new(secs, 123_456_789);
    std::fs::File::open(p)
        .unwrap()
        .set_times(std::fs::FileTimes::new().set_accessed(t).set_modified(t))
        .unwrap();
}

/// Extracts `args` (archive and paths) with rborg and with borg 1.4 into fresh directories
/// and asserts equal trees and exit codes; returns rborg's stderr.
fn extract_both(env: &mut Env, name: &str, args: &[&str], expected_rc: i32) -> String {
    let mut trees = Vec::new();
    let mut rborg_err = String::new();
    for tool in ["rborg", "borg"] {
        let dest = env.path(&format!("{name}-{tool}"));
        std::fs::create_dir(&dest).unwrap();
        env.cwd = dest.clone();
        let mut full = vec!["extract"];
        full.extend_from_slice(args);
        let o = if tool == "rborg" {
            env.rborg(&full)
        } else {
            env.borg(&borg14_bin(), &full)
        };
        o.rc(expected_rc);
        if tool == "rborg" {
            rborg_err = o.stderr.clone();
        }
        trees.push(snapshot(&dest));
    }
    env.cwd = env.dir.path().to_path_buf();
    let (ours, borgs) = (&trees[0], &trees[1]);
    assert!(
        ours.len() > 1 || expected_rc != 0,
        "{name}: nothing extracted"
    );
    for (k, v) in borgs {
        assert_eq!(
            ours.get(k),
            Some(v),
            "{name}: {k} differs from borg 1.4's extract"
        );
    }
    assert_eq!(
        ours.len(),
        borgs.len(),
        "{name}: rborg extracted more entries than borg"
    );
    rborg_err
}

#[test]
fn hardlinks_and_directories_across_windows() {
    let mut env = Env::new();
    let src = env.path("src");
    // 4600 files in 46 directories of two levels: more than one window of items
    for d in 0..46 {
        let dir = src.join(format!("a/d{:02}/e{}", d, d % 3));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..100 {
            let n = d * 100 + f;
            std::fs::write(
                dir.join(format!("f{n:04}")),
                format!("{n}\n").repeat(n % 7 + 1),
            )
            .unwrap();
        }
    }
    // a master in the first window, slaves in the second (`z` sorts after `a`)
    std::fs::create_dir_all(src.join("z/deep/er")).unwrap();
    let master = src.join("a/d00/e0/f0003");
    std::fs::hard_link(&master, src.join("z/link1")).unwrap();
    std::fs::hard_link(&master, src.join("z/deep/er/link2")).unwrap();
    // directory attributes at every depth, set after their contents
    for (i, d) in [
        "a/d00/e0",
        "a/d07/e1",
        "a/d45/e0",
        "a/d07",
        "z/deep/er",
        "z/deep",
        "a",
        "z",
    ]
    .iter()
    .enumerate()
    {
        let p = src.join(d);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o750 - i as u32 * 8))
            .unwrap();
        set_mtime(&p, 1_500_000_000 + i as u64 * 1000);
    }
    set_mtime(&master, 1_400_000_000);
    let repo = env.p("repo");
    env.rborg(&["init", "--encryption=none", &repo]).ok();
    env.cwd = src.clone();
    env.rborg(&["create", &format!("{repo}::a"), "a", "z"]).ok();
    env.cwd = env.dir.path().to_path_buf();

    extract_both(&mut env, "all", &[&format!("{repo}::a")], 0);
    // the master is not extracted: the slaves take its chunks
    let got = extract_both(&mut env, "slaves", &[&format!("{repo}::a"), "z"], 0);
    assert!(got.is_empty(), "unexpected output: {got}");
    let slave = env.path("slaves-rborg/z/deep/er/link2");
    assert_eq!(std::fs::read(slave).unwrap(), b"3\n".repeat(4));
    assert_eq!(
        std::fs::metadata(env.path("slaves-rborg/z/link1"))
            .unwrap()
            .nlink(),
        2,
        "the two slaves are linked to each other"
    );
}

#[test]
fn directories_under_files_across_windows() {
    let mut env = Env::new();
    let stage = env.path("stage");
    std::fs::create_dir(&stage).unwrap();
    let tar = |args: &[&str]| {
        let o = Command::new("tar")
            .args(args)
            .current_dir(&stage)
            .output()
            .unwrap_or_else(|e| panic!("cannot run GNU tar (required by this test): {e}"));
        assert!(
            o.status.success(),
            "tar {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    let tarball = env.p("t.tar");
    // `near` (a file) and `near/sub/` in one window; `far` (a file), 4500 files, then
    // `far/sub/` and `far/sub/g` one window later
    std::fs::write(stage.join("near"), b"near file\n").unwrap();
    std::fs::write(stage.join("far"), b"far file\n").unwrap();
    tar(&["-cf", &tarball, "near"]);
    std::fs::remove_file(stage.join("near")).unwrap();
    std::fs::create_dir_all(stage.join("near/sub")).unwrap();
    tar(&["-rf", &tarball, "near/sub", "far"]);
    std::fs::create_dir(stage.join("many")).unwrap();
    for n in 0..4500 {
        std::fs::write(stage.join(format!("many/m{n:04}")), format!("{n}\n")).unwrap();
    }
    tar(&["-rf", &tarball, "many"]);
    std::fs::remove_file(stage.join("far")).unwrap();
    std::fs::create_dir_all(stage.join("far/sub")).unwrap();
    std::fs::write(stage.join("far/sub/g"), b"under a file\n").unwrap();
    tar(&["-rf", &tarball, "far/sub"]);

    let repo = env.p("repo");
    env.rborg(&["init", "--encryption=none", &repo]).ok();
    env.rborg(&["import-tar", &format!("{repo}::t"), &tarball])
        .ok();
    // both tools warn about the directories they cannot make (rc 1) and keep the files
    extract_both(&mut env, "clash", &[&format!("{repo}::t")], 1);
    for (file, text) in [("near", "near file\n"), ("far", "far file\n")] {
        let p = env.path(&format!("clash-rborg/{file}"));
        assert_eq!(
            std::fs::read_to_string(p).unwrap(),
            text,
            "{file} was replaced"
        );
    }
}
