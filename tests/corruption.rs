//! Damaged repositories: for each kind of corruption a repository made by rborg (and, for some
//! cases, by borg 1.4) is damaged, then `rborg check` and `borg check` (1.4) must agree on the
//! verdict, `rborg check --repair` must leave a repository both tools pass (also with
//! `--verify-data`), with the same surviving archives as `borg check --repair` on an identical
//! copy, and every archive must extract: undamaged files intact, files that lost a chunk
//! zero-filled with borg's warning.
//!
//! Objects are located and changed with the rborg library (no process environment is touched:
//! the repokey is decrypted with the test passphrase directly).

mod common;

use std::path::{Path, PathBuf};

use common::*;
use rborg::archive::item::Item;
use rborg::archive::itemstream::ItemReader;
use rborg::archive::manifest::Manifest;
use rborg::archive::meta::{open_object, ArchiveMeta};
use rborg::compress::Compression;
use rborg::crypto::key::{Key, KeyKind, KeyMaterial};
use rborg::crypto::keyblob;
use rborg::msgpack::Value;
use rborg::repo::local::LocalRepository;
use rborg::repo::{Location, ObjectId, OpenOptions, Repository};

const PASSPHRASE: &str = "test-passphrase";
const TAG_PUT: u8 = 0;
const TAG_COMMIT: u8 = 2;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Maker {
    Rborg,
    Borg14,
}

/// A repository with two archives: `a1` of `src`, `a2` of `src` and `extra`.
struct Fixture {
    env: Env,
    repo: String,
}

fn run(env: &Env, maker: Maker, args: &[&str]) -> Out {
    match maker {
        Maker::Rborg => env.rborg(args),
        Maker::Borg14 => env.borg14(args),
    }
}

fn build(maker: Maker) -> Fixture {
    build_with(maker, |_, _| {})
}

/// Like [`build`], running `after_a1` between the two archives.
fn build_with(maker: Maker, after_a1: impl FnOnce(&Env, &str)) -> Fixture {
    let env = Env::new();
    make_tree(&env.path("src"));
    std::fs::create_dir_all(env.path("extra")).unwrap();
    std::fs::write(
        env.path("extra/only-in-a2.txt"),
        b"added for the second archive\n",
    )
    .unwrap();
    let repo = env.p("repo");
    run(&env, maker, &["init", "-e", "repokey", &repo]).ok();
    run(&env, maker, &["create", &format!("{repo}::a1"), "src"]).ok();
    after_a1(&env, &repo);
    run(
        &env,
        maker,
        &["create", &format!("{repo}::a2"), "src", "extra"],
    )
    .ok();
    Fixture { env, repo }
}

fn copy_dir(from: &str, to: &Path) {
    let st = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success());
}

// ---- segment files -------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct Entry {
    seg: u32,
    file: PathBuf,
    off: usize,
    size: usize,
    tag: u8,
    id: Option<ObjectId>,
}

fn segments(repo: &str) -> Vec<(u32, PathBuf)> {
    let mut v = Vec::new();
    for d in std::fs::read_dir(Path::new(repo).join("data"))
        .unwrap()
        .flatten()
    {
        for f in std::fs::read_dir(d.path()).unwrap().flatten() {
            if let Ok(n) = f.file_name().to_string_lossy().parse::<u32>() {
                v.push((n, f.path()));
            }
        }
    }
    v.sort();
    v
}

fn entries(repo: &str) -> Vec<Entry> {
    let mut out = Vec::new();
    for (seg, file) in segments(repo) {
        let b = std::fs::read(&file).unwrap();
        assert_eq!(&b[..8], b"BORG_SEG");
        let mut off = 8;
        while off + 9 <= b.len() {
            let size = u32::from_le_bytes(b[off + 4..off + 8].try_into().unwrap()) as usize;
            let tag = b[off + 8];
            let id =
                (tag != TAG_COMMIT).then(|| ObjectId::from_slice(&b[off + 9..off + 41]).unwrap());
            out.push(Entry {
                seg,
                file: file.clone(),
                off,
                size,
                tag,
                id,
            });
            off += size;
        }
    }
    out
}

/// The live PUT of `id` (the last one in log order).
fn put_of(repo: &str, id: &ObjectId) -> Entry {
    entries(repo)
        .into_iter()
        .rfind(|e| e.tag == TAG_PUT && e.id.as_ref() == Some(id))
        .unwrap_or_else(|| panic!("no PUT of {id}"))
}

fn flip(file: &Path, pos: usize) {
    let mut b = std::fs::read(file).unwrap();
    b[pos] ^= 0xff;
    std::fs::write(file, b).unwrap();
}

/// Changes a byte of an entry's value and fixes the entry's CRC (so only the crypto layer sees
/// the change).
fn tamper_value(e: &Entry, value_off: usize) {
    let mut b = std::fs::read(&e.file).unwrap();
    b[e.off + 41 + value_off] ^= 0x01;
    let crc = crc32fast::hash(&b[e.off + 4..e.off + e.size]);
    b[e.off..e.off + 4].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&e.file, b).unwrap();
}

// ---- the library side ----------------------------------------------------------------------

fn open_repo(repo: &str) -> LocalRepository {
    LocalRepository::open(
        &Location::parse(repo).unwrap(),
        &OpenOptions {
            exclusive: Some(true),
            ..Default::default()
        },
    )
    .unwrap()
}

fn repokey(repo: &dyn Repository) -> Key {
    let (text, _) = keyblob::load_blob_text(KeyKind::Repokey, repo).unwrap();
    let blob = keyblob::text_to_blob(&text).unwrap();
    let inner = keyblob::decrypt_blob(&blob, PASSPHRASE).unwrap().unwrap();
    Key::new(KeyKind::Repokey, Some(KeyMaterial::unpack(&inner).unwrap()))
}

fn manifest(repo: &dyn Repository, key: &Key) -> Manifest {
    let env = repo.get(&ObjectId::MANIFEST).unwrap();
    Manifest::load(key, &env, "").unwrap()
}

fn items(repo: &dyn Repository, key: &Key, archive: &str) -> Vec<Item> {
    let m = manifest(repo, key);
    let meta = ArchiveMeta::load(repo, key, &m.get(archive).unwrap().id).unwrap();
    ItemReader::new(repo, key, &meta.items)
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

/// A content chunk of `src/big.bin` (its first) and the byte range it covers.
fn big_chunk(repo: &str) -> (ObjectId, std::ops::Range<usize>) {
    let r = open_repo(repo);
    let key = repokey(&r);
    let big = items(&r, &key, "a1")
        .into_iter()
        .find(|i| i.path == b"src/big.bin")
        .unwrap();
    let c = big.chunks.unwrap()[0];
    (c.id, 0..c.size as usize)
}

/// Seals `payload` with a fresh counter reserved in the repository's nonce file.
fn seal(r: &dyn Repository, key: &Key, data: &[u8]) -> Vec<u8> {
    let start = r.get_free_nonce().unwrap().unwrap_or(0);
    r.commit_nonce_reservation(start + (1 << 20), r.get_free_nonce().unwrap())
        .unwrap();
    key.seal_with_iv(start, &Compression::Lz4.compress(data))
}

// ---- expectations and the common flow ------------------------------------------------------

struct Expect {
    /// rc of `rborg check` and of `borg check` on the damaged repository.
    rc: i32,
    /// Texts rborg's check output must contain (naming what is damaged).
    rborg_says: Vec<String>,
    /// Texts borg's check output must contain.
    borg_says: Vec<String>,
    /// Archive names after repair.
    survivors: Vec<&'static str>,
    /// Files whose content lost a chunk: (path, zeroed byte range).
    damaged: Vec<(&'static str, std::ops::Range<usize>)>,
    /// Run --verify-data after the repair.
    verify_data: bool,
    /// Extra options for the checks of the damaged repository and the repairs.
    flags: &'static [&'static str],
}

impl Expect {
    fn intact(survivors: Vec<&'static str>) -> Expect {
        Expect {
            rc: 0,
            rborg_says: vec![],
            borg_says: vec![],
            survivors,
            damaged: vec![],
            verify_data: true,
            flags: &[],
        }
    }
    fn damaged(rc: i32, says: Vec<String>, survivors: Vec<&'static str>) -> Expect {
        Expect {
            rc,
            rborg_says: says.clone(),
            borg_says: says,
            survivors,
            damaged: vec![],
            verify_data: true,
            flags: &[],
        }
    }
}

fn all_output(o: &Out) -> String {
    format!("{}{}", o.stdout, o.stderr)
}

fn list_names(o: &Out) -> Vec<String> {
    let mut v: Vec<String> = o.stdout.lines().map(|l| l.trim().to_string()).collect();
    v.retain(|l| !l.is_empty());
    v.sort();
    v
}

/// Extracts `archive` with `bin` into a fresh directory; checks undamaged files against the
/// sources and damaged ones for borg's zero-filled semantics.
fn check_extract(
    fx: &mut Fixture,
    bin: &Path,
    archive: &str,
    damaged: &[(&str, std::ops::Range<usize>)],
) {
    let dest = fx.env.path(&format!(
        "x-{archive}-{}",
        bin.file_name().unwrap().to_string_lossy()
    ));
    std::fs::create_dir_all(&dest).unwrap();
    let old = std::mem::replace(&mut fx.env.cwd, dest.clone());
    let o = fx
        .env
        .run_bin(bin, &["extract", &format!("{}::{archive}", fx.repo)], None);
    fx.env.cwd = old;
    o.no_panic();
    if damaged.is_empty() {
        o.ok();
    } else {
        o.rc(1);
        for (path, _) in damaged {
            // borg 1.2 and rborg name the problem; borg 1.4.5 formats the same warning as
            // "PATH: backup error"
            if bin == rborg_bin() {
                o.stderr_has(&format!(
                    "{path}: File has damaged (all-zero) chunks. Try running borg check --repair."
                ));
            } else {
                o.stderr_has(&format!("{path}: backup error"));
            }
        }
    }
    let src_root = fx.env.path("src");
    let diffs: Vec<String> = tree_diff(&src_root, &dest.join("src"))
        .into_iter()
        .filter(|d| {
            !damaged
                .iter()
                .any(|(p, _)| d.starts_with(&format!("{}:", p.trim_start_matches("src/"))))
        })
        .collect();
    assert!(
        diffs.is_empty(),
        "{archive} extracted by {}: {diffs:#?}",
        bin.display()
    );
    if archive == "a2" {
        assert!(tree_diff(&fx.env.path("extra"), &dest.join("extra")).is_empty());
    }
    for (path, zeroed) in damaged {
        let orig = std::fs::read(fx.env.path(path)).unwrap();
        let got = std::fs::read(dest.join(path)).unwrap();
        assert_eq!(orig.len(), got.len(), "{path}: size");
        assert!(
            got[zeroed.clone()].iter().all(|b| *b == 0),
            "{path}: not zero-filled"
        );
        assert_eq!(got[..zeroed.start], orig[..zeroed.start], "{path}: head");
        assert_eq!(got[zeroed.end..], orig[zeroed.end..], "{path}: tail");
    }
}

fn run_case(maker: Maker, corrupt: impl FnOnce(&Fixture) -> Expect) {
    run_fixture(build(maker), corrupt)
}

fn run_fixture(mut fx: Fixture, corrupt: impl FnOnce(&Fixture) -> Expect) {
    let exp = corrupt(&fx);
    let repo = fx.repo.clone();

    // the verdict on the damaged repository: rborg's and (on an identical copy) borg's
    let theirs_env = Env::new();
    let theirs = theirs_env.p("repo");
    copy_dir(&repo, Path::new(&theirs));
    let with = |args: &[&'static str], path: &str| -> Vec<String> {
        let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        v.extend(exp.flags.iter().map(|s| s.to_string()));
        v.push(path.to_string());
        v
    };
    let args = with(&["check", "-v"], &repo);
    let ours = fx
        .env
        .rborg(&args.iter().map(|s| s.as_str()).collect::<Vec<_>>());
    // CORRUPTION_SHOW=1 cargo test --test corruption -- --nocapture: what rborg reports
    if std::env::var_os("CORRUPTION_SHOW").is_some() {
        eprintln!("=== rborg check:\n{}", ours.stderr);
    }
    ours.rc(exp.rc);
    for s in &exp.rborg_says {
        assert!(
            all_output(&ours).contains(s.as_str()),
            "rborg check lacks {s:?}:\n{}",
            ours.stderr
        );
    }
    let args = with(&["check", "-v"], &theirs);
    let b = theirs_env.borg14(&args.iter().map(|s| s.as_str()).collect::<Vec<_>>());
    b.rc(exp.rc);
    for s in &exp.borg_says {
        assert!(
            all_output(&b).contains(s.as_str()),
            "borg check lacks {s:?}:\n{}",
            b.stderr
        );
    }

    // rborg repairs; both tools pass the result
    let args = with(&["check", "-v", "--repair"], &repo);
    fx.env
        .rborg(&args.iter().map(|s| s.as_str()).collect::<Vec<_>>())
        .ok();
    fx.env.rborg(&["check", &repo]).ok();
    fx.env.borg14(&["check", &repo]).ok();
    if exp.verify_data {
        fx.env.rborg(&["check", "--verify-data", &repo]).ok();
        fx.env.borg14(&["check", "--verify-data", &repo]).ok();
    }

    // borg repairs its copy: same survivors, and rborg passes borg's result too
    let args = with(&["check", "--repair"], &theirs);
    theirs_env
        .borg14(&args.iter().map(|s| s.as_str()).collect::<Vec<_>>())
        .ok();
    theirs_env.borg14(&["check", &theirs]).ok();
    theirs_env.rborg(&["check", &theirs]).ok();
    let our_names = list_names(fx.env.rborg(&["list", "--short", &repo]).ok());
    let their_names = list_names(theirs_env.borg14(&["list", "--short", &theirs]).ok());
    let mut want: Vec<String> = exp.survivors.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(our_names, want, "archives after rborg check --repair");
    assert_eq!(their_names, want, "archives after borg check --repair");

    // every surviving archive extracts (rborg; borg too where files were zero-filled)
    for a in &exp.survivors {
        check_extract(&mut fx, &rborg_bin(), a, &exp.damaged);
        if !exp.damaged.is_empty() {
            check_extract(&mut fx, &borg14_bin(), a, &exp.damaged);
        }
    }
}

// ---- the cases -----------------------------------------------------------------------------

/// A flipped byte in an object's value: the segment's CRC check fails; repair salvages the
/// segment without that entry and the file gets an all-zero chunk in both archives.
fn flipped_data(maker: Maker) {
    run_case(maker, |fx| {
        let (id, range) = big_chunk(&fx.repo);
        let e = put_of(&fx.repo, &id);
        flip(&e.file, e.off + 41 + e.size / 3);
        let mut x = Expect::damaged(
            1,
            vec![format!(
                "Segment entry checksum mismatch [segment {}, offset {}]",
                e.seg, e.off
            )],
            vec!["a1", "a2"],
        );
        x.damaged = vec![("src/big.bin", range)];
        x
    });
}

#[test]
fn flipped_byte_in_object_data_rborg_repo() {
    flipped_data(Maker::Rborg);
}

#[test]
fn flipped_byte_in_object_data_borg_repo() {
    flipped_data(Maker::Borg14);
}

/// A file-content object whose bytes changed with its CRC fixed: only the cryptographic
/// verification sees it. Plain `check` passes (both tools); `--verify-data` reports it and with
/// `--repair` deletes it, the file gets an all-zero chunk.
#[test]
fn tampered_chunk_needs_verify_data() {
    run_case(Maker::Rborg, |fx| {
        let (id, range) = big_chunk(&fx.repo);
        let e = put_of(&fx.repo, &id);
        tamper_value(&e, e.size / 2);
        fx.env.rborg(&["check", &fx.repo]).ok();
        fx.env.borg14(&["check", &fx.repo]).ok();
        let mut x = Expect::damaged(
            1,
            vec![format!(
                "chunk {}, integrity error: MAC Authentication failed",
                id.hex()
            )],
            vec!["a1", "a2"],
        );
        x.flags = &["--verify-data"];
        x.damaged = vec![("src/big.bin", range)];
        x
    });
}

/// A flipped byte in an entry header (its size field): the entry is unreadable; repair
/// resynchronises on the next valid entry.
#[test]
fn flipped_byte_in_object_header() {
    run_case(Maker::Rborg, |fx| {
        let (id, range) = big_chunk(&fx.repo);
        let e = put_of(&fx.repo, &id);
        flip(&e.file, e.off + 7); // most significant byte of the size
        let mut x = Expect::damaged(
            1,
            vec![format!("[segment {}, offset {}]", e.seg, e.off)],
            vec!["a1", "a2"],
        );
        x.rborg_says.push("Invalid segment entry size".into());
        x.borg_says.push("Invalid segment entry size".into());
        x.rborg_says.push("- too big [segment".into());
        x.damaged = vec![("src/big.bin", range)];
        x
    });
}

/// A damaged commit tag that is not the last one: reported as a checksum error in its segment,
/// repair drops it, nothing is lost.
#[test]
fn damaged_commit_tag() {
    run_case(Maker::Borg14, |fx| {
        let commits: Vec<Entry> = entries(&fx.repo)
            .into_iter()
            .filter(|e| e.tag == TAG_COMMIT)
            .collect();
        let e = commits[commits.len() - 2].clone(); // the commit of a1
        flip(&e.file, e.off);
        Expect::damaged(
            1,
            vec![format!(
                "Segment entry checksum mismatch [segment {}, offset {}]",
                e.seg, e.off
            )],
            vec!["a1", "a2"],
        )
    });
}

/// The last commit tag damaged: borg (and rborg) take the last transaction as uncommitted and
/// roll it back, without reporting an error; a2 is gone, a1 is intact.
#[test]
fn damaged_last_commit_tag_rolls_back() {
    run_case(Maker::Rborg, |fx| {
        let e = entries(&fx.repo)
            .into_iter()
            .rfind(|e| e.tag == TAG_COMMIT)
            .unwrap();
        flip(&e.file, e.off + 2);
        Expect::intact(vec!["a1"])
    });
}

/// A deleted segment file (the one holding a2's archive metadata): the index refers to
/// objects that no longer exist; repair drops a2, a1 is intact.
#[test]
fn deleted_segment_file() {
    run_case(Maker::Rborg, |fx| {
        let a2 = {
            let r = open_repo(&fx.repo);
            let key = repokey(&r);
            manifest(&r, &key).get("a2").unwrap().id
        };
        let e = put_of(&fx.repo, &a2);
        std::fs::remove_file(&e.file).unwrap();
        Expect::damaged(
            1,
            vec![
                "Index object count mismatch.".into(),
                format!("ID: {}", a2.hex()),
            ],
            vec!["a1"],
        )
    });
}

fn newest(repo: &str, prefix: &str) -> PathBuf {
    let mut v: Vec<(u32, PathBuf)> = std::fs::read_dir(repo)
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.strip_prefix(prefix)
                .and_then(|t| t.parse().ok())
                .map(|t| (t, e.path()))
        })
        .collect();
    v.sort();
    v.pop()
        .unwrap_or_else(|| panic!("no {prefix}N in {repo}"))
        .1
}

/// Deleted index.N, hints.N or integrity.N: borg rebuilds them from the segments (no error);
/// rborg agrees, and repair leaves everything in place.
#[test]
fn deleted_index_hints_integrity() {
    for what in ["index.", "hints.", "integrity."] {
        run_case(Maker::Rborg, |fx| {
            std::fs::remove_file(newest(&fx.repo, what)).unwrap();
            Expect::intact(vec!["a1", "a2"])
        });
    }
}

/// A stale index: the index of an older transaction (a1's) left while the segments have a
/// newer commit (a2's). Under its own name, with the current index gone, borg replays the newer
/// segments (no error) and rborg agrees; posing as the current index (its integrity data gone)
/// it no longer matches the segments, which both tools report; repair rebuilds it.
#[test]
fn stale_index() {
    for pose_as_current in [false, true] {
        let fx = build_with(Maker::Rborg, |env, repo| {
            let keep = env.path("old-index");
            std::fs::create_dir_all(&keep).unwrap();
            for what in ["index.", "hints.", "integrity."] {
                let p = newest(repo, what);
                std::fs::copy(&p, keep.join(p.file_name().unwrap())).unwrap();
            }
        });
        run_fixture(fx, |fx| {
            let keep = fx.env.path("old-index");
            let old_index = newest(keep.to_str().unwrap(), "index.");
            let cur_index = newest(&fx.repo, "index.");
            assert_ne!(
                old_index.file_name(),
                cur_index.file_name(),
                "a2 made a new transaction"
            );
            if pose_as_current {
                std::fs::copy(&old_index, &cur_index).unwrap();
                std::fs::remove_file(newest(&fx.repo, "integrity.")).unwrap();
                Expect::damaged(
                    1,
                    vec!["Index object count mismatch.".into()],
                    vec!["a1", "a2"],
                )
            } else {
                for what in ["index.", "hints.", "integrity."] {
                    std::fs::remove_file(newest(&fx.repo, what)).unwrap();
                    let old = newest(keep.to_str().unwrap(), what);
                    std::fs::copy(&old, Path::new(&fx.repo).join(old.file_name().unwrap()))
                        .unwrap();
                }
                Expect::intact(vec!["a1", "a2"])
            }
        });
    }
}

/// The manifest's bytes changed (CRC fixed): it fails to decrypt; check reports it and repair
/// rebuilds it from the archive objects.
#[test]
fn tampered_manifest() {
    run_case(Maker::Borg14, |fx| {
        let e = put_of(&fx.repo, &ObjectId::MANIFEST);
        tamper_value(&e, e.size - 41 - 3);
        Expect::damaged(
            1,
            vec!["Repository manifest is corrupted: MAC Authentication failed".into()],
            vec!["a1", "a2"],
        )
    });
}

/// An archive object replaced by one whose TAM does not verify (its comment changed, manifest
/// pointed at it): borg 1.4 drops such an archive on repair.
fn tampered_archive(maker: Maker) {
    run_case(maker, |fx| {
        let r = open_repo(&fx.repo);
        let key = repokey(&r);
        let mut m = manifest(&r, &key);
        let old = m.get("a1").unwrap().id;
        let data = open_object(&key, &old, r.get(&old).unwrap(), None).unwrap();
        let mut v = rborg::msgpack::decode(&data).unwrap().into_map().unwrap();
        for (k, val) in v.iter_mut() {
            if k.as_bytes().ok() == Some(b"comment") {
                *val = Value::from("forged");
            }
        }
        let forged = Value::Map(v).to_bytes();
        let new = key.id_hash(&forged);
        r.put(&new, &seal(&r, &key, &forged)).unwrap();
        r.delete(&old).unwrap();
        m.archives.get_mut(b"a1".as_slice()).unwrap().id = new;
        let packed = m.pack(&key);
        r.put(&ObjectId::MANIFEST, &seal(&r, &key, &packed))
            .unwrap();
        r.commit(false, 0.1, false).unwrap();
        r.close().unwrap();
        Expect::damaged(
            1,
            vec!["Archive TAM authentication issue for archive a1: Data integrity error: Archive authentication did not verify".into()],
            vec!["a2"],
        )
    });
}

#[test]
fn tampered_archive_rborg_repo() {
    tampered_archive(Maker::Rborg);
}

#[test]
fn tampered_archive_borg_repo() {
    tampered_archive(Maker::Borg14);
}

/// A file-content object deleted through the repository (the index no longer has it):
/// repair replaces it with an all-zero chunk in both archives.
#[test]
fn missing_chunk() {
    run_case(Maker::Rborg, |fx| {
        let (id, range) = big_chunk(&fx.repo);
        let r = open_repo(&fx.repo);
        r.delete(&id).unwrap();
        r.commit(false, 0.1, false).unwrap();
        r.close().unwrap();
        let mut x = Expect::damaged(
            1,
            vec![format!(
                "a1: src/big.bin: New missing file chunk detected (Byte 0-{}, Chunk {}). Would replace it with all-zero chunk with --repair.",
                range.end,
                id.hex()
            )],
            vec!["a1", "a2"],
        );
        x.damaged = vec![("src/big.bin", range)];
        x
    });
}

/// The manifest deleted: check reports it, repair rebuilds it from the archive objects.
fn missing_manifest(maker: Maker) {
    run_case(maker, |fx| {
        let r = open_repo(&fx.repo);
        r.delete(&ObjectId::MANIFEST).unwrap();
        r.commit(false, 0.1, false).unwrap();
        r.close().unwrap();
        let mut x = Expect::damaged(
            1,
            vec![
                "Repository manifest not found!".into(),
                "Found archive a1".into(),
                "Found archive a2".into(),
            ],
            vec!["a1", "a2"],
        );
        x.rborg_says
            .push("The rebuilt manifest will only be committed when using --repair!".into());
        x
    });
}

#[test]
fn missing_manifest_rborg_repo() {
    missing_manifest(Maker::Rborg);
}

#[test]
fn missing_manifest_borg_repo() {
    missing_manifest(Maker::Borg14);
}

/// A lost manifest with two archive objects of the same name: the rebuilt manifest keeps
/// both, the second as NAME.1 (as borg does).
#[test]
fn missing_manifest_duplicate_names() {
    run_case(Maker::Rborg, |fx| {
        let r = open_repo(&fx.repo);
        let key = repokey(&r);
        let m = manifest(&r, &key);
        // a second archive object called a1 (a2's content, properly authenticated)
        let mut meta = ArchiveMeta::load(&r, &key, &m.get("a2").unwrap().id).unwrap();
        meta.name = b"a1".to_vec();
        let packed = meta.pack(&key);
        let id = key.id_hash(&packed);
        r.put(&id, &seal(&r, &key, &packed)).unwrap();
        r.delete(&ObjectId::MANIFEST).unwrap();
        r.commit(false, 0.1, false).unwrap();
        r.close().unwrap();
        let mut x = Expect::damaged(
            1,
            vec![
                "Repository manifest not found!".into(),
                "Duplicate archive name a1, storing as a1.1".into(),
            ],
            vec!["a1", "a1.1", "a2"],
        );
        x.verify_data = false;
        x
    });
}

/// A lost item metadata chunk in the middle of a long item stream: the items it held are
/// lost, the stream is picked up again after it (borg's resynchronisation): rborg's repair
/// keeps exactly the items borg's keeps, and they extract intact.
fn lost_item_metadata_chunk(maker: Maker) {
    let mut env = Env::new();
    let src = env.path("many");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..4000 {
        std::fs::write(
            src.join(format!(
                "file-with-a-longish-name-to-fill-item-chunks-{i:05}.txt"
            )),
            format!("content {i}\n"),
        )
        .unwrap();
    }
    let repo = env.p("repo");
    run(&env, maker, &["init", "-e", "repokey", &repo]).ok();
    run(&env, maker, &["create", &format!("{repo}::a1"), "many"]).ok();
    let lost = {
        let r = open_repo(&repo);
        let key = repokey(&r);
        let meta = ArchiveMeta::load(&r, &key, &manifest(&r, &key).get("a1").unwrap().id).unwrap();
        assert!(meta.items.len() >= 3, "{} item chunks", meta.items.len());
        let lost = meta.items[1];
        r.delete(&lost).unwrap();
        r.commit(false, 0.1, false).unwrap();
        r.close().unwrap();
        lost
    };
    let theirs_env = Env::new();
    let theirs = theirs_env.p("repo");
    copy_dir(&repo, Path::new(&theirs));
    let says = format!("item metadata chunk missing [chunk: 000001_{}]", lost.hex());
    env.rborg(&["check", &repo]).rc(1).stderr_has(&says);
    theirs_env
        .borg14(&["check", &theirs])
        .rc(1)
        .stderr_has(&says);
    env.rborg(&["check", "--repair", &repo]).ok();
    theirs_env.borg14(&["check", "--repair", &theirs]).ok();
    env.rborg(&["check", &repo]).ok();
    env.borg14(&["check", &repo]).ok();
    theirs_env.rborg(&["check", &theirs]).ok();
    let ours = list_names(env.rborg(&["list", "--short", &format!("{repo}::a1")]).ok());
    assert!(
        ours.len() > 1000 && ours.len() < 4001,
        "{} items kept",
        ours.len()
    );
    let listed = theirs_env.borg14(&["list", "--short", &format!("{theirs}::a1")]);
    if listed.rc == 2
        && listed
            .stderr
            .contains("AttributeError: attribute user not found")
    {
        // borg 1.4.5's own resync sometimes keeps a partial item (chunk boundaries follow
        // inode order, so it depends on the run) and then cannot list its repaired archive:
        // there is nothing of borg's to compare with (seen in CI on 2026-11-26)
        eprintln!(
            "borg cannot list its own repaired archive: {}",
            listed.stderr
        );
        return;
    }
    let their = list_names(listed.ok());
    if ours != their {
        let only_ours: Vec<_> = ours.iter().filter(|x| !their.contains(x)).collect();
        let only_theirs: Vec<_> = their.iter().filter(|x| !ours.contains(x)).collect();
        panic!("items kept by rborg and borg differ: only rborg's {only_ours:?}, only borg's {only_theirs:?}");
    }
    let dest = env.path("x");
    std::fs::create_dir_all(&dest).unwrap();
    env.cwd = dest.clone();
    env.rborg(&["extract", &format!("{repo}::a1")]).ok();
    for name in ours.iter().filter(|n| n.ends_with(".txt")) {
        let got = std::fs::read(dest.join(name)).unwrap();
        assert_eq!(got, std::fs::read(env.path(name)).unwrap(), "{name}");
    }
}

#[test]
fn lost_item_metadata_chunk_rborg_repo() {
    lost_item_metadata_chunk(Maker::Rborg);
}

#[test]
fn lost_item_metadata_chunk_borg_repo() {
    lost_item_metadata_chunk(Maker::Borg14);
}

/// The manifest rebuild in every encryption mode (the key is found from the other objects,
/// keyfile modes included): both tools pass the repaired repository and list the archives.
#[test]
fn missing_manifest_every_mode() {
    let env = Env::new();
    std::fs::create_dir_all(env.path("src")).unwrap();
    std::fs::write(env.path("src/file"), b"some content\n").unwrap();
    for mode in MODES {
        let repo = env.p(&format!("repo-{mode}"));
        env.rborg(&["init", "-e", mode, &repo]).ok();
        env.rborg(&["create", &format!("{repo}::first"), "src"])
            .ok();
        env.rborg(&["create", &format!("{repo}::second"), "src"])
            .ok();
        let r = open_repo(&repo);
        r.delete(&ObjectId::MANIFEST).unwrap();
        r.commit(false, 0.1, false).unwrap();
        r.close().unwrap();
        env.rborg(&["check", &repo])
            .rc(1)
            .stderr_has("Repository manifest not found!");
        env.rborg(&["check", "--repair", &repo]).ok();
        env.rborg(&["check", &repo]).ok();
        env.borg14(&["check", &repo]).ok();
        let names = list_names(env.borg14(&["list", "--short", &repo]).ok());
        assert_eq!(names, ["first", "second"], "{mode}");
        env.rborg(&["extract", "--dry-run", &format!("{repo}::second")])
            .ok();
    }
}
