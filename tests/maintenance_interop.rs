//! Repository maintenance against real borg: rborg's prune/delete/rename/compact on a repository
//! borg filled leave one borg checks and lists as rborg said, the reverse too; `info` of archives
//! prints what borg 1.4 prints.

mod common;

use common::*;

/// Fills `repo` with archives over many days, weeks, months and years (plus a checkpoint),
/// using `bin` for every create so the history is that tool's own work.
fn fill_history(env: &Env, bin: &std::path::Path, repo: &str) {
    let src = env.path("src");
    if !src.exists() {
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("base"), vec![7u8; 50_000]).unwrap();
    }
    let stamps = [
        "2023-03-14T09:00:00",
        "2024-01-01T00:00:01",
        "2024-06-30T23:59:59",
        "2024-12-31T12:00:00",
        "2025-02-01T08:00:00",
        "2025-02-03T08:00:00",
        "2025-02-10T08:00:00",
        "2025-02-17T08:00:00",
        "2025-03-01T08:00:00",
        "2025-03-01T20:00:00",
        "2025-03-02T08:00:00",
        "2025-03-03T08:00:00",
        "2025-03-03T09:30:00",
    ];
    for (i, ts) in stamps.iter().enumerate() {
        std::fs::write(src.join("changing"), format!("version {i}\n").repeat(1000)).unwrap();
        env.run_bin(
            bin,
            &[
                "create",
                "--timestamp",
                ts,
                &format!("{repo}::host-{ts}"),
                "src",
            ],
            None,
        )
        .ok();
    }
    // a checkpoint archive, as an interrupted create leaves it
    env.run_bin(
        bin,
        &[
            "create",
            "--timestamp",
            "2025-03-04T10:00:00",
            &format!("{repo}::host-2025-03-04.checkpoint"),
            "src",
        ],
        None,
    )
    .ok();
}

fn names(list_out: &str) -> Vec<String> {
    let mut v: Vec<String> = list_out
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.to_string())
        .collect();
    v.sort();
    v
}

const RULES: [&[&str]; 4] = [
    &[
        "--keep-daily",
        "3",
        "--keep-weekly",
        "2",
        "--keep-monthly",
        "2",
    ],
    &["--keep-last", "4", "--keep-yearly", "5"],
    &["--keep-within", "10d", "--keep-monthly", "-1"],
    &[
        "-a",
        "host-2025-*",
        "--keep-hourly",
        "2",
        "--keep-13weekly",
        "1",
    ],
];

/// The `--list --dry-run` plan of both tools is the same, line for line (borg 1.4 layout).
#[test]
fn prune_plan_matches_borg() {
    let env = Env::new();
    let repo = env.p("repo");
    env.borg14(&["init", "-e", "repokey-blake2", &repo]).ok();
    fill_history(&env, &borg14_bin(), &repo);
    for rules in RULES {
        let mut args = vec!["prune", "--list", "--dry-run"];
        args.extend_from_slice(rules);
        args.push(&repo);
        let theirs = env.borg14(&args);
        theirs.ok();
        let ours = env.rborg(&args);
        ours.ok();
        assert_eq!(
            ours.stderr, theirs.stderr,
            "prune plan differs for {rules:?}"
        );
        assert!(
            ours.stderr.contains("Would prune:"),
            "{rules:?}: nothing pruned?"
        );
    }
}

/// rborg prunes, deletes, renames and compacts borg's repository; borg checks it and lists
/// exactly what rborg's output says is left.
#[test]
fn rborg_maintains_borg_repository() {
    for (tag, borg) in borgs() {
        for mode in ["repokey", "keyfile-blake2", "none"] {
            let env = Env::new();
            let repo = env.p("repo");
            env.borg(&borg, &["init", "-e", mode, &repo]).ok();
            fill_history(&env, &borg, &repo);
            let out = env.rborg(&[
                "prune",
                "--list",
                "--stats",
                "--keep-daily",
                "2",
                "--keep-monthly",
                "2",
                &repo,
            ]);
            out.ok();
            let kept: Vec<String> = out
                .stderr
                .lines()
                .filter(|l| l.starts_with("Keeping"))
                .map(|l| {
                    l.split_whitespace()
                        .nth(if l.starts_with("Keeping checkpoint") {
                            3
                        } else {
                            5
                        })
                        .unwrap()
                        .to_string()
                })
                .collect();
            assert!(
                out.stderr.contains("Pruning archive (1/"),
                "{tag} {mode}: {}",
                out.stderr
            );
            assert!(
                out.stderr.contains("Deleted data:"),
                "{tag} {mode}: no stats"
            );
            env.borg(&borg, &["check", "--verify-data", &repo]).ok();
            let listed = env
                .borg(&borg, &["list", "--consider-checkpoints", "--short", &repo])
                .ok()
                .stdout
                .clone();
            let mut kept_sorted = kept.clone();
            kept_sorted.sort();
            assert_eq!(
                names(&listed),
                kept_sorted,
                "{tag} {mode}: borg lists other archives"
            );

            // delete one, rename one, compact
            let victim = &kept_sorted[0];
            env.rborg(&["delete", "--stats", &format!("{repo}::{victim}")])
                .ok()
                .stderr_has("Deleted data:");
            let renamee = &kept_sorted[1];
            env.rborg(&["rename", &format!("{repo}::{renamee}"), "renamed"])
                .ok();
            let c = env.rborg(&["compact", "-v", &repo]);
            c.ok().stderr_has("compaction freed about");
            env.borg(&borg, &["check", "--verify-data", &repo]).ok();
            let listed = env
                .borg(&borg, &["list", "--consider-checkpoints", "--short", &repo])
                .ok()
                .stdout
                .clone();
            let mut want: Vec<String> = kept_sorted[2..].to_vec();
            want.push("renamed".into());
            want.sort();
            assert_eq!(names(&listed), want, "{tag} {mode}");
            // borg can still extend and extract it
            env.borg(&borg, &["create", &format!("{repo}::after"), "src"])
                .ok();
            env.borg(
                &borg,
                &["extract", "--dry-run", &format!("{repo}::renamed")],
            )
            .ok();
        }
    }
}

/// borg prunes, deletes and compacts rborg's repository; rborg checks it and agrees.
#[test]
fn borg_maintains_rborg_repository() {
    for (tag, borg) in borgs() {
        let env = Env::new();
        let repo = env.p("repo");
        env.rborg(&["init", "-e", "repokey", &repo]).ok();
        fill_history(&env, &rborg_bin(), &repo);
        env.borg(
            &borg,
            &["prune", "--keep-daily", "2", "--keep-yearly", "1", &repo],
        )
        .ok();
        env.borg(
            &borg,
            &["delete", &format!("{repo}::host-2025-03-03T09:30:00")],
        )
        .ok();
        env.borg(&borg, &["compact", &repo]).ok();
        env.rborg(&["check", "--verify-data", &repo]).ok();
        let theirs = env
            .borg(&borg, &["list", "--short", &repo])
            .ok()
            .stdout
            .clone();
        let ours = env.rborg(&["list", "--short", &repo]).ok().stdout.clone();
        assert_eq!(ours, theirs, "{tag}");
        // rborg extends the pruned repository, borg checks the result
        env.rborg(&["create", &format!("{repo}::rb-after"), "src"])
            .ok();
        env.borg(&borg, &["check", "--verify-data", &repo]).ok();
    }
}

/// `info ARCHIVE` and `info --json -a GLOB` print what borg 1.4 prints (the cache directory
/// aside: rborg keeps its own cache beside borg's).
#[test]
fn archive_info_matches_borg14() {
    let env = Env::new();
    let repo = env.p("repo");
    env.borg14(&["init", "-e", "keyfile", &repo]).ok();
    let src = env.path("src");
    make_tree(&src);
    env.borg14(&[
        "create",
        "--comment",
        "it's borg's",
        &format!("{repo}::first"),
        "src",
    ])
    .ok();
    env.rborg(&[
        "create",
        "--comment",
        "rborg's",
        &format!("{repo}::second"),
        "src",
    ])
    .ok();
    let norm = |s: &str| -> String {
        s.lines()
            .filter(|l| !l.starts_with("Cache: ") && !l.contains("\"path\": "))
            .collect::<Vec<_>>()
            .join("\n")
    };
    for name in ["first", "second"] {
        let a = format!("{repo}::{name}");
        let ours = env.rborg(&["info", &a]).ok().stdout.clone();
        let theirs = env.borg14(&["info", &a]).ok().stdout.clone();
        assert_eq!(norm(&ours), norm(&theirs), "info {name}");
    }
    let ours = env
        .rborg(&["info", "--json", "-a", "*", &repo])
        .ok()
        .stdout
        .clone();
    let theirs = env
        .borg14(&["info", "--json", "-a", "*", &repo])
        .ok()
        .stdout
        .clone();
    assert_eq!(norm(&ours), norm(&theirs), "info --json");
    let ours = env.rborg(&["info", &repo]).ok().stdout.clone();
    let theirs = env.borg14(&["info", &repo]).ok().stdout.clone();
    assert_eq!(norm(&ours), norm(&theirs), "repository info");
    // a missing archive is borg's error
    env.rborg(&["info", &format!("{repo}::nope")])
        .rc(2)
        .stderr_has("Archive nope does not exist");
}
