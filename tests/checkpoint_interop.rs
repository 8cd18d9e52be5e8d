//! Checkpoints inside files: `--checkpoint-interval` while a file is still being read writes
//! `<path>.borg_part_N` items (kept, hidden, in the final archive, as borg does), and a create
//! killed at any moment leaves a `.checkpoint` archive that real borg checks without a single
//! orphaned object, even though other files were being read in parallel.

mod common;

use std::io::Write;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

/// Writes `pieces` into a file one after another with pauses between them (a slow producer).
/// The file `started` appears once the third piece has been taken by the reader (a pipe holds
/// far less than a piece, so the reader is then inside `create`).
fn slow_writer_script(env: &Env, pieces: &[Vec<u8>], pause: &str) -> String {
    let mut script = String::new();
    for (i, p) in pieces.iter().enumerate() {
        let f = env.path(&format!("piece{i}"));
        std::fs::write(&f, p).unwrap();
        if i > 0 {
            script.push_str(&format!("sleep {pause}; "));
        }
        script.push_str(&format!("cat {}; ", f.display()));
        if i == 2 {
            script.push_str(&format!("touch {}; ", env.path("started").display()));
        }
    }
    script
}

fn part_lines(listing: &str) -> Vec<(String, u64)> {
    listing
        .lines()
        .filter_map(|l| {
            let (path, size) = l.rsplit_once(' ')?;
            Some((path.to_string(), size.parse().ok()?))
        })
        .collect()
}

#[test]
fn slow_stream_gets_part_files_borg_reads() {
    let env = Env::new();
    let repo = env.p("repo");
    env.rborg(&["init", "-e", "repokey-blake2", &repo]).ok();
    let pieces: Vec<Vec<u8>> = (0..5).map(|i| noise(3_000_000, 100 + i)).collect();
    let whole: Vec<u8> = pieces.concat();
    let script = slow_writer_script(&env, &pieces, "0.6");
    env.rborg(&[
        "create",
        "--checkpoint-interval",
        "1",
        "--content-from-command",
        &format!("{repo}::a"),
        "--",
        "sh",
        "-c",
        &script,
    ])
    .ok();
    for (name, borg) in borgs() {
        env.borg(&borg, &["check", "--verify-data", &repo]).ok();
        // hidden by default, as in borg
        let plain = env.borg(&borg, &["list", "--short", &format!("{repo}::a")]);
        assert_eq!(plain.ok().stdout.trim(), "stdin", "{name}");
        let all = env.borg(
            &borg,
            &[
                "list",
                "--consider-part-files",
                "--format",
                "{path} {size}{NL}",
                &format!("{repo}::a"),
            ],
        );
        let lines = part_lines(&all.ok().stdout);
        let parts: Vec<_> = lines
            .iter()
            .filter(|(p, _)| p.contains(".borg_part_"))
            .collect();
        assert!(parts.len() >= 2, "{name}: expected parts:\n{}", all.stdout);
        for (i, (p, _)) in parts.iter().enumerate() {
            assert_eq!(p, &format!("stdin.borg_part_{}", i + 1), "{name}");
        }
        // parts concatenate to the whole file, which follows them
        let sum: u64 = parts.iter().map(|(_, s)| s).sum();
        assert_eq!(sum, whole.len() as u64, "{name}");
        assert_eq!(
            lines.last().unwrap(),
            &("stdin".to_string(), whole.len() as u64)
        );
    }
    // extracted by borg: the file and, on request, its parts
    let out = env.path("out");
    std::fs::create_dir(&out).unwrap();
    let mut e = Env::new();
    e.vars = env.vars.clone();
    e.cwd = out.clone();
    e.borg14(&["extract", "--consider-part-files", &format!("{repo}::a")])
        .ok();
    assert!(std::fs::read(out.join("stdin")).unwrap() == whole);
    let mut joined = Vec::new();
    for i in 1.. {
        match std::fs::read(out.join(format!("stdin.borg_part_{i}"))) {
            Ok(d) => joined.extend_from_slice(&d),
            Err(_) => break,
        }
    }
    assert!(joined == whole, "parts do not concatenate to the stream");
    // rborg's statistics count the parts like borg's
    let info = env.rborg(&["info", "--json", &format!("{repo}::a")]);
    let v: serde_json::Value = serde_json::from_str(&info.ok().stdout).unwrap();
    assert_eq!(v["archives"][0]["stats"]["nfiles"], 1);
}

/// Waits until `log` holds `n` checkpoint messages.
fn wait_for_checkpoints(log: &Path, n: usize, child: &mut std::process::Child) {
    let t0 = Instant::now();
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.matches("checkpoint archive").count() >= n {
            return;
        }
        if let Ok(Some(st)) = child.try_wait() {
            panic!("create ended ({st}) before {n} checkpoints:\n{text}");
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "no checkpoints:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn killed_create_leaves_a_checkpoint_borg_accepts() {
    let env = Env::new();
    let repo = env.p("repo");
    env.rborg(&["init", "-e", "repokey", &repo]).ok();
    let src = env.path("t");
    std::fs::create_dir(&src).unwrap();
    // Walk order: a_fifo (slow, read as a file), 40 small files, g_fifo (slow), z_big. Two
    // workers: one is stuck in a_fifo (the archive's current position), the other finishes
    // files behind it and gets stuck in g_fifo: at a checkpoint, chunks of all of them are
    // stored and must all be referenced by the checkpoint archive.
    let mkfifo = |name: &str| {
        let c = std::ffi::CString::new(src.join(name).to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    };
    mkfifo("a_fifo");
    for i in 0..40 {
        std::fs::write(src.join(format!("f{i:02}")), noise(150_000, i)).unwrap();
    }
    mkfifo("g_fifo");
    std::fs::write(src.join("z_big"), noise(20_000_000, 99)).unwrap();
    // in this order (a directory would be walked in inode order, which varies)
    let mut paths = vec!["t/a_fifo".to_string()];
    paths.extend((0..40).map(|i| format!("t/f{i:02}")));
    paths.extend(["t/g_fifo".to_string(), "t/z_big".to_string()]);
    std::fs::write(env.path("paths.txt"), paths.join("\n") + "\n").unwrap();
    let a_data = noise(12_000_000, 7);
    let g_data = noise(12_000_000, 8);
    let mut feeders = Vec::new();
    for (name, data) in [("a_fifo", &a_data), ("g_fifo", &g_data)] {
        let f = env.path(&format!("{name}.data"));
        std::fs::write(&f, data).unwrap();
        let script = format!(
            "exec > {}; cat {}; exec sleep 120",
            src.join(name).display(),
            f.display()
        );
        feeders.push(
            std::process::Command::new("sh")
                .args(["-c", &script])
                .spawn()
                .unwrap(),
        );
    }
    let log = env.path("create.log");
    let mut child = env.spawn_logged(
        &rborg_bin(),
        &[
            "create",
            "--debug",
            "--read-special",
            "--checkpoint-interval",
            "1",
            "--paths-from-command",
            &format!("{repo}::a"),
            "--",
            "cat",
            "paths.txt",
        ],
        &log,
    );
    wait_for_checkpoints(&log, 2, &mut child);
    child.kill().unwrap();
    child.wait().unwrap();
    for mut f in feeders {
        let _ = f.kill();
        let _ = f.wait();
    }
    for (name, borg) in borgs() {
        let check = env.borg(&borg, &["check", "-v", &repo]);
        check.ok();
        assert!(
            !check.stderr.contains("orphaned"),
            "{name}: orphans after a killed create:\n{}",
            check.stderr
        );
    }
    env.borg14(&["check", "--verify-data", &repo]).ok();
    let cp = format!("{repo}::a.checkpoint");
    let listing = env.borg12(&[
        "list",
        "--consider-checkpoints",
        "--consider-part-files",
        "--format",
        "{path} {size}{NL}",
        &cp,
    ]);
    let lines = part_lines(&listing.ok().stdout);
    let has = |p: &str| lines.iter().any(|(q, _)| q == p);
    assert!(has("t/a_fifo.borg_part_1"), "{}", listing.stdout);
    assert!(has("t/g_fifo.borg_part_1"), "{}", listing.stdout);
    // what was written of the fifos so far is in the checkpoint, intact
    let out = env.path("out");
    std::fs::create_dir(&out).unwrap();
    let mut e = Env::new();
    e.vars = env.vars.clone();
    e.cwd = out.clone();
    e.borg14(&["extract", "--consider-part-files", &cp]).ok();
    for (name, data) in [("a_fifo", &a_data), ("g_fifo", &g_data)] {
        let part = std::fs::read(out.join(format!("t/{name}.borg_part_1"))).unwrap();
        assert!(
            !part.is_empty() && data.starts_with(&part),
            "{name} part content"
        );
    }
    // the next create goes on from there and both tools accept the result
    for name in ["a_fifo", "g_fifo"] {
        let p = src.join(name);
        assert!(std::fs::symlink_metadata(&p).unwrap().file_type().is_fifo());
        std::fs::remove_file(&p).unwrap();
        let mut f = std::fs::File::create(&p).unwrap();
        f.write_all(if name == "a_fifo" { &a_data } else { &g_data })
            .unwrap();
    }
    env.rborg(&[
        "create",
        "--paths-from-command",
        &format!("{repo}::b"),
        "--",
        "cat",
        "paths.txt",
    ])
    .ok();
    env.borg12(&["check", &repo]).ok();
    let names = env.borg14(&["list", "--short", &repo]);
    assert_eq!(names.ok().stdout.trim(), "b");
}

#[test]
fn ctrl_c_writes_a_checkpoint_and_stops() {
    let env = Env::new();
    let repo = env.p("repo");
    env.rborg(&["init", "-e", "repokey", &repo]).ok();
    let pieces: Vec<Vec<u8>> = (0..20).map(|i| noise(1_000_000, 300 + i)).collect();
    let script = slow_writer_script(&env, &pieces, "0.3");
    let log = env.path("create.log");
    let mut child = env.spawn_logged(
        &rborg_bin(),
        &[
            "create",
            "--chunker-params",
            "fixed,1048576",
            "--content-from-command",
            &format!("{repo}::a"),
            "--",
            "sh",
            "-c",
            &script,
        ],
        &log,
    );
    // Ctrl-C once rborg is reading (and so has its handler); a checkpoint is due right away
    let t0 = Instant::now();
    while !env.path("started").exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the stream never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let status = child.wait().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(status.code(), Some(2), "{text}");
    assert!(text.contains("Got Ctrl-C / SIGINT."), "{text}");
    // the checkpoint is there, the archive is not; borg accepts the repository
    let names = env.borg14(&["list", "--consider-checkpoints", "--short", &repo]);
    assert_eq!(names.ok().stdout.trim(), "a.checkpoint");
    env.borg12(&["check", "--verify-data", &repo]).ok();
    let parts = env.borg14(&[
        "list",
        "--consider-part-files",
        "--format",
        "{path} {size}{NL}",
        &format!("{repo}::a.checkpoint"),
    ]);
    let lines = part_lines(&parts.ok().stdout);
    assert!(
        lines
            .iter()
            .any(|(p, s)| p == "stdin.borg_part_1" && *s > 0),
        "{}",
        parts.stdout
    );
}
