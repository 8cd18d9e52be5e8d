//! `upgrade --archives-tam/--check-archives-tam/--tam/--check-tam` against borg 1.4: archives
//! without TAM (as borg < 1.2.5 wrote them) are found by both tools alike, rborg adds the TAMs,
//! and borg 1.4 then finds every archive authenticated and the repository consistent.

mod common;

use common::*;
use rborg::archive::manifest::Operation;
use rborg::archive::meta::{open_object, store_object};
use rborg::archive::session::Session;
use rborg::compress::Compression;
use rborg::msgpack::{self, Value};
use rborg::repo::{Location, OpenOptions};

/// Rewrites every archive object without its TAM, the way pre-1.2.5 borg stored them.
fn strip_archive_tams(env: &Env, repo: &str) {
    // the library reads the passphrase and base dir from the environment; this file holds
    // a single test, so setting them here races with nothing
    for (k, v) in &env.vars {
        std::env::set_var(k, v);
    }
    let loc = Location::parse(repo).unwrap();
    let opts = OpenOptions {
        exclusive: Some(true),
        ..OpenOptions::default()
    };
    let mut s = Session::open(&loc, &opts, Operation::Write).unwrap();
    let entries: Vec<_> = s
        .manifest
        .archives
        .iter()
        .map(|(n, e)| (n.clone(), e.clone()))
        .collect();
    for (name, mut entry) in entries {
        let data = open_object(&s.key, &entry.id, s.repo.get(&entry.id).unwrap(), None).unwrap();
        let Value::Map(pairs) = msgpack::decode(&data).unwrap() else {
            panic!("archive is not a map")
        };
        let pairs: Vec<_> = pairs
            .into_iter()
            .filter(|(k, _)| k.as_bytes().ok() != Some(b"tam"))
            .collect();
        let plain = Value::Map(pairs).to_bytes();
        let (new_id, _, _) = store_object(&*s.repo, &s.key, &Compression::Lz4, &plain).unwrap();
        s.repo.delete(&entry.id).unwrap();
        entry.id = new_id;
        s.manifest.archives.insert(name, entry);
    }
    s.commit_manifest(&Compression::Lz4).unwrap();
}

#[test]
fn archive_tams_added_like_borg14() {
    let env = Env::new();
    let repo = env.p("repo");
    env.borg14(&["init", "-e", "repokey", &repo]).ok();
    let src = env.path("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("f"), b"data\n").unwrap();
    for n in ["one", "two"] {
        env.borg14(&[
            "create",
            "--timestamp",
            "2025-01-02T03:04:05",
            &format!("{repo}::{n}"),
            "src",
        ])
        .ok();
    }
    strip_archive_tams(&env, &repo);

    // both tools find the same two issues, with the same report
    let theirs = env.borg14(&["upgrade", "--check-archives-tam", &repo]);
    theirs.rc(1);
    let ours = env.rborg(&["upgrade", "--check-archives-tam", &repo]);
    ours.rc(1);
    assert_eq!(ours.stdout, theirs.stdout);
    assert!(
        ours.stdout.contains("Archive TAM missing: one"),
        "{}",
        ours.stdout
    );
    ours.stderr_has("Found 2 archives with TAM issues!");

    // rborg adds the TAMs; borg 1.4 agrees all is well and the repository is consistent
    let fixed = env.rborg(&["upgrade", "--archives-tam", &repo]);
    fixed.ok();
    assert!(
        fixed.stdout.contains("Added archive TAM:   one"),
        "{}",
        fixed.stdout
    );
    assert!(fixed.stdout.contains("Fixed 2 archives with TAM issues!"));
    let after = env.borg14(&["upgrade", "--check-archives-tam", &repo]);
    after.ok();
    assert!(after.stdout.contains("All archives are TAM authenticated."));
    env.borg14(&["check", "--verify-data", &repo]).ok();
    env.rborg(&["check", "--verify-data", &repo]).ok();
    let listed = env.borg14(&["list", "--short", &repo]).ok().stdout.clone();
    assert_eq!(listed, "one\ntwo\n");

    // manifest side: both report the setup as OK
    let ours = env.rborg(&["upgrade", "--check-tam", &repo]);
    ours.ok();
    let theirs = env.borg14(&["upgrade", "--check-tam", &repo]);
    theirs.ok();
    assert_eq!(ours.stdout, theirs.stdout);
    // and --tam on an already upgraded repository changes nothing borg minds
    env.rborg(&["upgrade", "--tam", &repo]).ok();
    env.borg14(&["check", &repo]).ok();
}
