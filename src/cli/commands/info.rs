//! `borg info`: repository or archive details and statistics.

use clap::Args;
use serde_json::{json, Value as J};

use crate::archive::cache::{Cache, CacheStats};
use crate::archive::manifest::Operation;
use crate::archive::session::Session;
use crate::cli::common::{location, Ctx, Want};
use crate::crypto::KeyKind;
use crate::units::fsize;

#[derive(Args, Debug)]
pub struct InfoArgs {
    /// repository or archive to display information about
    #[arg(value_name = "REPOSITORY_OR_ARCHIVE")]
    pub location: Option<String>,
    /// format output as JSON
    #[arg(long)]
    pub json: bool,
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
    if loc.archive.is_some() {
        anyhow::bail!("archive info is not implemented yet");
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
