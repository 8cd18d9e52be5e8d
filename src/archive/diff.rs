//! `diff`: compare the items of two archives the way borg 1.4 does (`compare_archives_iter`
//! and `ItemDiff`), including its pairing order, hardlink handling and change strings.
//!
//! Pairing: both item streams are read in lock step. Items with the same path at the same
//! position are compared at once; otherwise an item waits in its archive's "orphans" until the
//! other archive yields the same path. Orphans of archive 2 are then reported as added, orphans
//! of archive 1 as removed, and pairs whose hardlink master had not been seen yet come last.

use std::collections::{HashMap, HashSet};

use chrono::{Local, NaiveDateTime, TimeZone};
use serde_json::{Map, Value as J};

use super::item::{Item, S_IFBLK, S_IFCHR, S_IFIFO, S_IFREG};
use super::itemstream::ItemReader;
use super::meta::{open_object, ArchiveMeta};
use super::patterns::PatternMatcher;
use super::Result;
use crate::crypto::Key;
use crate::repo::{ObjectId, Repository};

/// How items are compared.
#[derive(Clone, Copy, Debug, Default)]
pub struct DiffOptions {
    /// Chunk lists are comparable (same chunker params): compare ids instead of contents.
    pub can_compare_chunk_ids: bool,
    /// Ignore owner, mode, ctime and mtime.
    pub content_only: bool,
    /// Show part files of checkpoint archives as normal files.
    pub consider_part_files: bool,
}

/// One side of a comparison: an archived item, or borg's placeholder for "not there"
/// (`Item.create_deleted`: path, mode 0, empty chunk list).
#[derive(Clone, Debug)]
pub struct DiffItem {
    pub item: Item,
    pub deleted: bool,
}

fn hardlinkable(mode: u32) -> bool {
    matches!(mode & 0o170000, S_IFREG | S_IFBLK | S_IFCHR | S_IFIFO)
}

impl DiffItem {
    fn present(item: Item) -> DiffItem {
        DiffItem {
            item,
            deleted: false,
        }
    }

    fn deleted(path: &[u8]) -> DiffItem {
        DiffItem {
            item: Item {
                path: path.to_vec(),
                mode: 0,
                chunks: Some(Vec::new()),
                ..Item::default()
            },
            deleted: true,
        }
    }

    fn source(&self) -> Option<&[u8]> {
        self.item.source.as_deref()
    }

    fn user(&self) -> Option<&[u8]> {
        self.item.user.as_ref().and_then(|u| u.as_deref())
    }

    fn group(&self) -> Option<&[u8]> {
        self.item.group.as_ref().and_then(|g| g.as_deref())
    }

    fn ctime(&self) -> Option<i128> {
        self.item.ctime
    }

    /// The placeholder has no mtime.
    fn mtime(&self) -> Option<i128> {
        (!self.deleted).then_some(self.item.mtime)
    }

    fn is_hardlink_master(&self) -> bool {
        self.item.hardlink_master.unwrap_or(true)
            && self.item.source.is_none()
            && hardlinkable(self.item.mode)
    }

    /// borg's `Item.get_size()` without hardlink masters: the `size` field, a symlink's target
    /// length, or the sum of the chunk sizes.
    pub fn get_size(&self) -> u64 {
        if let Some(s) = self.item.size {
            return s;
        }
        if self.item.is_link() {
            return self.item.source.as_ref().map_or(0, |s| s.len() as u64);
        }
        self.item
            .chunks
            .as_ref()
            .map_or(0, |c| c.iter().map(|c| c.size as u64).sum())
    }
}

/// One entry of `ItemDiff.changes()`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// `modified`; `added`/`removed` bytes when chunk ids were comparable.
    Modified(Option<(u64, u64)>),
    Added(u64),
    Removed(u64),
    /// `added directory`, `removed fifo`, `added link`, ...
    Presence(String),
    ChangedLink,
    Owner {
        old_user: Option<String>,
        old_group: Option<String>,
        new_user: Option<String>,
        new_group: Option<String>,
    },
    Mode {
        old: String,
        new: String,
    },
    /// `ctime` or `mtime`, nanoseconds.
    Time {
        attr: &'static str,
        old: i128,
        new: i128,
    },
}

/// Python's `str()` of an optional name: `None` when missing.
fn py_opt(s: &Option<String>) -> String {
    s.clone().unwrap_or_else(|| "None".into())
}

impl Change {
    /// borg drops `modified` entries that added and removed nothing.
    pub fn is_actual(&self) -> bool {
        !matches!(self, Change::Modified(Some((0, 0))))
    }

    /// The text form, as in `borg diff` lines.
    pub fn text(&self) -> String {
        use crate::units::format_file_size as ffs;
        match self {
            Change::Modified(None) => "modified".into(),
            Change::Modified(Some((a, r))) => format!(
                "{:>9} {:>9}",
                ffs(*a as i128, 1, true, false),
                ffs(-(*r as i128), 1, true, false)
            ),
            Change::Added(sz) => format!("added {:>13}", ffs(*sz as i128, 2, false, false)),
            Change::Removed(sz) => format!("removed {:>11}", ffs(*sz as i128, 2, false, false)),
            Change::Presence(s) => s.clone(),
            Change::ChangedLink => "changed link".into(),
            Change::Owner {
                old_user,
                old_group,
                new_user,
                new_group,
            } => format!(
                "[{}:{} -> {}:{}]",
                py_opt(old_user),
                py_opt(old_group),
                py_opt(new_user),
                py_opt(new_group)
            ),
            Change::Mode { old, new } => format!("[{old} -> {new}]"),
            Change::Time { attr, old, new } => format!(
                "[{attr}: {} -> {}]",
                format_local(*old, "%a, %Y-%m-%d %H:%M:%S"),
                format_local(*new, "%a, %Y-%m-%d %H:%M:%S")
            ),
        }
    }

    /// The JSON object (keys sorted, as borg's `json.dumps(sort_keys=True)` writes them).
    pub fn json(&self) -> J {
        let s = |x: &str| J::String(x.to_string());
        let name = |x: &Option<String>| x.clone().map_or(J::Null, J::String);
        let pairs: Vec<(&str, J)> = match self {
            Change::Modified(None) => vec![("type", s("modified"))],
            Change::Modified(Some((a, r))) => vec![
                ("added", J::from(*a)),
                ("removed", J::from(*r)),
                ("type", s("modified")),
            ],
            Change::Added(sz) => vec![("size", J::from(*sz)), ("type", s("added"))],
            Change::Removed(sz) => vec![("size", J::from(*sz)), ("type", s("removed"))],
            Change::Presence(p) => vec![("type", s(p))],
            Change::ChangedLink => vec![("type", s("changed link"))],
            Change::Owner {
                old_user,
                old_group,
                new_user,
                new_group,
            } => vec![
                ("new_group", name(new_group)),
                ("new_user", name(new_user)),
                ("old_group", name(old_group)),
                ("old_user", name(old_user)),
                ("type", s("owner")),
            ],
            Change::Mode { old, new } => vec![
                ("new_mode", s(new)),
                ("old_mode", s(old)),
                ("type", s("mode")),
            ],
            Change::Time { attr, old, new } => {
                let iso = |t: i128| J::String(format_local(t, "%Y-%m-%dT%H:%M:%S%.6f"));
                if *attr == "ctime" {
                    vec![
                        ("new_ctime", iso(*new)),
                        ("old_ctime", iso(*old)),
                        ("type", s("ctime")),
                    ]
                } else {
                    vec![
                        ("new_mtime", iso(*new)),
                        ("old_mtime", iso(*old)),
                        ("type", s("mtime")),
                    ]
                }
            }
        };
        sorted_object(pairs)
    }

    /// Bytes added / removed for the `size_*` sort keys (borg sums `modified` and
    /// `added*`/`removed*` entries).
    fn sizes(&self) -> (i128, i128) {
        match self {
            Change::Modified(Some((a, r))) => (*a as i128, *r as i128),
            Change::Added(sz) => (*sz as i128, 0),
            Change::Removed(sz) => (0, *sz as i128),
            _ => (0, 0),
        }
    }
}

/// A JSON object with its keys in sorted order (insertion order is kept when printing).
pub fn sorted_object(mut pairs: Vec<(&str, J)>) -> J {
    pairs.sort_by(|a, b| a.0.cmp(b.0));
    let mut m = Map::new();
    for (k, v) in pairs {
        m.insert(k.to_string(), v);
    }
    J::Object(m)
}

/// Python's `datetime.fromtimestamp(ns / 1e9)` (float seconds, microseconds rounded half to
/// even) in local time, formatted with `fmt`.
pub fn format_local(ns: i128, fmt: &str) -> String {
    let (secs, micros) = py_fromtimestamp(ns);
    let dt: NaiveDateTime = match Local.timestamp_opt(secs, 0) {
        chrono::LocalResult::Single(t) => t.naive_local(),
        chrono::LocalResult::Ambiguous(t, _) => t.naive_local(),
        chrono::LocalResult::None => chrono::DateTime::from_timestamp(secs, 0)
            .unwrap_or_default()
            .naive_utc(),
    };
    let dt = dt + chrono::Duration::microseconds(micros as i64);
    dt.format(fmt).to_string()
}

/// Seconds and microseconds CPython derives from the float `ns / 1e9`.
fn py_fromtimestamp(ns: i128) -> (i64, u32) {
    let d = ns as f64 / 1e9;
    let mut intpart = d.trunc();
    let frac = (d - intpart) * 1e6;
    let mut us = round_half_even(frac);
    if us >= 1e6 {
        us -= 1e6;
        intpart += 1.0;
    } else if us < 0.0 {
        us += 1e6;
        intpart -= 1.0;
    }
    (intpart as i64, us as u32)
}

fn round_half_even(x: f64) -> f64 {
    let r = x.round();
    if (x - r).abs() == 0.5 {
        2.0 * (x / 2.0).round()
    } else {
        r
    }
}

/// borg's `remove_surrogates`: undecodable bytes become `?`.
pub fn path_text(p: &[u8]) -> String {
    let mut out = String::with_capacity(p.len());
    let mut rest = p;
    loop {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                out.push_str(s);
                return out;
            }
            Err(e) => {
                let (ok, bad) = rest.split_at(e.valid_up_to());
                out.push_str(std::str::from_utf8(ok).unwrap_or_default());
                let n = e.error_len().unwrap_or(bad.len());
                for _ in 0..n {
                    out.push('?');
                }
                rest = &bad[n..];
            }
        }
    }
}

/// The comparison of two items (borg's `ItemDiff`).
#[derive(Clone, Debug)]
pub struct ItemDiff {
    /// The path reported (the item's own path, even when a hardlink master was compared).
    pub path: Vec<u8>,
    pub equal: bool,
    pub changes: Vec<Change>,
    /// The items actually compared (hardlink slaves replaced by their masters).
    pub item1: DiffItem,
    pub item2: DiffItem,
}

impl ItemDiff {
    /// Changes borg prints (`modified` with nothing added or removed is dropped).
    pub fn actual_changes(&self) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(|c| c.is_actual())
    }

    /// The text line: `"{:<19} {}"` of the joined change strings and the path.
    pub fn text_line(&self) -> String {
        let changes: Vec<String> = self.actual_changes().map(|c| c.text()).collect();
        format!("{:<19} {}", changes.join(" "), path_text(&self.path))
    }

    /// The `--json-lines` object: `{"changes": [...], "path": ...}`.
    pub fn json(&self) -> J {
        sorted_object(vec![
            (
                "changes",
                J::Array(self.actual_changes().map(|c| c.json()).collect()),
            ),
            ("path", J::String(path_text(&self.path))),
        ])
    }

    /// The value of one `--sort-by` field (without direction marker).
    pub fn sort_key(&self, field: &str) -> SortKey {
        let it2 = &self.item2;
        let size_sums = || {
            self.changes.iter().fold((0i128, 0i128), |(a, r), c| {
                let (x, y) = c.sizes();
                (a + x, r + y)
            })
        };
        match field {
            "size_diff" => {
                let (a, r) = size_sums();
                SortKey::Int(a - r)
            }
            "size_added" => SortKey::Int(size_sums().0),
            "size_removed" => SortKey::Int(size_sums().1),
            "ctime_diff" => {
                SortKey::Int(self.item2.ctime().unwrap_or(0) - self.item1.ctime().unwrap_or(0))
            }
            "mtime_diff" => {
                SortKey::Int(self.item2.mtime().unwrap_or(0) - self.item1.mtime().unwrap_or(0))
            }
            "size" => SortKey::Int(if it2.deleted {
                0
            } else {
                it2.get_size() as i128
            }),
            // borg takes these from archive 2's item (the placeholder for removed items)
            "user" => match &it2.item.user {
                None => SortKey::Str(String::new()),
                Some(None) => SortKey::None,
                Some(Some(u)) => SortKey::Str(path_text(u)),
            },
            "group" => match &it2.item.group {
                None => SortKey::Str(String::new()),
                Some(None) => SortKey::None,
                Some(Some(g)) => SortKey::Str(path_text(g)),
            },
            "uid" => SortKey::Int(it2.item.uid.map_or(-1, |u| u as i128)),
            "gid" => SortKey::Int(it2.item.gid.map_or(-1, |g| g as i128)),
            "ctime" => SortKey::Int(it2.ctime().unwrap_or(0)),
            "mtime" => SortKey::Int(it2.mtime().unwrap_or(0)),
            _ => SortKey::Str(path_text(&self.path)),
        }
    }
}

/// A sort value (`None` sorts before every string).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SortKey {
    None,
    Int(i128),
    Str(String),
}

/// The fields `--sort-by` accepts (borg 1.4).
pub const SORT_FIELDS: &[&str] = &[
    "path",
    "size_added",
    "size_removed",
    "size_diff",
    "size",
    "user",
    "group",
    "uid",
    "gid",
    "ctime",
    "mtime",
    "ctime_diff",
    "mtime_diff",
];

/// Validates and normalises a `--sort-by` value (comma list, `>`/`<` prefixes).
pub fn parse_sort_spec(s: &str) -> std::result::Result<String, String> {
    let parts: Vec<&str> = s
        .split(',')
        .map(|p| p.trim())
        .filter(|p| !p.is_empty())
        .collect();
    if parts.is_empty() {
        return Err("unsupported sort field: empty spec".into());
    }
    for spec in &parts {
        let field = spec
            .strip_prefix('>')
            .or_else(|| spec.strip_prefix('<'))
            .unwrap_or(spec);
        if !SORT_FIELDS.contains(&field) {
            return Err(format!("unsupported sort field: {field}"));
        }
    }
    Ok(parts.join(","))
}

/// Sorts diffs stably by the specs, last spec first (so the first spec is the primary key).
pub fn sort_diffs(diffs: &mut [ItemDiff], specs: &[String]) {
    for spec in specs.iter().rev() {
        let (desc, field) = match spec.as_bytes().first() {
            Some(b'>') => (true, &spec[1..]),
            Some(b'<') => (false, &spec[1..]),
            _ => (false, spec.as_str()),
        };
        let mut keyed: Vec<(SortKey, usize)> = diffs
            .iter()
            .enumerate()
            .map(|(i, d)| (d.sort_key(field), i))
            .collect();
        if desc {
            keyed.sort_by(|a, b| b.0.cmp(&a.0));
        } else {
            keyed.sort_by(|a, b| a.0.cmp(&b.0));
        }
        let order: Vec<usize> = keyed.into_iter().map(|(_, i)| i).collect();
        apply_order(diffs, &order);
    }
}

fn apply_order<T: Clone>(v: &mut [T], order: &[usize]) {
    let copy: Vec<T> = order.iter().map(|&i| v[i].clone()).collect();
    for (slot, x) in v.iter_mut().zip(copy) {
        *slot = x;
    }
}

/// Reads chunk plaintexts of one item in order.
struct ChunkData<'a> {
    key: &'a Key,
    ids: Vec<(ObjectId, u32)>,
    fetch: Box<dyn Iterator<Item = crate::repo::GetResult> + 'a>,
    pos: usize,
}

impl<'a> ChunkData<'a> {
    fn new(repo: &'a dyn Repository, key: &'a Key, item: &Item) -> ChunkData<'a> {
        let ids: Vec<(ObjectId, u32)> = item
            .chunks
            .as_ref()
            .map(|c| c.iter().map(|c| (c.id, c.size)).collect())
            .unwrap_or_default();
        let fetch = repo.get_many(ids.iter().map(|(id, _)| *id).collect());
        ChunkData {
            key,
            ids,
            fetch,
            pos: 0,
        }
    }

    fn next_chunk(&mut self) -> Result<Option<Vec<u8>>> {
        let Some(&(id, size)) = self.ids.get(self.pos) else {
            return Ok(None);
        };
        self.pos += 1;
        let env = match self.fetch.next() {
            Some(e) => e?,
            None => return Ok(None),
        };
        Ok(Some(open_object(self.key, &id, env, Some(size as usize))?))
    }
}

/// borg's `chunks_contents_equal`: the concatenated contents are equal.
fn contents_equal(mut a: ChunkData, mut b: ChunkData) -> Result<bool> {
    let (mut abuf, mut ai) = (Vec::new(), 0usize);
    let (mut bbuf, mut bi) = (Vec::new(), 0usize);
    loop {
        if ai == abuf.len() {
            match a.next_chunk()? {
                Some(d) => {
                    abuf = d;
                    ai = 0;
                    if abuf.is_empty() {
                        continue;
                    }
                }
                None => {
                    // a is exhausted: equal if b has nothing left either
                    if bi < bbuf.len() {
                        return Ok(false);
                    }
                    while let Some(d) = b.next_chunk()? {
                        if !d.is_empty() {
                            return Ok(false);
                        }
                    }
                    return Ok(true);
                }
            }
        }
        if bi == bbuf.len() {
            match b.next_chunk()? {
                Some(d) => {
                    bbuf = d;
                    bi = 0;
                    if bbuf.is_empty() {
                        continue;
                    }
                }
                None => return Ok(false),
            }
        }
        let n = (abuf.len() - ai).min(bbuf.len() - bi);
        if abuf[ai..ai + n] != bbuf[bi..bi + n] {
            return Ok(false);
        }
        ai += n;
        bi += n;
    }
}

/// Compares two items (borg's `ItemDiff.__init__`).
fn item_diff(
    repo: &dyn Repository,
    key: &Key,
    path: &[u8],
    i1: DiffItem,
    i2: DiffItem,
    opts: &DiffOptions,
) -> Result<ItemDiff> {
    let equal = items_equal(repo, key, &i1, &i2, opts)?;
    let mut changes = Vec::new();
    let (a, b) = (&i1, &i2);
    let presence = |t: &str| -> Option<Change> {
        match (a.deleted, b.deleted) {
            (false, true) => Some(Change::Presence(format!("removed {t}"))),
            (true, false) => Some(Change::Presence(format!("added {t}"))),
            _ => None,
        }
    };
    if a.item.is_link() || b.item.is_link() {
        if let Some(c) = presence("link") {
            changes.push(c);
        } else if let (Some(s1), Some(s2)) = (a.source(), b.source()) {
            if s1 != s2 {
                changes.push(Change::ChangedLink);
            }
        }
    }
    if let (Some(c1), Some(c2)) = (&a.item.chunks, &b.item.chunks) {
        changes.push(if a.deleted {
            Change::Added(b.get_size())
        } else if b.deleted {
            Change::Removed(a.get_size())
        } else if !opts.can_compare_chunk_ids {
            Change::Modified(None)
        } else {
            let ids1: HashSet<ObjectId> = c1.iter().map(|c| c.id).collect();
            let ids2: HashSet<ObjectId> = c2.iter().map(|c| c.id).collect();
            let added: u64 = c2
                .iter()
                .filter(|c| !ids1.contains(&c.id))
                .map(|c| c.size as u64)
                .sum();
            let removed: u64 = c1
                .iter()
                .filter(|c| !ids2.contains(&c.id))
                .map(|c| c.size as u64)
                .sum();
            Change::Modified(Some((added, removed)))
        });
    }
    for (test, name) in [
        (Item::is_dir as fn(&Item) -> bool, "directory"),
        (Item::is_blk, "blkdev"),
        (Item::is_chr, "chrdev"),
        (Item::is_fifo, "fifo"),
    ] {
        if test(&a.item) || test(&b.item) {
            if let Some(c) = presence(name) {
                changes.push(c);
            }
        }
    }
    if !(a.deleted || b.deleted || opts.content_only) {
        let name = |x: Option<&[u8]>| x.map(path_text);
        let (u1, g1, u2, g2) = (
            name(a.user()),
            name(a.group()),
            name(b.user()),
            name(b.group()),
        );
        if (&u1, &g1) != (&u2, &g2) {
            changes.push(Change::Owner {
                old_user: u1,
                old_group: g1,
                new_user: u2,
                new_group: g2,
            });
        }
        if a.item.mode != b.item.mode {
            changes.push(Change::Mode {
                old: crate::cli::commands::list::filemode(a.item.mode),
                new: crate::cli::commands::list::filemode(b.item.mode),
            });
        }
        for (attr, t1, t2) in [
            ("ctime", a.ctime(), b.ctime()),
            ("mtime", a.mtime(), b.mtime()),
        ] {
            if let (Some(t1), Some(t2)) = (t1, t2) {
                if t1 != t2 {
                    changes.push(Change::Time {
                        attr,
                        old: t1,
                        new: t2,
                    });
                }
            }
        }
    }
    Ok(ItemDiff {
        path: path.to_vec(),
        equal,
        changes,
        item1: i1,
        item2: i2,
    })
}

/// borg's `ItemDiff._equal`.
fn items_equal(
    repo: &dyn Repository,
    key: &Key,
    a: &DiffItem,
    b: &DiffItem,
    opts: &DiffOptions,
) -> Result<bool> {
    if a.deleted && b.deleted {
        return Ok(true);
    }
    if a.deleted != b.deleted || a.source() != b.source() {
        return Ok(false);
    }
    if !opts.content_only
        && (a.item.mode != b.item.mode
            || a.ctime() != b.ctime()
            || a.mtime() != b.mtime()
            || a.user() != b.user()
            || a.group() != b.group())
    {
        return Ok(false);
    }
    if let (Some(c1), Some(c2)) = (&a.item.chunks, &b.item.chunks) {
        if opts.can_compare_chunk_ids {
            return Ok(c1 == c2);
        }
        if a.get_size() != b.get_size() {
            return Ok(false);
        }
        return contents_equal(
            ChunkData::new(repo, key, &a.item),
            ChunkData::new(repo, key, &b.item),
        );
    }
    Ok(true)
}

/// Insertion-ordered map of path → item (Python's `OrderedDict`).
#[derive(Default)]
struct Orphans {
    map: HashMap<Vec<u8>, (u64, DiffItem)>,
    seq: u64,
}

impl Orphans {
    fn insert(&mut self, item: DiffItem) {
        let seq = self.seq;
        self.seq += 1;
        match self.map.get_mut(&item.item.path) {
            Some(e) => e.1 = item,
            None => {
                self.map.insert(item.item.path.clone(), (seq, item));
            }
        }
    }
    fn pop(&mut self, path: &[u8]) -> Option<DiffItem> {
        self.map.remove(path).map(|(_, i)| i)
    }
    fn into_ordered(self) -> Vec<DiffItem> {
        let mut v: Vec<(u64, DiffItem)> = self.map.into_values().collect();
        v.sort_by_key(|(s, _)| *s);
        v.into_iter().map(|(_, i)| i).collect()
    }
}

struct Comparer<'a> {
    repo: &'a dyn Repository,
    key: &'a Key,
    opts: DiffOptions,
    masters: HashMap<Vec<u8>, (DiffItem, DiffItem)>,
    deferred: Vec<(DiffItem, DiffItem)>,
}

impl Comparer<'_> {
    fn master_seen(&self, it: &DiffItem) -> bool {
        match it.source() {
            None => true,
            Some(_) if !hardlinkable(it.item.mode) => true,
            Some(s) => self.masters.contains_key(s),
        }
    }

    fn update_masters(&mut self, i1: &DiffItem, i2: &DiffItem) {
        if i1.is_hardlink_master() || i2.is_hardlink_master() {
            self.masters
                .insert(i1.item.path.clone(), (i1.clone(), i2.clone()));
        }
    }

    /// Records the pair as possible hardlink master; defers it when a master is still unseen.
    fn defer_if_necessary(&mut self, i1: &DiffItem, i2: &DiffItem) -> bool {
        self.update_masters(i1, i2);
        let defer = !self.master_seen(i1) || !self.master_seen(i2);
        if defer {
            self.deferred.push((i1.clone(), i2.clone()));
        }
        defer
    }

    fn compare(&self, path: &[u8], mut i1: DiffItem, mut i2: DiffItem) -> Result<ItemDiff> {
        if hardlinkable(i1.item.mode) {
            if let Some(m) = i1.source().and_then(|s| self.masters.get(s)) {
                i1 = m.0.clone();
            }
        }
        if hardlinkable(i2.item.mode) {
            if let Some(m) = i2.source().and_then(|s| self.masters.get(s)) {
                i2 = m.1.clone();
            }
        }
        item_diff(self.repo, self.key, path, i1, i2, &self.opts)
    }
}

/// Compares two archives; calls `emit` for every compared path in borg's order (equal items
/// too: check [`ItemDiff::equal`]) and `warn` for hardlinks whose source is missing.
#[allow(clippy::too_many_arguments)]
pub fn compare_archives(
    repo: &dyn Repository,
    key: &Key,
    archive1: &ArchiveMeta,
    archive2: &ArchiveMeta,
    matcher: &PatternMatcher,
    opts: DiffOptions,
    warn: &mut dyn FnMut(String),
    emit: &mut dyn FnMut(ItemDiff) -> Result<()>,
) -> Result<()> {
    let selected = |item: &Item| -> bool {
        (opts.consider_part_files || item.part.is_none()) && matcher.is_included(&item.path_str())
    };
    let mut r1 = ItemReader::new(repo, key, &archive1.items);
    let mut r2 = ItemReader::new(repo, key, &archive2.items);
    let next = |r: &mut ItemReader| -> Result<Option<Item>> {
        for it in r.by_ref() {
            let it = it?;
            if selected(&it) {
                return Ok(Some(it));
            }
        }
        Ok(None)
    };
    let mut c = Comparer {
        repo,
        key,
        opts,
        masters: HashMap::new(),
        deferred: Vec::new(),
    };
    let mut orphans1 = Orphans::default();
    let mut orphans2 = Orphans::default();
    loop {
        let a = next(&mut r1)?.map(DiffItem::present);
        let b = next(&mut r2)?.map(DiffItem::present);
        if a.is_none() && b.is_none() {
            break;
        }
        if let (Some(x), Some(y)) = (&a, &b) {
            if x.item.path == y.item.path {
                if !c.defer_if_necessary(x, y) {
                    let path = x.item.path.clone();
                    emit(c.compare(&path, x.clone(), y.clone())?)?;
                }
                continue;
            }
        }
        if let Some(x) = a {
            match orphans2.pop(&x.item.path) {
                Some(o) => {
                    if !c.defer_if_necessary(&x, &o) {
                        let path = x.item.path.clone();
                        emit(c.compare(&path, x, o)?)?;
                    }
                }
                None => orphans1.insert(x),
            }
        }
        if let Some(y) = b {
            match orphans1.pop(&y.item.path) {
                Some(o) => {
                    if !c.defer_if_necessary(&o, &y) {
                        let path = o.item.path.clone();
                        emit(c.compare(&path, o, y)?)?;
                    }
                }
                None => orphans2.insert(y),
            }
        }
    }
    for added in orphans2.into_ordered() {
        let path = added.item.path.clone();
        let del = DiffItem::deleted(&path);
        c.update_masters(&del, &added);
        emit(c.compare(&path, del, added)?)?;
    }
    for removed in orphans1.into_ordered() {
        let path = removed.item.path.clone();
        let del = DiffItem::deleted(&path);
        c.update_masters(&removed, &del);
        emit(c.compare(&path, removed, del)?)?;
    }
    let deferred = std::mem::take(&mut c.deferred);
    for (i1, i2) in deferred {
        let (s1, s2) = (c.master_seen(&i1), c.master_seen(&i2));
        if s1 && s2 {
            let path = i1.item.path.clone();
            emit(c.compare(&path, i1, i2)?)?;
        } else {
            for (seen, it) in [(s1, &i1), (s2, &i2)] {
                if !seen {
                    warn(format!(
                        "cannot find hardlink source for {} ({}), skipping compare.",
                        path_text(&it.item.path),
                        path_text(it.source().unwrap_or_default())
                    ));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_like_python() {
        // 1700000000.1234567 as a float rounds to .123457 (CPython rounds half to even)
        assert_eq!(
            py_fromtimestamp(1_700_000_000_123_456_789),
            (1_700_000_000, 123_457)
        );
        assert_eq!(
            py_fromtimestamp(1_700_000_000_999_999_900),
            (1_700_000_001, 0)
        );
        assert_eq!(py_fromtimestamp(0), (0, 0));
        assert_eq!(py_fromtimestamp(-1_500_000), (-1, 998_500));
    }

    #[test]
    fn change_strings() {
        assert_eq!(
            Change::Modified(Some((135, 252))).text(),
            "   +135 B    -252 B"
        );
        assert_eq!(Change::Modified(Some((0, 0))).text(), "      0 B       0 B");
        assert_eq!(Change::Added(0).text(), "added           0 B");
        assert_eq!(Change::Removed(1234).text(), "removed     1.23 kB");
        let o = Change::Owner {
            old_user: Some("root".into()),
            old_group: None,
            new_user: Some("u".into()),
            new_group: Some("g".into()),
        };
        assert_eq!(o.text(), "[root:None -> u:g]");
        assert_eq!(
            crate::cli::json::dumps_line(&o.json()),
            r#"{"new_group": "g", "new_user": "u", "old_group": null, "old_user": "root", "type": "owner"}"#
        );
        assert_eq!(path_text(b"a\xffb\xc3"), "a?b?");
        assert_eq!(
            parse_sort_spec(" >size_added , path").unwrap(),
            ">size_added,path"
        );
        assert!(parse_sort_spec("mode").is_err());
    }
}
