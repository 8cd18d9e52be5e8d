//! `borg info`: repository or archive details and statistics.

use clap::Args;
use serde_json::{json, Value as J};

use crate::archive::cache::{Cache, CacheStats};
use crate::archive::delete::archive_stats;
use crate::archive::manifest::Operation;
use crate::archive::meta::ArchiveMeta;
use crate::archive::session::Session;
use crate::cli::common::{location, ArchiveFilterOpts, Ctx, Want};
use crate::cli::timefmt::{format_time_local, isoformat_local_secs, parse_timestamp};
use crate::crypto::KeyKind;
use crate::repo::ObjectId;
use crate::units::format_timedelta;
use crate::units::fsize;

#[derive(Args, Debug)]
pub struct InfoArgs {
    /// repository or archive to display information about
    #[arg(value_name = "REPOSITORY_OR_ARCHIVE")]
    pub location: Option<String>,
    /// format output as JSON
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub filters: ArchiveFilterOpts,
}

pub const DASHES: &str =
    "------------------------------------------------------------------------------";
pub const STATS_HEADER: &str =
    "                       Original size      Compressed size    Deduplicated size";

/// The `All archives:` / `Chunk index:` lines of borg's cache summary.
pub fn cache_summary(s: &CacheStats) -> String {
    format!(
        "All archives:   {:>20} {:>20} {:>20}\n\n                       Unique chunks         Total chunks\nChunk index:    {:>20} {:>20}",
        fsize(s.total_size as i128),
        fsize(s.total_csize as i128),
        fsize(s.unique_csize as i128),
        s.total_unique_chunks,
        s.total_chunks
    )
}

/// borg's `basic_json_data`: repository, encryption (and cache) sections.
pub fn basic_json(session: &Session, cache: Option<&Cache>) -> serde_json::Map<String, J> {
    let mut m = serde_json::Map::new();
    m.insert(
        "repository".into(),
        json!({
            "id": session.repo.id().hex(),
            "location": session.repo.location().canonical_path(),
            "last_modified": crate::cli::timefmt::isoformat_local_secs(&session.manifest.last_timestamp()),
        }),
    );
    let mut enc = serde_json::Map::new();
    enc.insert("mode".into(), session.key.kind.arg_name().into());
    if matches!(session.key.kind, KeyKind::Keyfile | KeyKind::KeyfileBlake2) {
        enc.insert(
            "keyfile".into(),
            session.key.target.clone().unwrap_or_default().into(),
        );
    }
    m.insert("encryption".into(), J::Object(enc));
    if let Some(c) = cache {
        m.insert("cache".into(), cache_json(c));
    }
    m
}

pub fn cache_json(c: &Cache) -> J {
    let s = c.stats();
    json!({
        "path": c.path.display().to_string(),
        "stats": {
            "total_chunks": s.total_chunks,
            "total_csize": s.total_csize,
            "total_size": s.total_size,
            "total_unique_chunks": s.total_unique_chunks,
            "unique_csize": s.unique_csize,
            "unique_size": s.unique_size,
        }
    })
}

pub fn run(a: &InfoArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let loc = location(a.location.as_deref(), Want::Either, "REPOSITORY_OR_ARCHIVE")?;
    let session = ctx.session(&loc, false, Operation::Read)?;
    let cache = Cache::open(&*session.repo, &session.key, &session.manifest)?;
    if loc.archive.is_some() || a.filters.any() {
        return info_archives(a, ctx, &loc, &session, &cache);
    }
    if a.json {
        let mut m = basic_json(&session, Some(&cache));
        m.insert(
            "security_dir".into(),
            session.security.dir.display().to_string().into(),
        );
        crate::cli::json::print(&J::Object(m));
        return Ok(());
    }
    let key = &session.key;
    let mut encryption = match key.kind {
        KeyKind::Plaintext | KeyKind::Authenticated => "Encrypted: No".to_string(),
        k => format!("Encrypted: Yes ({})", k.name()),
    };
    if key.kind.name().starts_with("key file") {
        encryption.push_str(&format!(
            "\nKey file: {}",
            key.target.clone().unwrap_or_default()
        ));
    }
    crate::outln!("Repository ID: {}", session.repo.id().hex());
    crate::outln!("Location: {}", session.repo.location().canonical_path());
    crate::outln!("{encryption}");
    crate::outln!("Cache: {}", cache.path.display());
    crate::outln!("Security dir: {}", session.security.dir.display());
    crate::outln!("{DASHES}");
    crate::outln!("{STATS_HEADER}");
    crate::outln!("{}", cache_summary(&cache.stats()));
    Ok(())
}

/// Per-archive info (borg's `_info_archives`): one block per archive, or one JSON document.
fn info_archives(
    a: &InfoArgs,
    _ctx: &Ctx,
    loc: &crate::repo::Location,
    session: &Session,
    cache: &Cache,
) -> anyhow::Result<()> {
    let targets: Vec<(String, ObjectId)> = match &loc.archive {
        Some(name) => {
            let entry = session
                .manifest
                .archives
                .get(name.as_bytes())
                .ok_or_else(|| crate::archive::ArchiveError::DoesNotExist(name.clone()))?;
            vec![(name.clone(), entry.id)]
        }
        None => crate::cli::commands::list::filtered_archives(session, &a.filters, true)?
            .into_iter()
            .map(|r| (String::from_utf8_lossy(&r.name).into_owned(), r.id))
            .collect(),
    };
    let mut out = Vec::new();
    for (i, (name, id)) in targets.iter().enumerate() {
        let meta = ArchiveMeta::load(&*session.repo, &session.key, id)?;
        let info = ArchiveInfo::gather(session, cache, name, id, &meta)?;
        if a.json {
            out.push(info.to_json());
        } else {
            crate::outln!("{}", info.text(cache));
            if i + 1 < targets.len() {
                crate::outln!();
            }
        }
    }
    if a.json {
        let mut m = basic_json(session, Some(cache));
        m.insert("archives".into(), J::Array(out));
        crate::cli::json::print(&J::Object(m));
    }
    Ok(())
}

struct ArchiveInfo {
    name: String,
    id: ObjectId,
    start: chrono::DateTime<chrono::Utc>,
    end: chrono::DateTime<chrono::Utc>,
    stats: crate::archive::chunkstore::Stats,
    max_archive_size: f64,
    command_line: Vec<String>,
    cwd: String,
    hostname: String,
    username: String,
    comment: String,
    chunker_params: J,
}

impl ArchiveInfo {
    fn gather(
        session: &Session,
        cache: &Cache,
        name: &str,
        id: &ObjectId,
        meta: &ArchiveMeta,
    ) -> anyhow::Result<ArchiveInfo> {
        let lossy = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let start = parse_timestamp(&meta.time)?;
        let end = if meta.time_end.is_empty() {
            start
        } else {
            parse_timestamp(&meta.time_end)?
        };
        let stats = archive_stats(&*session.repo, &session.key, &cache.chunks, meta)?;
        let chunker_params = match meta.chunker_params() {
            Some(cp) => chunker_params_json(&cp),
            None => J::String(String::new()),
        };
        Ok(ArchiveInfo {
            name: name.to_string(),
            id: *id,
            start,
            end,
            stats,
            max_archive_size: cache
                .chunks
                .get(id)
                .map(|e| e.csize as f64 / crate::repo::MAX_DATA_SIZE as f64)
                .unwrap_or(0.0),
            command_line: meta.cmdline.iter().map(|c| lossy(c)).collect(),
            cwd: meta.cwd.as_deref().map(lossy).unwrap_or_default(),
            hostname: lossy(&meta.hostname),
            username: lossy(&meta.username),
            comment: lossy(&meta.comment),
            chunker_params,
        })
    }

    fn duration(&self) -> f64 {
        (self.end - self.start).num_microseconds().unwrap_or(0) as f64 / 1e6
    }

    fn to_json(&self) -> J {
        json!({
            "name": self.name,
            "id": self.id.hex(),
            "start": isoformat_local_secs(&self.start),
            "end": isoformat_local_secs(&self.end),
            "duration": self.duration(),
            "stats": {
                "original_size": self.stats.osize,
                "compressed_size": self.stats.csize,
                "deduplicated_size": self.stats.usize,
                "nfiles": self.stats.nfiles,
            },
            "limits": {"max_archive_size": self.max_archive_size},
            "command_line": self.command_line,
            "cwd": self.cwd,
            "hostname": self.hostname,
            "username": self.username,
            "comment": self.comment,
            "chunker_params": self.chunker_params,
        })
    }

    fn text(&self, cache: &Cache) -> String {
        let s = &self.stats;
        [
            format!("Archive name: {}", self.name),
            format!("Archive fingerprint: {}", self.id.hex()),
            format!("Comment: {}", self.comment),
            format!("Hostname: {}", self.hostname),
            format!("Username: {}", self.username),
            format!("Time (start): {}", format_time_local(&self.start)),
            format!("Time (end): {}", format_time_local(&self.end)),
            format!("Duration: {}", format_timedelta(self.duration())),
            format!("Number of files: {}", s.nfiles),
            format!("Working Directory: {}", self.cwd),
            format!("Command line: {}", shlex_join(&self.command_line)),
            format!(
                "Utilization of maximum supported archive size: {:.0}%",
                self.max_archive_size * 100.0
            ),
            DASHES.to_string(),
            STATS_HEADER.to_string(),
            format!(
                "{:<15} {:>20} {:>20} {:>20}",
                "This archive:",
                fsize(s.osize as i128),
                fsize(s.csize as i128),
                fsize(s.usize as i128)
            ),
            cache_summary(&cache.stats()),
        ]
        .join("\n")
    }
}

/// borg's `normalize_chunker_params` as JSON: old 4-tuples gain the `buzhash` name.
fn chunker_params_json(cp: &crate::chunker::ChunkerParams) -> J {
    use crate::chunker::ChunkerParams as P;
    match *cp {
        P::Buzhash {
            min_exp,
            max_exp,
            mask_bits,
            window,
        } => json!(["buzhash", min_exp, max_exp, mask_bits, window]),
        P::Fixed {
            block_size,
            header_size,
        } => json!(["fixed", block_size, header_size]),
    }
}

/// Python's `shlex.join`: quote each word that needs it with single quotes.
pub fn shlex_join(words: &[String]) -> String {
    words
        .iter()
        .map(|w| {
            let safe = !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "@%+=:,./-_".contains(c));
            if safe {
                w.clone()
            } else {
                format!("'{}'", w.replace('\'', "'\"'\"'"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
