//! The parallel pipeline writes the same archive as a sequential run: two creates of one tree
//! with 1 and with 2 worker threads give identical item streams (the item chunk ids, which
//! hash every item's bytes and chunk list) and identical content chunk ids.

mod common;

use common::*;
use rborg::archive::itemstream::ItemReader;
use rborg::archive::manifest::Operation;
use rborg::archive::meta::ArchiveMeta;
use rborg::archive::session::Session;
use rborg::repo::{Location, OpenOptions};

#[test]
fn one_and_two_threads_write_identical_archives() {
    let mut env = Env::new();
    let src = env.path("src");
    make_tree(&src);
    // big files split their chunks across workers; many small ones run side by side
    let mut x = 0x1234_5678_9abc_def0u64;
    let mut big = vec![0u8; 24 << 20];
    for b in big.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = (x >> 24) as u8;
    }
    std::fs::write(src.join("big.bin"), &big).unwrap();
    std::fs::create_dir(src.join("many")).unwrap();
    // > 512 KiB of items (the item chunker's maximal chunk), so the stream spans chunks
    for i in 0..5000 {
        std::fs::write(
            src.join(format!(
                "many/file-with-a-rather-long-name-to-fill-the-item-stream-{i:04}"
            )),
            &big[i * 997..i * 997 + 1000 + (i % 2500) * 17],
        )
        .unwrap();
    }
    let repo = env.p("repo");
    env.rborg(&["init", "-e", "repokey-blake2", &repo]).ok();
    for (threads, name) in [("1", "one"), ("2", "two"), ("2", "again")] {
        env.set("RAYON_NUM_THREADS", threads);
        env.rborg(&[
            "create",
            "--files-cache=disabled",
            "--timestamp",
            "2025-06-01T12:00:00",
            "--chunker-params",
            "16,20,18,4095",
            &format!("{repo}::{name}"),
            "src",
        ])
        .ok();
    }
    env.unset("RAYON_NUM_THREADS");

    // single test in this file: setting the process environment races with nothing
    for (k, v) in &env.vars {
        std::env::set_var(k, v);
    }
    let loc = Location::parse(&repo).unwrap();
    let s = Session::open(&loc, &OpenOptions::default(), Operation::Read).unwrap();
    let load = |name: &str| {
        let id = s.manifest.get(name).unwrap().id;
        ArchiveMeta::load(&*s.repo, &s.key, &id).unwrap()
    };
    let (one, two, again) = (load("one"), load("two"), load("again"));
    assert!(
        one.items.len() > 1,
        "tree too small to span item chunks: {} item chunks, {} files, {} bytes",
        one.items.len(),
        one.nfiles,
        one.size
    );
    assert_eq!(
        one.items, two.items,
        "item streams differ between 1 and 2 threads"
    );
    assert_eq!(two.items, again.items, "item streams differ between runs");
    let chunk_ids = |m: &ArchiveMeta| -> Vec<_> {
        ItemReader::new(&*s.repo, &s.key, &m.items)
            .map(|i| i.unwrap())
            .flat_map(|i| i.chunks.unwrap_or_default().into_iter().map(|c| c.id))
            .collect()
    };
    let ids = chunk_ids(&one);
    assert!(ids.len() > 5000, "only {} chunks", ids.len());
    assert_eq!(ids, chunk_ids(&two));
    assert_eq!((one.nfiles, one.size), (two.nfiles, two.size));
}
