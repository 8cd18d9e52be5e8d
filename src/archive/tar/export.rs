//! `export-tar`: an archive (or the part selected by patterns) as a tar stream.
//!
//! Item order is the archive's. Hardlinks follow borg 1.x: a slave becomes a tar hard link
//! to its master's (possibly stripped) path; when the master itself is not exported
//! (patterns, `--strip-components`), the first exported slave carries the content and later
//! ones link to it. Content is streamed in batches of chunks (bounded memory); the
//! chunks of consecutive small files share batches (one repository round trip).

use std::collections::HashMap;
use std::io::Write;

use base64::Engine as _;
use rayon::prelude::*;

use super::header::*;
use super::writer::{TarWriter, WriteEntry};
use super::TarFormat;
use crate::archive::item::{ChunkRef, Item, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFREG};
use crate::archive::itemstream::ItemReader;
use crate::archive::meta::{open_object, ArchiveMeta};
use crate::archive::patterns::PatternMatcher;
use crate::crypto::Key;
use crate::repo::Repository;

#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    pub strip_components: usize,
    pub format: TarFormat,
    pub consider_part_files: bool,
    pub progress: bool,
}

/// Receives what export-tar reports.
pub trait ExportReporter {
    /// `--list`: an exported item's (unstripped) path.
    fn listed(&self, path: &[u8]);
    /// A warning (borg's `print_warning`, exit code 1).
    fn warning(&self, msg: &str);
}

/// The `mode` types a hardlink can have in borg 1.x.
fn hardlinkable(mode: u32) -> bool {
    matches!(mode & 0o170000, S_IFREG | S_IFBLK | S_IFCHR | S_IFIFO)
}

/// `os.sep.join(path.split(os.sep)[n:])` on bytes.
pub fn strip_path(path: &[u8], n: usize) -> Vec<u8> {
    if n == 0 {
        return path.to_vec();
    }
    path.split(|b| *b == b'/')
        .skip(n)
        .collect::<Vec<_>>()
        .join(&b'/')
}

/// Linux `major()`/`minor()` of a device number.
pub fn major(dev: u64) -> u64 {
    ((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0x0fff)
}
pub fn minor(dev: u64) -> u64 {
    ((dev >> 12) & 0xffff_ff00) | (dev & 0xff)
}

/// Master path → (chunks of a master not exported, tar path of its first exported link).
type Masters = HashMap<Vec<u8>, (Option<Vec<ChunkRef>>, Option<Vec<u8>>)>;

/// Fetches, decrypts and decompresses chunks (in parallel), in order.
fn fetch<T: Sync>(
    repo: &dyn Repository,
    key: &Key,
    chunks: &[(T, ChunkRef)],
) -> anyhow::Result<Vec<Vec<u8>>> {
    let envs: Vec<_> = repo
        .get_many(chunks.iter().map(|(_, c)| c.id).collect())
        .collect();
    let out: crate::archive::Result<Vec<Vec<u8>>> = chunks
        .par_iter()
        .zip(envs.into_par_iter())
        .map(|((_, c), env)| open_object(key, &c.id, env?, Some(c.size as usize)))
        .collect();
    Ok(out?)
}

/// A member waiting for its content to be fetched.
struct Pending {
    entry: WriteEntry,
    chunks: Vec<ChunkRef>,
    /// For progress messages.
    path: Vec<u8>,
}

/// Members of a window are written in order; the chunks of all of them are fetched in
/// shared batches, so many small files do not cost one repository round trip each.
const WINDOW_MEMBERS: usize = 1024;
const WINDOW_BYTES: u64 = 32 << 20;

/// Begins members up to and including `idx` (ending the current one first).
fn advance_to<W: Write>(
    tar: &mut TarWriter<W>,
    window: &[Pending],
    cur: &mut Option<(usize, u64)>,
    next: &mut usize,
    idx: usize,
) -> anyhow::Result<()> {
    while *next <= idx {
        if cur.is_some() {
            tar.end()?;
        }
        let p = &window[*next];
        tar.begin(&p.entry)?;
        *cur = Some((*next, p.entry.size));
        *next += 1;
    }
    Ok(())
}

fn write_window<W: Write>(
    repo: &dyn Repository,
    key: &Key,
    tar: &mut TarWriter<W>,
    window: &mut Vec<Pending>,
    progress: &mut Option<(crate::log::ProgressPercent, u64)>,
) -> anyhow::Result<()> {
    let all: Vec<(usize, ChunkRef)> = window
        .iter()
        .enumerate()
        .flat_map(|(i, p)| p.chunks.iter().map(move |c| (i, *c)))
        .collect();
    // the member being written: (index, content bytes still expected)
    let mut cur: Option<(usize, u64)> = None;
    let mut next = 0usize;
    for batch in batches(&all) {
        let datas = fetch(repo, key, batch)?;
        for ((idx, _), data) in batch.iter().zip(datas) {
            advance_to(tar, window, &mut cur, &mut next, *idx)?;
            let (_, left) = cur.as_mut().expect("member begun");
            let n = (data.len() as u64).min(*left) as usize;
            tar.write_data(&data[..n])?;
            *left -= n as u64;
            if let Some((p, done)) = progress.as_mut() {
                *done += data.len() as u64;
                p.show_with(*done, Some(&String::from_utf8_lossy(&window[*idx].path)));
            }
        }
    }
    if !window.is_empty() {
        advance_to(tar, window, &mut cur, &mut next, window.len() - 1)?;
    }
    if cur.is_some() {
        tar.end()?;
    }
    window.clear();
    Ok(())
}

/// Batches of at most 64 chunks / 32 MiB: one `get_many` each (remote repositories
/// pipeline it), decrypted in parallel, memory bounded.
fn batches<T>(chunks: &[(T, ChunkRef)]) -> Vec<&[(T, ChunkRef)]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0u64;
    for (i, (_, c)) in chunks.iter().enumerate() {
        bytes += c.size as u64;
        if i + 1 - start >= 64 || bytes >= 32 << 20 {
            out.push(&chunks[start..=i]);
            start = i + 1;
            bytes = 0;
        }
    }
    if start < chunks.len() {
        out.push(&chunks[start..]);
    }
    out
}

/// The pax records of `--tar-format=PAX|BORG` for an item.
fn pax_records(item: &Item, format: TarFormat, meta_item: &Item) -> PaxRecords {
    let mut ph = Vec::new();
    let t = super::writer::format_pax_time;
    if let Some(a) = item.atime {
        ph.push((b"atime".to_vec(), t(a).into_bytes()));
    }
    if let Some(c) = item.ctime {
        ph.push((b"ctime".to_vec(), t(c).into_bytes()));
    }
    ph.push((b"mtime".to_vec(), t(item.mtime).into_bytes()));
    if let Some(x) = &item.xattrs {
        for (k, v) in x {
            ph.push(([&b"SCHILY.xattr."[..], k].concat(), v.clone()));
        }
    }
    if let Some(a) = &item.acl_access {
        ph.push((b"SCHILY.acl.access".to_vec(), a.clone()));
    }
    if let Some(a) = &item.acl_default {
        ph.push((b"SCHILY.acl.default".to_vec(), a.clone()));
    }
    if format == TarFormat::Borg {
        ph.push((b"BORG.item.version".to_vec(), b"1".to_vec()));
        let packed = meta_item.pack();
        ph.push((
            b"BORG.item.meta".to_vec(),
            base64::engine::general_purpose::STANDARD
                .encode(packed)
                .into_bytes(),
        ));
    }
    ph
}

/// Writes the tar stream of `meta`'s items selected by `matcher` to `out`; returns `out`.
pub fn export_tar<W: Write>(
    repo: &dyn Repository,
    key: &Key,
    meta: &ArchiveMeta,
    matcher: &PatternMatcher,
    opts: &ExportOptions,
    reporter: &dyn ExportReporter,
    out: W,
) -> anyhow::Result<W> {
    let strip = opts.strip_components;
    let partial = !matcher.is_empty() || strip > 0;
    let mut masters: Option<Masters> = partial.then(HashMap::new);

    // borg's filter: part files are dropped first; unselected hardlink masters are
    // remembered (with their chunks) for slaves that are selected.
    let select = |item: &Item, masters: &mut Option<Masters>| -> bool {
        if item.part.is_some() && !opts.consider_part_files {
            return false;
        }
        let matched = matcher.is_included(&item.path_str())
            && (strip == 0 || !strip_path(&item.path, strip).is_empty());
        if let Some(m) = masters.as_mut() {
            if !matched
                && hardlinkable(item.mode)
                && item.hardlink_master.unwrap_or(true)
                && item.source.is_none()
            {
                m.insert(item.path.clone(), (item.chunks.clone(), None));
            }
        }
        matched
    };

    let mut progress = None;
    if opts.progress {
        let mut total = 0u64;
        let mut m2 = masters.clone();
        for item in ItemReader::new(repo, key, &meta.items) {
            let item = item?;
            if select(&item, &mut m2) {
                total += item.content_size();
            }
        }
        matcher.reset_match_counts();
        progress = Some((
            crate::log::ProgressPercent::new(total, "%5.1f%% Processing:", "extract"),
            0u64,
        ));
    }

    let mut tar = TarWriter::new(out, opts.format);
    let mut window: Vec<Pending> = Vec::new();
    let mut window_bytes = 0u64;
    for item in ItemReader::new(repo, key, &meta.items) {
        let mut item = item?;
        if !select(&item, &mut masters) {
            continue;
        }
        let orig_path = item.path.clone();
        if strip > 0 {
            item.path = strip_path(&orig_path, strip);
        }
        let mut e = WriteEntry {
            name: item.path.clone(),
            mode: item.mode & 0o7777,
            uid: item.uid.unwrap_or(0) as u64,
            gid: item.gid.unwrap_or(0) as u64,
            uname: item.user.clone().flatten().unwrap_or_default(),
            gname: item.group.clone().flatten().unwrap_or_default(),
            mtime_ns: item.mtime,
            ..WriteEntry::default()
        };
        let mut content: Vec<ChunkRef> = Vec::new();
        let mut meta_item = item.clone();
        match item.mode & 0o170000 {
            S_IFREG => {
                e.typeflag = REGTYPE;
                if let Some(src) = item.source.clone() {
                    let source = strip_path(&src, strip);
                    let (chunks, linkname) = match masters.as_ref() {
                        None => (None, Some(source)),
                        Some(m) => m.get(&src).cloned().unwrap_or((None, Some(source))),
                    };
                    match linkname {
                        Some(l) if !l.is_empty() => {
                            e.typeflag = LNKTYPE;
                            meta_item.source = Some(l.clone());
                            e.linkname = l;
                        }
                        _ => {
                            if let Some(chunks) = chunks {
                                // the master was not exported: this link carries the content
                                e.size = item
                                    .size
                                    .unwrap_or_else(|| chunks.iter().map(|c| c.size as u64).sum());
                                meta_item.source = None;
                                meta_item.chunks = Some(chunks.clone());
                                content = chunks;
                                if let Some(m) = masters.as_mut() {
                                    m.insert(src, (None, Some(item.path.clone())));
                                }
                            }
                        }
                    }
                } else {
                    e.size = item.content_size();
                    content = item.chunks.clone().unwrap_or_default();
                }
            }
            S_IFDIR => e.typeflag = DIRTYPE,
            S_IFLNK => {
                e.typeflag = SYMTYPE;
                e.linkname = item.source.clone().unwrap_or_default();
            }
            S_IFBLK | S_IFCHR => {
                e.typeflag = if item.is_blk() { BLKTYPE } else { CHRTYPE };
                let rdev = item.rdev.unwrap_or(0);
                e.devmajor = major(rdev);
                e.devminor = minor(rdev);
            }
            S_IFIFO => e.typeflag = FIFOTYPE,
            t => {
                reporter.warning(&format!(
                    "{}: unsupported file type {:o} for tar export",
                    String::from_utf8_lossy(&item.path),
                    t
                ));
                continue;
            }
        }
        if opts.format != TarFormat::Gnu {
            e.pax = pax_records(&item, opts.format, &meta_item);
        }
        reporter.listed(&orig_path);
        window_bytes += e.size;
        window.push(Pending {
            entry: e,
            chunks: content,
            path: item.path,
        });
        if window.len() >= WINDOW_MEMBERS || window_bytes >= WINDOW_BYTES {
            write_window(repo, key, &mut tar, &mut window, &mut progress)?;
            window_bytes = 0;
        }
    }
    write_window(repo, key, &mut tar, &mut window, &mut progress)?;
    if let Some((mut p, _)) = progress {
        p.finish();
    }
    Ok(tar.finish()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip() {
        assert_eq!(strip_path(b"a/b/c", 1), b"b/c");
        assert_eq!(strip_path(b"a/b/c", 3), b"");
        assert_eq!(strip_path(b"a", 1), b"");
        assert_eq!(strip_path(b"a/b", 0), b"a/b");
    }

    #[test]
    fn devices() {
        let d = libc::makedev(259, 70000);
        assert_eq!((major(d), minor(d)), (259, 70000));
    }
}
