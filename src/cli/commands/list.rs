//! `borg list`: archives of a repository, or items of an archive.

use std::collections::HashMap;

use clap::Args;
use serde_json::{Map, Value as J};
use sha2::Digest;

use crate::archive::cache::Cache;
use crate::archive::item::{Item, S_IFMT};
use crate::archive::itemstream::ItemReader;
use crate::archive::manifest::Operation;
use crate::archive::meta::{open_object, ArchiveMeta};
use crate::archive::patterns::PatternMatcher;
use crate::archive::session::Session;
use crate::cli::common::{location, ArchiveFilterOpts, Ctx, PatternOpts, Want};
use crate::cli::exit::{self, CommandError, GenericError};
use crate::cli::format::{self, FieldValue, Part};
use crate::repo::ObjectId;

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Show checkpoint archives in the repository contents list (default: hidden).
    #[arg(long = "consider-checkpoints")]
    pub consider_checkpoints: bool,
    /// only print file/directory names, nothing else
    #[arg(long = "short")]
    pub short: bool,
    /// specify format for file or archive listing
    #[arg(long = "format", visible_alias = "list-format", value_name = "FORMAT")]
    pub format: Option<String>,
    /// Only valid for listing repository contents. Format output as JSON.
    #[arg(long = "json")]
    pub json: bool,
    /// Only valid for listing archive contents. Format output as JSON Lines.
    #[arg(long = "json-lines")]
    pub json_lines: bool,
    #[command(flatten)]
    pub filters: ArchiveFilterOpts,
    #[command(flatten)]
    pub patterns: PatternOpts,
    /// repository or archive to list contents of
    #[arg(value_name = "REPOSITORY_OR_ARCHIVE")]
    pub location: Option<String>,
    /// paths to list; patterns are supported
    #[arg(value_name = "PATH")]
    pub paths: Vec<String>,
}

pub fn run(a: &ListArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let loc = location(a.location.as_deref(), Want::Either, "REPOSITORY_OR_ARCHIVE")?;
    if loc.archive.is_some() && a.json {
        return Err(CommandError(
            "The --json option is only valid for listing archives, not archive contents.".into(),
        )
        .into());
    }
    if loc.archive.is_none() && a.json_lines {
        return Err(CommandError(
            "The --json-lines option is only valid for listing archive contents, not archives."
                .into(),
        )
        .into());
    }
    let session = ctx.session(&loc, false, Operation::Read)?;
    match &loc.archive {
        Some(name) => list_items(a, ctx, &session, name),
        None => list_archives(a, &session),
    }
}

pub struct ArchiveRow {
    pub name: Vec<u8>,
    pub id: ObjectId,
    pub ts: chrono::DateTime<chrono::Utc>,
}

/// Archives after `-a/-P`, checkpoint hiding, `--sort-by`, `--first/--last` (borg's
/// `list_considering`).
pub fn filtered_archives(
    session: &Session,
    f: &ArchiveFilterOpts,
    consider_checkpoints: bool,
) -> anyhow::Result<Vec<ArchiveRow>> {
    use crate::archive::prune::{filter_archives, parse_sort_by, ArchiveFilter, ArchiveRef};
    use crate::cli::placeholders::{prefix_to_glob, replace_placeholders};
    let glob = match (&f.glob_archives, &f.prefix) {
        (Some(g), _) => Some(replace_placeholders(g, &Default::default())?),
        (None, Some(p)) => Some(prefix_to_glob(&replace_placeholders(
            p,
            &Default::default(),
        )?)),
        _ => None,
    };
    let sort_by = parse_sort_by(&f.sort_by)
        .map_err(|e| crate::cli::common::UsageError(format!("argument --sort-by: {e}")))?;
    let refs: Vec<ArchiveRef> = session
        .manifest
        .archives
        .iter()
        .map(|(n, e)| ArchiveRef {
            name: String::from_utf8_lossy(n).into_owned(),
            id: e.id.0,
            ts: e.ts(),
        })
        .collect();
    let filter = ArchiveFilter {
        glob,
        sort_by,
        first: f.first,
        last: f.last,
        consider_checkpoints,
        reverse: false,
    };
    let out = filter_archives(&refs, &filter).map_err(|e| GenericError(e.to_string()))?;
    Ok(out
        .into_iter()
        .map(|a| ArchiveRow {
            name: a.name.into_bytes(),
            id: ObjectId(a.id),
            ts: a.ts,
        })
        .collect())
}

fn list_archives(a: &ListArgs, session: &Session) -> anyhow::Result<()> {
    let rows = filtered_archives(session, &a.filters, a.consider_checkpoints)?;
    let fmt = match (&a.format, a.short) {
        (Some(f), _) => f.clone(),
        (None, true) => "{archive}{NL}".to_string(),
        (None, false) => "{archive:<36} {time} [{id}]{NL}".to_string(),
    };
    let parts = format::parse(&fmt).map_err(|e| GenericError(e.to_string()))?;
    let keys: Vec<String> = format::keys(&parts).into_iter().map(String::from).collect();
    let needs_meta = keys.iter().any(|k| {
        matches!(
            k.as_str(),
            "comment" | "bcomment" | "end" | "command_line" | "hostname" | "username" | "tam"
        )
    });
    let mut out_json = Vec::new();
    for r in rows {
        let meta = if needs_meta {
            Some(ArchiveMeta::unpack(
                &session.key,
                &open_object(&session.key, &r.id, session.repo.get(&r.id)?, None)?,
            )?)
        } else {
            None
        };
        let name = String::from_utf8_lossy(&r.name).into_owned();
        let get = |k: &str| -> Option<FieldValue> {
            if let Some(v) = format::fixed_key(k) {
                return Some(FieldValue::Str(v.to_string()));
            }
            let m = meta.as_ref();
            Some(match k {
                "archive" | "name" | "barchive" => FieldValue::Str(name.clone()),
                "id" => FieldValue::Str(r.id.hex()),
                "time" | "start" => FieldValue::Time(r.ts),
                "end" => FieldValue::Time(
                    m.and_then(|m| crate::archive::manifest::parse_timestamp(&m.time_end))
                        .unwrap_or(r.ts),
                ),
                "comment" | "bcomment" => FieldValue::Str(
                    m.map(|m| String::from_utf8_lossy(&m.comment).into_owned())
                        .unwrap_or_default(),
                ),
                "hostname" => FieldValue::Str(
                    m.map(|m| String::from_utf8_lossy(&m.hostname).into_owned())
                        .unwrap_or_default(),
                ),
                "username" => FieldValue::Str(
                    m.map(|m| String::from_utf8_lossy(&m.username).into_owned())
                        .unwrap_or_default(),
                ),
                "command_line" => {
                    FieldValue::Str(m.map(|m| shell_join(&m.cmdline)).unwrap_or_default())
                }
                "tam" => FieldValue::Str(match m.and_then(|m| m.tam) {
                    Some(crate::archive::meta::TamStatusKind::Verified) => "verified".into(),
                    _ => "none".into(),
                }),
                _ => return None,
            })
        };
        if a.json {
            let mut o = Map::new();
            o.insert("archive".into(), name.clone().into());
            o.insert("barchive".into(), name.clone().into());
            o.insert("id".into(), r.id.hex().into());
            o.insert("name".into(), name.clone().into());
            let iso = crate::cli::timefmt::isoformat_local_secs(&r.ts);
            o.insert("start".into(), iso.clone().into());
            o.insert("time".into(), iso.into());
            for k in &keys {
                if o.contains_key(k) || format::fixed_key(k).is_some() {
                    continue;
                }
                match k.as_str() {
                    "end" => {
                        if let Some(FieldValue::Time(t)) = get("end") {
                            o.insert(
                                "end".into(),
                                crate::cli::timefmt::isoformat_local_secs(&t).into(),
                            );
                        }
                    }
                    "command_line" => {
                        o.insert(
                            "command_line".into(),
                            J::Array(
                                meta.as_ref()
                                    .map(|m| {
                                        m.cmdline
                                            .iter()
                                            .map(|c| {
                                                J::String(String::from_utf8_lossy(c).into_owned())
                                            })
                                            .collect()
                                    })
                                    .unwrap_or_default(),
                            ),
                        );
                    }
                    _ => {
                        if let Some(FieldValue::Str(s)) = get(k) {
                            o.insert(k.clone(), s.into());
                        }
                    }
                }
            }
            out_json.push(J::Object(o));
        } else {
            let mut s = String::new();
            if let Err(k) = format::render(&parts, &get, &mut s) {
                return Err(GenericError(format!("Invalid format key: {k}")).into());
            }
            crate::cli::write_stdout(&s);
        }
    }
    if a.json {
        let mut m = crate::cli::commands::info::basic_json(session, None);
        m.insert("archives".into(), J::Array(out_json));
        crate::cli::json::print(&J::Object(m));
    }
    Ok(())
}

pub fn shell_join(args: &[Vec<u8>]) -> String {
    args.iter()
        .map(|a| {
            let s = String::from_utf8_lossy(a).into_owned();
            if !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "@%+=:,./-_".contains(c))
            {
                s
            } else {
                format!("'{}'", s.replace('\'', "'\"'\"'"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `ls -l` style mode string (Python's `stat.filemode`).
pub fn filemode(mode: u32) -> String {
    let t = match mode & S_IFMT {
        0o140000 => 's',
        0o120000 => 'l',
        0o100000 => '-',
        0o060000 => 'b',
        0o040000 => 'd',
        0o020000 => 'c',
        0o010000 => 'p',
        _ => '?',
    };
    let mut s = String::new();
    s.push(t);
    let bits = [
        (0o400, 'r'),
        (0o200, 'w'),
        (0o100, 'x'),
        (0o040, 'r'),
        (0o020, 'w'),
        (0o010, 'x'),
        (0o004, 'r'),
        (0o002, 'w'),
        (0o001, 'x'),
    ];
    for (i, (b, c)) in bits.iter().enumerate() {
        let set = mode & b != 0;
        let ch = match i {
            2 if mode & 0o4000 != 0 => {
                if set {
                    's'
                } else {
                    'S'
                }
            }
            5 if mode & 0o2000 != 0 => {
                if set {
                    's'
                } else {
                    'S'
                }
            }
            8 if mode & 0o1000 != 0 => {
                if set {
                    't'
                } else {
                    'T'
                }
            }
            _ => {
                if set {
                    *c
                } else {
                    '-'
                }
            }
        };
        s.push(ch);
    }
    s
}

const HASHES: &[&str] = &[
    "blake2b", "blake2s", "md5", "sha1", "sha224", "sha256", "sha384", "sha3_224", "sha3_256",
    "sha3_384", "sha3_512", "sha512", "xxh64",
];

fn hash_item(session: &Session, item: &Item, algo: &str) -> anyhow::Result<String> {
    let Some(chunks) = &item.chunks else {
        return Ok(String::new());
    };
    let mut datas = Vec::new();
    for c in chunks {
        datas.push(open_object(
            &session.key,
            &c.id,
            session.repo.get(&c.id)?,
            Some(c.size as usize),
        )?);
    }
    macro_rules! dg {
        ($t:ty) => {{
            let mut h = <$t>::new();
            for d in &datas {
                h.update(d);
            }
            hex::encode(h.finalize())
        }};
    }
    Ok(match algo {
        "md5" => dg!(md5::Md5),
        "sha1" => dg!(sha1::Sha1),
        "sha224" => dg!(sha2::Sha224),
        "sha256" => dg!(sha2::Sha256),
        "sha384" => dg!(sha2::Sha384),
        "sha512" => dg!(sha2::Sha512),
        "sha3_224" => dg!(sha3::Sha3_224),
        "sha3_256" => dg!(sha3::Sha3_256),
        "sha3_384" => dg!(sha3::Sha3_384),
        "sha3_512" => dg!(sha3::Sha3_512),
        "blake2b" => dg!(blake2::Blake2b512),
        "blake2s" => dg!(blake2::Blake2s256),
        _ => {
            let mut h = xxhash_rust::xxh64::Xxh64::new(0);
            for d in &datas {
                h.update(d);
            }
            format!("{:016x}", h.digest())
        }
    })
}

fn list_items(a: &ListArgs, ctx: &Ctx, session: &Session, name: &str) -> anyhow::Result<()> {
    let meta = crate::cli::commands::extract::load_archive(session, name)?;
    let pargs = a.patterns.build(&ctx.sub)?;
    let matcher = PatternMatcher::for_archive(pargs.patterns, &a.paths)
        .map_err(|e| GenericError(e.to_string()))?;
    let fmt = match (&a.format, a.short) {
        (Some(f), _) => f.clone(),
        (None, true) => "{path}{NL}".to_string(),
        (None, false) => "{mode} {user:6} {group:6} {size:8} {mtime} {path}{extra}{NL}".to_string(),
    };
    let parts: Vec<Part> = format::parse(&fmt).map_err(|e| GenericError(e.to_string()))?;
    let keys: Vec<String> = format::keys(&parts).into_iter().map(String::from).collect();
    let needs_cache = keys
        .iter()
        .any(|k| matches!(k.as_str(), "dsize" | "dcsize" | "unique_chunks"));
    let cache = if needs_cache {
        Some(Cache::open(
            &*session.repo,
            &session.key,
            &session.manifest,
        )?)
    } else {
        None
    };
    let archive_id = session.manifest.get(name).map(|e| e.id).unwrap_or_default();
    let consider_parts = ctx.common.consider_part_files;
    for item in ItemReader::new(&*session.repo, &session.key, &meta.items) {
        let item = item?;
        if item.part.is_some() && !consider_parts {
            continue;
        }
        if !matcher.is_included(&item.path_str()) {
            continue;
        }
        let mut mode = filemode(item.mode);
        let source = item
            .source
            .as_ref()
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .unwrap_or_default();
        let mut extra = String::new();
        if !source.is_empty() {
            if mode.starts_with('l') {
                extra = format!(" -> {source}");
            } else {
                mode = format!("h{}", &mode[1..]);
                extra = format!(" link to {source}");
            }
        }
        let user = match &item.user {
            Some(Some(u)) => FieldValue::Str(String::from_utf8_lossy(u).into_owned()),
            _ => FieldValue::Int(item.uid.unwrap_or(0) as i128),
        };
        let group = match &item.group {
            Some(Some(g)) => FieldValue::Str(String::from_utf8_lossy(g).into_owned()),
            _ => FieldValue::Int(item.gid.unwrap_or(0) as i128),
        };
        // like borg's get_size: content size, or the target length for symlinks
        let size: u64 = match &item.chunks {
            Some(c) => c.iter().map(|c| c.size as u64).sum(),
            None if item.is_link() => item.source.as_ref().map_or(0, |s| s.len() as u64),
            None => 0,
        };
        let csize: u64 = match &item.chunks {
            Some(c) => c.iter().map(|c| c.csize as u64).sum(),
            None => size,
        };
        let mut hashes: HashMap<&str, String> = HashMap::new();
        for h in HASHES {
            if keys.iter().any(|k| k == h) {
                hashes.insert(h, hash_item(session, &item, h)?);
            }
        }
        let unique = |f: &dyn Fn(&crate::archive::item::ChunkRef) -> u64| -> u64 {
            let Some(c) = &cache else { return 0 };
            let Some(chunks) = &item.chunks else { return 0 };
            let mut counter: HashMap<ObjectId, u32> = HashMap::new();
            for ch in chunks {
                *counter.entry(ch.id).or_default() += 1;
            }
            chunks
                .iter()
                .filter(|ch| c.chunks.get(&ch.id).map(|e| e.refcount) == Some(counter[&ch.id]))
                .map(f)
                .sum()
        };
        let tm = |t: Option<i128>| -> i128 { t.unwrap_or(item.mtime) };
        let get = |k: &str| -> Option<FieldValue> {
            if let Some(v) = format::fixed_key(k) {
                return Some(FieldValue::Str(v.to_string()));
            }
            Some(match k {
                "type" => FieldValue::Str(mode[..1].to_string()),
                "mode" => FieldValue::Str(mode.clone()),
                "uid" => FieldValue::Int(item.uid.unwrap_or(0) as i128),
                "gid" => FieldValue::Int(item.gid.unwrap_or(0) as i128),
                "user" => user.clone(),
                "group" => group.clone(),
                "path" | "bpath" => FieldValue::Str(item.path_str()),
                "source" | "linktarget" => FieldValue::Str(source.clone()),
                "flags" => FieldValue::Int(item.bsdflags.unwrap_or(0) as i128),
                "size" => FieldValue::Int(size as i128),
                "csize" => FieldValue::Int(csize as i128),
                "num_chunks" => {
                    FieldValue::Int(item.chunks.as_ref().map_or(0, |c| c.len()) as i128)
                }
                "dsize" => FieldValue::Int(unique(&|c| c.size as u64) as i128),
                "dcsize" => FieldValue::Int(unique(&|c| c.csize as u64) as i128),
                "unique_chunks" => FieldValue::Int(unique(&|_| 1) as i128),
                "mtime" => FieldValue::ItemTime(tm(Some(item.mtime))),
                "ctime" => FieldValue::ItemTime(tm(item.ctime)),
                "atime" => FieldValue::ItemTime(tm(item.atime)),
                "isomtime" => {
                    FieldValue::Str(crate::cli::timefmt::item_isoformat(tm(Some(item.mtime))))
                }
                "isoctime" => FieldValue::Str(crate::cli::timefmt::item_isoformat(tm(item.ctime))),
                "isoatime" => FieldValue::Str(crate::cli::timefmt::item_isoformat(tm(item.atime))),
                "archiveid" => FieldValue::Str(archive_id.hex()),
                "archivename" => FieldValue::Str(name.to_string()),
                "extra" => FieldValue::Str(extra.clone()),
                "health" => FieldValue::Str(
                    if item.chunks_healthy.is_some() {
                        "broken"
                    } else {
                        "healthy"
                    }
                    .into(),
                ),
                h if hashes.contains_key(h) => FieldValue::Str(hashes[h].clone()),
                _ => return None,
            })
        };
        if a.json_lines {
            let mut o = Map::new();
            for k in ["archivename", "archiveid"] {
                if keys.iter().any(|x| x == k) {
                    if let Some(FieldValue::Str(s)) = get(k) {
                        o.insert(k.into(), s.into());
                    }
                }
            }
            o.insert("type".into(), mode[..1].into());
            o.insert("mode".into(), mode.clone().into());
            o.insert("user".into(), fv_json(&user));
            o.insert("group".into(), fv_json(&group));
            o.insert("uid".into(), item.uid.unwrap_or(0).into());
            o.insert("gid".into(), item.gid.unwrap_or(0).into());
            o.insert("path".into(), item.path_str().into());
            o.insert("healthy".into(), item.chunks_healthy.is_none().into());
            o.insert("source".into(), source.clone().into());
            o.insert("linktarget".into(), source.clone().into());
            o.insert("flags".into(), item.bsdflags.unwrap_or(0).into());
            const CALL_KEYS: &[&str] = &[
                "size",
                "csize",
                "dsize",
                "dcsize",
                "num_chunks",
                "unique_chunks",
                "isomtime",
                "isoctime",
                "isoatime",
                "mtime",
                "ctime",
                "atime",
            ];
            for k in &keys {
                if CALL_KEYS.contains(&k.as_str()) || HASHES.contains(&k.as_str()) {
                    if let Some(v) = get(k) {
                        let jv = fv_json(&v);
                        o.insert(k.clone(), jv);
                    }
                }
            }
            crate::cli::write_stdout(&format!(
                "{}\n",
                crate::cli::json::dumps_line(&J::Object(o))
            ));
        } else {
            let mut s = String::new();
            if let Err(k) = format::render(&parts, &get, &mut s) {
                return Err(GenericError(format!("Invalid format key: {k}")).into());
            }
            crate::cli::write_stdout(&s);
        }
    }
    for w in matcher.never_matched_warnings() {
        exit::warn(101, Some("IncludePatternNeverMatchedWarning"), &w);
    }
    Ok(())
}

fn fv_json(v: &FieldValue) -> J {
    match v {
        FieldValue::Str(s) => J::String(s.clone()),
        FieldValue::Int(i) => J::from(*i as i64),
        FieldValue::Float(f) => J::from(*f),
        FieldValue::Time(t) => J::String(crate::cli::timefmt::isoformat_local_secs(t)),
        FieldValue::ItemTime(ns) => J::String(crate::cli::timefmt::item_isoformat(*ns)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_and_globs() {
        assert_eq!(filemode(0o100644), "-rw-r--r--");
        assert_eq!(filemode(0o040755), "drwxr-xr-x");
        assert_eq!(filemode(0o104755), "-rwsr-xr-x");
        assert_eq!(filemode(0o041777), "drwxrwxrwt");
        assert_eq!(
            shell_join(&[b"borg".to_vec(), b"a b".to_vec()]),
            "borg 'a b'"
        );
    }
}
