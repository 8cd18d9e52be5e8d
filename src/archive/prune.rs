//! `borg prune` decisions and the archive filters shared by list/info/delete/check.
//!
//! Everything here is pure: it works on a slice of [`ArchiveRef`]s in manifest order and an
//! explicit "now" and local zone, and returns what borg 1.4 would keep or prune, with the
//! `--list` and `--info` texts. Semantics (borg 1.4 `do_prune`, `prune_within`, `prune_split`):
//!
//! 1. Candidates are the archives matching the glob (plus their `.checkpoint[.N]` variants),
//!    newest first. Checkpoints (`\.checkpoint(\.\d+)?$`) are set aside; the newest candidate is
//!    kept if it is a checkpoint, every other checkpoint is pruned.
//! 2. `--keep-within`: keep every normal archive newer than `now - interval`.
//! 3. Rules secondly … yearly in that order: walking newest → oldest, the first archive of each
//!    new period (local time) is kept unless an earlier rule kept it already (it still uses up
//!    its period), until N archives were kept by this rule; negative N is unlimited.
//! 4. If a rule kept fewer than N, the oldest archive is kept as `<rule>[oldest]` (unless kept).

use std::cmp::Ordering;
use std::sync::OnceLock;

use chrono::{DateTime, Datelike, Duration, NaiveDateTime, Timelike, Utc};
use regex::Regex;

use crate::cli::placeholders::{ArchiveGlob, GlobError};
use crate::cli::timefmt::{self, LocalZone, SystemZone};

/// What prune/list need to know about an archive (a manifest entry).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ArchiveRef {
    /// Archive name.
    pub name: String,
    /// Archive id (object id of the archive metadata).
    pub id: [u8; 32],
    /// Start time (the manifest's `time`, UTC).
    pub ts: DateTime<Utc>,
}

impl ArchiveRef {
    /// Convenience constructor.
    pub fn new(name: impl Into<String>, id: [u8; 32], ts: DateTime<Utc>) -> Self {
        ArchiveRef {
            name: name.into(),
            id,
            ts,
        }
    }

    /// The id as 64 lower-case hex digits.
    pub fn id_hex(&self) -> String {
        hex::encode(self.id)
    }

    /// Whether the name is a checkpoint name (`…\.checkpoint` or `…\.checkpoint.N`).
    pub fn is_checkpoint(&self) -> bool {
        is_checkpoint(&self.name)
    }
}

/// borg's checkpoint test used by prune: the name ends in `.checkpoint` or `.checkpoint.<digits>`.
pub fn is_checkpoint(name: &str) -> bool {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"\.checkpoint(\.\d+)?\z").expect("checkpoint regex"))
        .is_match(name)
}

/// The looser test `list`/`info`/`mount` use to hide checkpoints unless
/// `--consider-checkpoints`: the name contains `.checkpoint` anywhere.
pub fn hidden_as_checkpoint(name: &str) -> bool {
    name.contains(".checkpoint")
}

/// The regex tail prune appends to its glob so that `-a foo` also selects `foo.checkpoint.3`.
pub const PRUNE_MATCH_END: &str = r"(\.checkpoint(\.\d+)?)?\z";

// ---------------------------------------------------------------------------------------------
// Rules
// ---------------------------------------------------------------------------------------------

/// The period rules, in the order borg applies them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    /// `--keep-secondly` / `--keep-last`.
    Secondly,
    /// `--keep-minutely`.
    Minutely,
    /// `-H/--keep-hourly`.
    Hourly,
    /// `-d/--keep-daily`.
    Daily,
    /// `-w/--keep-weekly` (ISO weeks, Monday first).
    Weekly,
    /// `-m/--keep-monthly`.
    Monthly,
    /// `--keep-13weekly`: ISO year and 13-week block of the ISO week.
    Quarterly13Weekly,
    /// `--keep-3monthly`: calendar quarter.
    Quarterly3Monthly,
    /// `-y/--keep-yearly`.
    Yearly,
}

impl Rule {
    /// All rules in application order.
    pub const ALL: [Rule; 9] = [
        Rule::Secondly,
        Rule::Minutely,
        Rule::Hourly,
        Rule::Daily,
        Rule::Weekly,
        Rule::Monthly,
        Rule::Quarterly13Weekly,
        Rule::Quarterly3Monthly,
        Rule::Yearly,
    ];

    /// borg's rule name as shown in `Keeping archive (rule: NAME #N)`.
    pub fn name(self) -> &'static str {
        match self {
            Rule::Secondly => "secondly",
            Rule::Minutely => "minutely",
            Rule::Hourly => "hourly",
            Rule::Daily => "daily",
            Rule::Weekly => "weekly",
            Rule::Monthly => "monthly",
            Rule::Quarterly13Weekly => "quarterly_13weekly",
            Rule::Quarterly3Monthly => "quarterly_3monthly",
            Rule::Yearly => "yearly",
        }
    }

    /// The period an archive falls into, from its local wall time. Equal keys = same period
    /// (secondly `%Y-%m-%d %H:%M:%S`, …, weekly `%G-%V`, 13weekly (ISO year, ⌈week/13⌉ capped
    /// at 4), 3monthly (year, quarter), yearly `%Y`).
    pub fn period_key(self, t: &NaiveDateTime) -> [i64; 6] {
        let (y, mo, d) = (t.year() as i64, t.month() as i64, t.day() as i64);
        let (h, mi, s) = (t.hour() as i64, t.minute() as i64, t.second() as i64);
        match self {
            Rule::Secondly => [y, mo, d, h, mi, s],
            Rule::Minutely => [y, mo, d, h, mi, 0],
            Rule::Hourly => [y, mo, d, h, 0, 0],
            Rule::Daily => [y, mo, d, 0, 0, 0],
            Rule::Weekly => {
                let w = t.date().iso_week();
                [w.year() as i64, w.week() as i64, 0, 0, 0, 0]
            }
            Rule::Monthly => [y, mo, 0, 0, 0, 0],
            Rule::Quarterly13Weekly => {
                let w = t.date().iso_week();
                let q = match w.week() {
                    0..=13 => 1,
                    14..=26 => 2,
                    27..=39 => 3,
                    _ => 4,
                };
                [w.year() as i64, q, 0, 0, 0, 0]
            }
            Rule::Quarterly3Monthly => [y, (mo - 1) / 3 + 1, 0, 0, 0, 0],
            Rule::Yearly => [y, 0, 0, 0, 0, 0],
        }
    }
}

/// The keep options of `borg prune` (0 = not given, negative = unlimited).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneRules {
    /// `--keep-within` in hours (see `timefmt::parse_interval`).
    pub within_hours: Option<u64>,
    /// `--keep-last` / `--keep-secondly`.
    pub secondly: i64,
    /// `--keep-minutely`.
    pub minutely: i64,
    /// `--keep-hourly`.
    pub hourly: i64,
    /// `--keep-daily`.
    pub daily: i64,
    /// `--keep-weekly`.
    pub weekly: i64,
    /// `--keep-monthly`.
    pub monthly: i64,
    /// `--keep-13weekly`.
    pub quarterly_13weekly: i64,
    /// `--keep-3monthly`.
    pub quarterly_3monthly: i64,
    /// `--keep-yearly`.
    pub yearly: i64,
}

impl PruneRules {
    /// The count for a rule.
    pub fn get(&self, rule: Rule) -> i64 {
        match rule {
            Rule::Secondly => self.secondly,
            Rule::Minutely => self.minutely,
            Rule::Hourly => self.hourly,
            Rule::Daily => self.daily,
            Rule::Weekly => self.weekly,
            Rule::Monthly => self.monthly,
            Rule::Quarterly13Weekly => self.quarterly_13weekly,
            Rule::Quarterly3Monthly => self.quarterly_3monthly,
            Rule::Yearly => self.yearly,
        }
    }

    /// Set the count for a rule.
    pub fn set(&mut self, rule: Rule, n: i64) -> &mut Self {
        *match rule {
            Rule::Secondly => &mut self.secondly,
            Rule::Minutely => &mut self.minutely,
            Rule::Hourly => &mut self.hourly,
            Rule::Daily => &mut self.daily,
            Rule::Weekly => &mut self.weekly,
            Rule::Monthly => &mut self.monthly,
            Rule::Quarterly13Weekly => &mut self.quarterly_13weekly,
            Rule::Quarterly3Monthly => &mut self.quarterly_3monthly,
            Rule::Yearly => &mut self.yearly,
        } = n;
        self
    }

    /// Builder-style [`PruneRules::set`].
    pub fn with(mut self, rule: Rule, n: i64) -> Self {
        self.set(rule, n);
        self
    }

    /// Whether any rule is given (a 0 counts as not given), as borg requires.
    pub fn any(&self) -> bool {
        self.within_hours.is_some_and(|h| h > 0) || Rule::ALL.iter().any(|r| self.get(*r) != 0)
    }

    /// borg's check: at least one rule, else [`PruneError::NoRules`].
    pub fn validate(&self) -> Result<(), PruneError> {
        if self.any() {
            Ok(())
        } else {
            Err(PruneError::NoRules)
        }
    }
}

/// Errors of [`plan_prune`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PruneError {
    /// borg `CommandError` (exit code 2, modern 4); printed as `Command Error: <this>`.
    #[error("At least one of the \"keep-within\", \"keep-last\", \"keep-secondly\", \"keep-minutely\", \"keep-hourly\", \"keep-daily\", \"keep-weekly\", \"keep-monthly\", \"keep-13weekly\", \"keep-3monthly\", or \"keep-yearly\" settings must be specified.")]
    NoRules,
    /// The glob does not compile.
    #[error(transparent)]
    Glob(#[from] GlobError),
}

/// Why an archive is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeepReason {
    /// `--keep-within`.
    Within,
    /// A period rule.
    Rule(Rule),
    /// A period rule's "keep the oldest" fallback.
    Oldest(Rule),
}

impl KeepReason {
    /// The label in `Keeping archive (rule: LABEL #N):` (`daily`, `within`, `monthly[oldest]`).
    pub fn label(self) -> String {
        match self {
            KeepReason::Within => "within".into(),
            KeepReason::Rule(r) => r.name().into(),
            KeepReason::Oldest(r) => format!("{}[oldest]", r.name()),
        }
    }
}

/// The decision for one candidate archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Kept by a rule; `counter` is how many that rule had kept at this point (`#N`).
    Keep {
        /// The rule.
        reason: KeepReason,
        /// 1-based count within that rule.
        counter: usize,
    },
    /// The newest candidate is a checkpoint newer than all normal archives: kept.
    KeepCheckpoint,
    /// To be deleted.
    Prune,
}

impl Decision {
    /// Whether the archive stays.
    pub fn is_kept(&self) -> bool {
        !matches!(self, Decision::Prune)
    }
}

/// One line of the plan: a candidate archive and its fate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PruneEntry {
    /// The archive.
    pub archive: ArchiveRef,
    /// Whether its name is a checkpoint name.
    pub checkpoint: bool,
    /// What happens to it.
    pub decision: Decision,
}

/// The result of [`plan_prune`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrunePlan {
    /// Candidates (glob matches), newest first — the order of borg's `--list` output and of
    /// deletion.
    pub entries: Vec<PruneEntry>,
    /// Normal archives in the whole repository.
    pub repo_archives: usize,
    /// Checkpoint archives in the whole repository.
    pub repo_checkpoints: usize,
}

impl PrunePlan {
    fn count(&self, checkpoint: bool, kept: Option<bool>) -> usize {
        self.entries
            .iter()
            .filter(|e| e.checkpoint == checkpoint)
            .filter(|e| kept.is_none_or(|k| e.decision.is_kept() == k))
            .count()
    }
    /// Matching normal archives.
    pub fn matching_archives(&self) -> usize {
        self.count(false, None)
    }
    /// Matching checkpoints.
    pub fn matching_checkpoints(&self) -> usize {
        self.count(true, None)
    }
    /// Normal archives kept.
    pub fn kept_archives(&self) -> usize {
        self.count(false, Some(true))
    }
    /// Checkpoints kept (0 or 1).
    pub fn kept_checkpoints(&self) -> usize {
        self.count(true, Some(true))
    }
    /// Normal archives to prune.
    pub fn pruned_archives(&self) -> usize {
        self.count(false, Some(false))
    }
    /// Checkpoints to prune.
    pub fn pruned_checkpoints(&self) -> usize {
        self.count(true, Some(false))
    }

    /// The archives to delete, in deletion (newest-first) order.
    pub fn to_delete(&self) -> impl Iterator<Item = &ArchiveRef> {
        self.entries
            .iter()
            .filter(|e| !e.decision.is_kept())
            .map(|e| &e.archive)
    }

    /// The three `--info` lines (logger `borg.archiver`, INFO).
    pub fn info_lines(&self) -> [String; 3] {
        [
            format!(
                "Repository contains {} normal archives and {} checkpoint archives.",
                self.repo_archives, self.repo_checkpoints
            ),
            format!(
                "Applying rules to the matching {} archives and {} checkpoints...",
                self.matching_archives(),
                self.matching_checkpoints()
            ),
            format!(
                "Keeping {} archives and {} checkpoints, pruning {} archives and {} checkpoints.",
                self.kept_archives(),
                self.kept_checkpoints(),
                self.pruned_archives(),
                self.pruned_checkpoints()
            ),
        ]
    }

    /// The `--list` lines (logger `borg.output.list`) in local time: one per candidate, newest
    /// first; deletions are `Would prune:` with `dry_run`, else `Pruning archive (k/total):`.
    pub fn list_lines(&self, dry_run: bool) -> Vec<String> {
        self.list_lines_in(dry_run, &SystemZone)
    }

    /// [`PrunePlan::list_lines`] in an explicit zone.
    pub fn list_lines_in(&self, dry_run: bool, zone: &dyn LocalZone) -> Vec<String> {
        let total = self.to_delete().count();
        let mut k = 0;
        self.entries
            .iter()
            .map(|e| {
                let message = match e.decision {
                    Decision::Prune if dry_run => "Would prune:".to_string(),
                    Decision::Prune => {
                        k += 1;
                        format!("Pruning archive ({k}/{total}):")
                    }
                    Decision::KeepCheckpoint => "Keeping checkpoint archive:".to_string(),
                    Decision::Keep { reason, counter } => {
                        format!("Keeping archive (rule: {} #{counter}):", reason.label())
                    }
                };
                list_line(&message, &e.archive, zone)
            })
            .collect()
    }
}

/// `"{message:<44} {archive:<36} {time} [{id}]"` (borg's prune `--list` line).
pub fn list_line(message: &str, archive: &ArchiveRef, zone: &dyn LocalZone) -> String {
    format!("{message:<44} {}", format_archive(archive, zone))
}

/// borg's `format_archive`: `"%-36s %s [%s]"` of name, local text time and hex id.
pub fn format_archive(archive: &ArchiveRef, zone: &dyn LocalZone) -> String {
    format!(
        "{:<36} {} [{}]",
        archive.name,
        timefmt::format_time_in(archive.ts, zone),
        archive.id_hex()
    )
}

/// Decide what `borg prune` does with `archives` (the whole manifest, in manifest order):
/// `glob` is the already placeholder-expanded `--glob-archives` (or `prefix_to_glob(prefix)`),
/// `now` the current time (for `--keep-within`). Local time from the system zone.
pub fn plan_prune(
    archives: &[ArchiveRef],
    glob: Option<&str>,
    rules: &PruneRules,
    now: DateTime<Utc>,
) -> Result<PrunePlan, PruneError> {
    plan_prune_in(archives, glob, rules, now, &SystemZone)
}

/// [`plan_prune`] in an explicit local zone.
pub fn plan_prune_in(
    archives: &[ArchiveRef],
    glob: Option<&str>,
    rules: &PruneRules,
    now: DateTime<Utc>,
    zone: &dyn LocalZone,
) -> Result<PrunePlan, PruneError> {
    rules.validate()?;
    let matcher = ArchiveGlob::with_match_end(glob.unwrap_or(""), PRUNE_MATCH_END)?;
    // manifest.archives.list(glob, sort_by=['ts'], reverse=True): filter, stable sort, reverse.
    let mut candidates: Vec<&ArchiveRef> = archives
        .iter()
        .filter(|a| matcher.is_match(&a.name))
        .collect();
    candidates.sort_by_key(|a| a.ts);
    candidates.reverse();

    let checkpoint_flags: Vec<bool> = candidates.iter().map(|a| a.is_checkpoint()).collect();
    let normal: Vec<&ArchiveRef> = candidates
        .iter()
        .zip(&checkpoint_flags)
        .filter(|(_, c)| !**c)
        .map(|(a, _)| *a)
        .collect();
    let reasons = keep_decisions_in(&normal, rules, now, zone);

    let mut normal_iter = reasons.into_iter();
    let entries = candidates
        .iter()
        .zip(&checkpoint_flags)
        .enumerate()
        .map(|(i, (a, &checkpoint))| {
            let decision = if checkpoint {
                if i == 0 {
                    Decision::KeepCheckpoint
                } else {
                    Decision::Prune
                }
            } else {
                match normal_iter.next().flatten() {
                    Some((reason, counter)) => Decision::Keep { reason, counter },
                    None => Decision::Prune,
                }
            };
            PruneEntry {
                archive: (*a).clone(),
                checkpoint,
                decision,
            }
        })
        .collect();
    let repo_checkpoints = archives.iter().filter(|a| a.is_checkpoint()).count();
    Ok(PrunePlan {
        entries,
        repo_archives: archives.len() - repo_checkpoints,
        repo_checkpoints,
    })
}

/// The rule engine on normal (non-checkpoint) archives given newest first (ties as borg orders
/// them): for each archive, why it is kept and the rule's counter, or `None` if it is pruned.
pub fn keep_decisions_in(
    normal_newest_first: &[&ArchiveRef],
    rules: &PruneRules,
    now: DateTime<Utc>,
    zone: &dyn LocalZone,
) -> Vec<Option<(KeepReason, usize)>> {
    let n = normal_newest_first.len();
    let mut kept: Vec<Option<(KeepReason, usize)>> = vec![None; n];

    if let Some(hours) = rules.within_hours.filter(|h| *h > 0) {
        let target = i64::try_from(hours)
            .ok()
            .and_then(|h| h.checked_mul(3600))
            .and_then(Duration::try_seconds)
            .and_then(|d| now.checked_sub_signed(d));
        let mut counter = 0;
        for (i, a) in normal_newest_first.iter().enumerate() {
            if target.is_none_or(|t| a.ts > t) {
                counter += 1;
                kept[i] = Some((KeepReason::Within, counter));
            }
        }
    }

    // Local wall times once (borg's to_localtime: whole seconds).
    let local: Vec<NaiveDateTime> = normal_newest_first
        .iter()
        .map(|a| timefmt::to_localtime_in(a.ts, zone))
        .collect();
    // prune_split sorts by ts descending (stable), which leaves our order unchanged.
    debug_assert!(normal_newest_first
        .windows(2)
        .all(|w| w[0].ts.cmp(&w[1].ts) != Ordering::Less));

    for rule in Rule::ALL {
        let want = rules.get(rule);
        if want == 0 {
            continue;
        }
        let mut last: Option<[i64; 6]> = None;
        let mut count: i64 = 0;
        for (i, t) in local.iter().enumerate() {
            let period = rule.period_key(t);
            if last != Some(period) {
                last = Some(period);
                if kept[i].is_none() {
                    count += 1;
                    kept[i] = Some((KeepReason::Rule(rule), count as usize));
                    if count == want {
                        break;
                    }
                }
            }
        }
        // Keep the oldest archive if the rule did not reach its target (never for negative N,
        // and not when the loop stopped early because it reached N).
        if n > 0 && count < want && kept[n - 1].is_none() {
            count += 1;
            kept[n - 1] = Some((KeepReason::Oldest(rule), count as usize));
        }
    }
    kept
}

// ---------------------------------------------------------------------------------------------
// Archive filters (list / info / delete / check / mount)
// ---------------------------------------------------------------------------------------------

/// A `--sort-by` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    /// `timestamp` (the start time).
    Timestamp,
    /// `archive` or `name`.
    Name,
    /// `id` (raw bytes).
    Id,
}

/// An invalid `--sort-by` key; argparse prints `argument --sort-by: Invalid sort key: X`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Invalid sort key: {0}")]
pub struct SortKeyError(pub String);

/// borg's `SortBySpec`: a comma-separated list of `timestamp`, `archive`, `name`, `id`.
pub fn parse_sort_by(text: &str) -> Result<Vec<SortKey>, SortKeyError> {
    text.split(',')
        .map(|t| match t {
            "timestamp" => Ok(SortKey::Timestamp),
            "archive" | "name" => Ok(SortKey::Name),
            "id" => Ok(SortKey::Id),
            other => Err(SortKeyError(other.to_string())),
        })
        .collect()
}

/// The "Archive filters" option group, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveFilter {
    /// `-a/--glob-archives` (placeholder-expanded) or `prefix_to_glob(-P)`; `None` = all.
    pub glob: Option<String>,
    /// `--sort-by` keys, most significant first (borg's default is `[Timestamp]`; an empty
    /// list keeps manifest order).
    pub sort_by: Vec<SortKey>,
    /// `--first N` (`None` or 0 = off).
    pub first: Option<usize>,
    /// `--last N` (`None` or 0 = off; ignored when `first` is set).
    pub last: Option<usize>,
    /// Include checkpoints (`--consider-checkpoints`; `info`/`delete`/`check` consider them).
    pub consider_checkpoints: bool,
    /// Reverse the final list.
    pub reverse: bool,
}

impl Default for ArchiveFilter {
    /// No filtering: every archive in manifest order (borg's `Archives.list()`).
    fn default() -> Self {
        ArchiveFilter {
            glob: None,
            sort_by: Vec::new(),
            first: None,
            last: None,
            consider_checkpoints: true,
            reverse: false,
        }
    }
}

/// borg's `Archives.list(...)`: glob filter (full match), optional checkpoint hiding
/// (`.checkpoint` anywhere in the name), stable sorts by the keys (least significant first),
/// `--first`/`--last` (the last N stay in ascending order), then optional reversal.
pub fn filter_archives(
    archives: &[ArchiveRef],
    filter: &ArchiveFilter,
) -> Result<Vec<ArchiveRef>, GlobError> {
    let glob = ArchiveGlob::new(filter.glob.as_deref().unwrap_or(""))?;
    let mut out: Vec<ArchiveRef> = archives
        .iter()
        .filter(|a| glob.is_match(&a.name))
        .filter(|a| filter.consider_checkpoints || !hidden_as_checkpoint(&a.name))
        .cloned()
        .collect();
    for key in filter.sort_by.iter().rev() {
        match key {
            SortKey::Timestamp => out.sort_by_key(|a| a.ts),
            SortKey::Name => out.sort_by(|a, b| a.name.cmp(&b.name)),
            SortKey::Id => out.sort_by_key(|a| a.id),
        }
    }
    match (filter.first.unwrap_or(0), filter.last.unwrap_or(0)) {
        (f, _) if f > 0 => out.truncate(f),
        (_, l) if l > 0 => {
            let skip = out.len().saturating_sub(l);
            out.drain(..skip);
        }
        _ => {}
    }
    if filter.reverse {
        out.reverse();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::timefmt::FixedZone;
    use chrono::{NaiveDate, TimeZone, Weekday};

    fn t(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    fn arch(name: &str, ts: DateTime<Utc>) -> ArchiveRef {
        let mut id = [0u8; 32];
        for (i, b) in name.bytes().enumerate().take(32) {
            id[i] = b;
        }
        ArchiveRef::new(name, id, ts)
    }

    fn utc() -> FixedZone {
        FixedZone::utc()
    }

    /// Central European time with EU DST rules (last Sunday of March/October, 01:00 UTC), for
    /// DST tests without touching the process' TZ.
    struct EuZone;
    impl EuZone {
        fn last_sunday(y: i32, m: u32) -> i64 {
            let mut d = NaiveDate::from_ymd_opt(y, m, 31).unwrap();
            while d.weekday() != Weekday::Sun {
                d = d.pred_opt().unwrap();
            }
            d.and_hms_opt(1, 0, 0).unwrap().and_utc().timestamp()
        }
    }
    impl LocalZone for EuZone {
        fn offset_at(&self, unix: i64) -> i32 {
            let y = DateTime::<Utc>::from_timestamp(unix, 0).unwrap().year();
            if unix >= Self::last_sunday(y, 3) && unix < Self::last_sunday(y, 10) {
                7200
            } else {
                3600
            }
        }
        fn abbreviation_at(&self, unix: i64) -> String {
            if self.offset_at(unix) == 7200 {
                "CEST"
            } else {
                "CET"
            }
            .into()
        }
    }

    /// (name, label) for kept archives, newest first; pruned ones as (name, "-").
    fn outcome(plan: &PrunePlan) -> Vec<(String, String)> {
        plan.entries
            .iter()
            .map(|e| {
                let label = match e.decision {
                    Decision::Keep { reason, counter } => format!("{} #{counter}", reason.label()),
                    Decision::KeepCheckpoint => "checkpoint".into(),
                    Decision::Prune => "-".into(),
                };
                (e.archive.name.clone(), label)
            })
            .collect()
    }

    fn kept(plan: &PrunePlan) -> Vec<(String, String)> {
        outcome(plan)
            .into_iter()
            .filter(|(_, l)| l != "-")
            .collect()
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    /// Two backups a day (03:00 and 15:00) for 10 days, 2024-01-01 … 2024-01-10.
    fn twice_daily() -> Vec<ArchiveRef> {
        let mut v = Vec::new();
        for d in 1..=10 {
            v.push(arch(&format!("a-{d:02}-03"), t(2024, 1, d, 3, 0, 0)));
            v.push(arch(&format!("a-{d:02}-15"), t(2024, 1, d, 15, 0, 0)));
        }
        v
    }

    #[test]
    fn daily_keeps_newest_per_day() {
        let plan = plan_prune_in(
            &twice_daily(),
            None,
            &PruneRules::default().with(Rule::Daily, 3),
            t(2024, 2, 1, 0, 0, 0),
            &utc(),
        )
        .unwrap();
        assert_eq!(
            kept(&plan),
            pairs(&[
                ("a-10-15", "daily #1"),
                ("a-09-15", "daily #2"),
                ("a-08-15", "daily #3")
            ])
        );
        assert_eq!((plan.kept_archives(), plan.pruned_archives()), (3, 17));
    }

    #[test]
    fn oldest_rule_when_target_not_reached() {
        let plan = plan_prune_in(
            &twice_daily(),
            None,
            &PruneRules::default().with(Rule::Daily, 20),
            t(2024, 2, 1, 0, 0, 0),
            &utc(),
        )
        .unwrap();
        let k = kept(&plan);
        assert_eq!(k.len(), 11);
        assert_eq!(k[9], ("a-01-15".to_string(), "daily #10".to_string()));
        assert_eq!(
            k[10],
            ("a-01-03".to_string(), "daily[oldest] #11".to_string())
        );
        // negative = unlimited, never [oldest]
        let plan = plan_prune_in(
            &twice_daily(),
            None,
            &PruneRules::default().with(Rule::Daily, -1),
            t(2024, 2, 1, 0, 0, 0),
            &utc(),
        )
        .unwrap();
        assert_eq!(plan.kept_archives(), 10);
        assert!(kept(&plan).iter().all(|(_, l)| !l.contains("oldest")));
    }

    #[test]
    fn earlier_rules_consume_periods_without_counting() {
        // weekly after daily: the daily-kept archive still "uses up" its week.
        // Mondays of ISO weeks 1-3 of 2024 plus the Sunday of week 3
        let v = vec![
            arch("w1", t(2024, 1, 1, 12, 0, 0)),
            arch("w2", t(2024, 1, 8, 12, 0, 0)),
            arch("w3-mon", t(2024, 1, 15, 12, 0, 0)),
            arch("w3-sun", t(2024, 1, 21, 12, 0, 0)),
        ];
        let plan = plan_prune_in(
            &v,
            None,
            &PruneRules::default()
                .with(Rule::Daily, 1)
                .with(Rule::Weekly, 2),
            t(2024, 2, 1, 0, 0, 0),
            &utc(),
        )
        .unwrap();
        assert_eq!(
            outcome(&plan),
            pairs(&[
                ("w3-sun", "daily #1"),
                ("w3-mon", "-"),
                ("w2", "weekly #1"),
                ("w1", "weekly #2"),
            ])
        );
    }

    #[test]
    fn within_then_rules() {
        let now = t(2024, 1, 10, 16, 0, 0);
        let rules = PruneRules {
            within_hours: Some(24),
            ..PruneRules::default().with(Rule::Daily, 2)
        };
        let plan = plan_prune_in(&twice_daily(), None, &rules, now, &utc()).unwrap();
        assert_eq!(
            kept(&plan),
            pairs(&[
                ("a-10-15", "within #1"),
                ("a-10-03", "within #2"),
                ("a-09-15", "daily #1"),
                ("a-08-15", "daily #2"),
            ])
        );
        // the boundary is exclusive: exactly `now - interval` is not within
        let rules = PruneRules {
            within_hours: Some(1),
            ..PruneRules::default()
        };
        let plan = plan_prune_in(
            &twice_daily(),
            None,
            &rules,
            t(2024, 1, 10, 16, 0, 0),
            &utc(),
        )
        .unwrap();
        assert_eq!(plan.kept_archives(), 0);
        // huge intervals keep everything
        let rules = PruneRules {
            within_hours: Some(u64::MAX),
            ..PruneRules::default()
        };
        let plan = plan_prune_in(&twice_daily(), None, &rules, now, &utc()).unwrap();
        assert_eq!(plan.kept_archives(), 20);
    }

    #[test]
    fn checkpoints() {
        let mut v = twice_daily();
        v.push(arch("a-old.checkpoint", t(2024, 1, 5, 4, 0, 0)));
        v.push(arch("a-older.checkpoint.3", t(2024, 1, 2, 4, 0, 0)));
        v.push(arch("a-11.checkpoint", t(2024, 1, 11, 1, 0, 0)));
        v.push(arch("x.checkpoint-ish", t(2023, 1, 1, 0, 0, 0)));
        let plan = plan_prune_in(
            &v,
            None,
            &PruneRules::default().with(Rule::Yearly, 5),
            t(2024, 2, 1, 0, 0, 0),
            &utc(),
        )
        .unwrap();
        // "x.checkpoint-ish" is a normal archive for prune (only `.checkpoint[.N]$` counts);
        // it is the oldest but already kept, so no [oldest] entry.
        assert_eq!(
            kept(&plan),
            pairs(&[
                ("a-11.checkpoint", "checkpoint"),
                ("a-10-15", "yearly #1"),
                ("x.checkpoint-ish", "yearly #2"),
            ])
        );
        assert_eq!(plan.matching_checkpoints(), 3);
        assert_eq!(plan.pruned_checkpoints(), 2);
        assert_eq!(
            plan.info_lines(),
            [
                "Repository contains 21 normal archives and 3 checkpoint archives.",
                "Applying rules to the matching 21 archives and 3 checkpoints...",
                "Keeping 2 archives and 1 checkpoints, pruning 19 archives and 2 checkpoints.",
            ]
        );
        // a newer normal archive makes the newest checkpoint prunable
        v.push(arch("a-12-01", t(2024, 1, 12, 1, 0, 0)));
        let plan = plan_prune_in(
            &v,
            None,
            &PruneRules::default().with(Rule::Daily, 1),
            t(2024, 2, 1, 0, 0, 0),
            &utc(),
        )
        .unwrap();
        assert_eq!(plan.kept_checkpoints(), 0);
    }

    #[test]
    fn glob_selects_archives_and_their_checkpoints() {
        let v = vec![
            arch("db-1", t(2024, 1, 1, 0, 0, 0)),
            arch("web-1", t(2024, 1, 2, 0, 0, 0)),
            arch("db-1.checkpoint.2", t(2024, 1, 3, 0, 0, 0)),
            arch("db-2", t(2024, 1, 4, 0, 0, 0)),
        ];
        let rules = PruneRules::default().with(Rule::Secondly, 1);
        let plan = plan_prune_in(&v, Some("db-1"), &rules, t(2024, 2, 1, 0, 0, 0), &utc()).unwrap();
        assert_eq!(
            outcome(&plan),
            pairs(&[("db-1.checkpoint.2", "checkpoint"), ("db-1", "secondly #1")])
        );
        assert_eq!(plan.repo_archives, 3);
        let plan = plan_prune_in(&v, Some("web*"), &rules, t(2024, 2, 1, 0, 0, 0), &utc()).unwrap();
        assert_eq!(outcome(&plan), pairs(&[("web-1", "secondly #1")]));
        assert!(matches!(
            plan_prune_in(&v, Some("[z-a]"), &rules, t(2024, 2, 1, 0, 0, 0), &utc()),
            Err(PruneError::Glob(_))
        ));
    }

    #[test]
    fn ties_follow_reverse_manifest_order() {
        let ts = t(2024, 1, 1, 0, 0, 0);
        let v = vec![arch("first", ts), arch("second", ts), arch("third", ts)];
        let plan = plan_prune_in(
            &v,
            None,
            &PruneRules::default().with(Rule::Secondly, 1),
            ts,
            &utc(),
        )
        .unwrap();
        assert_eq!(
            outcome(&plan),
            pairs(&[("third", "secondly #1"), ("second", "-"), ("first", "-")])
        );
    }

    #[test]
    fn rules_are_required() {
        let e = plan_prune_in(&[], None, &PruneRules::default(), Utc::now(), &utc()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "At least one of the \"keep-within\", \"keep-last\", \"keep-secondly\", \"keep-minutely\", \"keep-hourly\", \"keep-daily\", \"keep-weekly\", \"keep-monthly\", \"keep-13weekly\", \"keep-3monthly\", or \"keep-yearly\" settings must be specified."
        );
        // Vorta passes zeros for unused rules
        assert!(PruneRules::default()
            .with(Rule::Daily, 0)
            .validate()
            .is_err());
        assert!(PruneRules::default()
            .with(Rule::Yearly, -1)
            .validate()
            .is_ok());
        let empty = plan_prune_in(
            &[],
            None,
            &PruneRules::default().with(Rule::Daily, 3),
            Utc::now(),
            &utc(),
        )
        .unwrap();
        assert!(empty.entries.is_empty());
    }

    #[test]
    fn period_keys() {
        let n = |y, mo, d, h, mi, s| {
            NaiveDate::from_ymd_opt(y, mo, d)
                .unwrap()
                .and_hms_opt(h, mi, s)
                .unwrap()
        };
        // ISO weeks: 2021-01-01 is in 2020-W53, 2024-12-30 in 2025-W01
        assert_eq!(
            Rule::Weekly.period_key(&n(2021, 1, 1, 0, 0, 0))[..2],
            [2020, 53]
        );
        assert_eq!(
            Rule::Weekly.period_key(&n(2024, 12, 30, 0, 0, 0))[..2],
            [2025, 1]
        );
        // 13-week quarters follow ISO weeks
        assert_eq!(
            Rule::Quarterly13Weekly.period_key(&n(2021, 1, 1, 0, 0, 0))[..2],
            [2020, 4]
        );
        assert_eq!(
            Rule::Quarterly13Weekly.period_key(&n(2023, 4, 2, 0, 0, 0))[..2],
            [2023, 1]
        );
        assert_eq!(
            Rule::Quarterly13Weekly.period_key(&n(2023, 4, 3, 0, 0, 0))[..2],
            [2023, 2]
        );
        assert_eq!(
            Rule::Quarterly13Weekly.period_key(&n(2023, 12, 31, 0, 0, 0))[..2],
            [2023, 4]
        );
        // 3-month quarters follow the calendar
        assert_eq!(
            Rule::Quarterly3Monthly.period_key(&n(2023, 3, 31, 23, 0, 0))[..2],
            [2023, 1]
        );
        assert_eq!(
            Rule::Quarterly3Monthly.period_key(&n(2023, 4, 1, 0, 0, 0))[..2],
            [2023, 2]
        );
        assert_eq!(
            Rule::Quarterly3Monthly.period_key(&n(2023, 12, 1, 0, 0, 0))[..2],
            [2023, 4]
        );
        let a = n(2024, 5, 6, 7, 8, 9);
        assert_ne!(
            Rule::Secondly.period_key(&a),
            Rule::Secondly.period_key(&n(2024, 5, 6, 7, 8, 10))
        );
        assert_eq!(
            Rule::Minutely.period_key(&a),
            Rule::Minutely.period_key(&n(2024, 5, 6, 7, 8, 59))
        );
        assert_eq!(
            Rule::Hourly.period_key(&a),
            Rule::Hourly.period_key(&n(2024, 5, 6, 7, 59, 0))
        );
        assert_eq!(
            Rule::Yearly.period_key(&a),
            Rule::Yearly.period_key(&n(2024, 12, 31, 0, 0, 0))
        );
        let names: Vec<&str> = Rule::ALL.iter().map(|r| r.name()).collect();
        assert_eq!(
            names,
            [
                "secondly",
                "minutely",
                "hourly",
                "daily",
                "weekly",
                "monthly",
                "quarterly_13weekly",
                "quarterly_3monthly",
                "yearly"
            ]
        );
    }

    #[test]
    fn quarterly_rules() {
        // one archive on the 1st of every month of 2023
        let v: Vec<ArchiveRef> = (1..=12)
            .map(|m| arch(&format!("m{m:02}"), t(2023, m, 1, 12, 0, 0)))
            .collect();
        let now = t(2024, 1, 1, 0, 0, 0);
        let plan = plan_prune_in(
            &v,
            None,
            &PruneRules::default().with(Rule::Quarterly3Monthly, 2),
            now,
            &utc(),
        )
        .unwrap();
        assert_eq!(
            kept(&plan),
            pairs(&[
                ("m12", "quarterly_3monthly #1"),
                ("m09", "quarterly_3monthly #2")
            ])
        );
        let plan = plan_prune_in(
            &v,
            None,
            &PruneRules::default().with(Rule::Quarterly13Weekly, -1),
            now,
            &utc(),
        )
        .unwrap();
        // 13-week quarters are ISO-week based: 2023-10-01 (Sun) is in W39 = Q3, 2023-07-01
        // (Sat) in W26 = Q2, 2023-04-01 (Sat) in W13 = Q1, 2023-01-01 (Sun) in 2022-W52.
        assert_eq!(
            kept(&plan),
            pairs(&[
                ("m12", "quarterly_13weekly #1"),
                ("m10", "quarterly_13weekly #2"),
                ("m07", "quarterly_13weekly #3"),
                ("m04", "quarterly_13weekly #4"),
                ("m01", "quarterly_13weekly #5"),
            ])
        );
    }

    #[test]
    fn periods_use_local_time_across_dst() {
        // 2024-10-27 00:30Z and 01:30Z are both 02:30 local in Berlin (CEST, then CET).
        let v = vec![
            arch("before", t(2024, 10, 27, 0, 30, 0)),
            arch("after", t(2024, 10, 27, 1, 30, 0)),
        ];
        let rules = PruneRules::default().with(Rule::Hourly, -1);
        let now = t(2025, 1, 1, 0, 0, 0);
        let berlin = plan_prune_in(&v, None, &rules, now, &EuZone).unwrap();
        assert_eq!(
            outcome(&berlin),
            pairs(&[("after", "hourly #1"), ("before", "-")])
        );
        let utc_plan = plan_prune_in(&v, None, &rules, now, &utc()).unwrap();
        assert_eq!(utc_plan.kept_archives(), 2);
        // Days change at local midnight: 23:30Z is the next day at UTC+1.
        let v = vec![
            arch("late", t(2024, 1, 1, 23, 30, 0)),
            arch("early", t(2024, 1, 1, 22, 30, 0)),
        ];
        let rules = PruneRules::default().with(Rule::Daily, -1);
        assert_eq!(
            plan_prune_in(&v, None, &rules, now, &EuZone)
                .unwrap()
                .kept_archives(),
            2
        );
        assert_eq!(
            plan_prune_in(&v, None, &rules, now, &utc())
                .unwrap()
                .kept_archives(),
            1
        );
        assert_eq!(
            crate::cli::timefmt::format_time_in(t(2024, 10, 27, 0, 30, 0), &EuZone),
            "Sun, 2024-10-27 02:30:00"
        );
    }

    #[test]
    fn list_lines_format() {
        let v = vec![
            arch("db-1", t(2024, 1, 1, 10, 0, 0)),
            arch("db-0", t(2024, 1, 1, 11, 0, 0)),
            arch("db-2", t(2024, 1, 1, 12, 0, 0)),
            arch("db-3", t(2024, 1, 3, 10, 0, 0)),
            arch("db-4.checkpoint", t(2024, 1, 4, 10, 0, 0)),
        ];
        let plan = plan_prune_in(
            &v,
            None,
            &PruneRules::default().with(Rule::Daily, 3),
            t(2024, 2, 1, 0, 0, 0),
            &utc(),
        )
        .unwrap();
        let id = |n: &str| hex::encode(arch(n, t(2024, 1, 1, 0, 0, 0)).id);
        let dry = plan.list_lines_in(true, &utc());
        assert_eq!(
            dry,
            vec![
                format!("Keeping checkpoint archive:                  db-4.checkpoint                      Thu, 2024-01-04 10:00:00 [{}]", id("db-4.checkpoint")),
                format!("Keeping archive (rule: daily #1):            db-3                                 Wed, 2024-01-03 10:00:00 [{}]", id("db-3")),
                format!("Keeping archive (rule: daily #2):            db-2                                 Mon, 2024-01-01 12:00:00 [{}]", id("db-2")),
                format!("Would prune:                                 db-0                                 Mon, 2024-01-01 11:00:00 [{}]", id("db-0")),
                format!("Keeping archive (rule: daily[oldest] #3):    db-1                                 Mon, 2024-01-01 10:00:00 [{}]", id("db-1")),
            ]
        );
        let real = plan.list_lines_in(false, &FixedZone::hours(-11));
        assert!(real[3].starts_with("Pruning archive (1/1):                       db-0                                 Mon, 2024-01-01 00:00:00 ["), "{}", real[3]);
        assert_eq!(
            plan.to_delete()
                .map(|a| a.name.as_str())
                .collect::<Vec<_>>(),
            ["db-0"]
        );
    }

    #[test]
    fn checkpoint_names() {
        for (name, cp, hidden) in [
            ("a.checkpoint", true, true),
            ("a.checkpoint.1", true, true),
            ("a.checkpoint.123", true, true),
            ("a.checkpoint.", false, true),
            ("a.checkpoint.x", false, true),
            ("a.checkpointx", false, true),
            ("a.checkpoint-ish", false, true),
            ("a-checkpoint", false, false),
            ("a", false, false),
        ] {
            assert_eq!(is_checkpoint(name), cp, "{name}");
            assert_eq!(hidden_as_checkpoint(name), hidden, "{name}");
        }
    }

    #[test]
    fn sort_keys() {
        assert_eq!(
            parse_sort_by("timestamp,archive,name,id").unwrap(),
            [
                SortKey::Timestamp,
                SortKey::Name,
                SortKey::Name,
                SortKey::Id
            ]
        );
        for bad in ["ts", "foo", "timestamp,", "Timestamp"] {
            let tok = bad
                .split(',')
                .find(|t| !["timestamp", "archive", "name", "id"].contains(t));
            assert_eq!(
                parse_sort_by(bad).unwrap_err().to_string(),
                format!("Invalid sort key: {}", tok.unwrap())
            );
        }
    }

    #[test]
    fn filters() {
        let mut id_b = [0u8; 32];
        id_b[0] = 0xff;
        let v = vec![
            arch("c", t(2024, 1, 3, 0, 0, 0)),
            arch("a", t(2024, 1, 1, 0, 0, 0)),
            ArchiveRef::new("b", id_b, t(2024, 1, 2, 0, 0, 0)),
            arch("a.checkpoint", t(2024, 1, 4, 0, 0, 0)),
            arch("d", t(2024, 1, 2, 0, 0, 0)),
        ];
        let names = |f: &ArchiveFilter| -> Vec<String> {
            filter_archives(&v, f)
                .unwrap()
                .into_iter()
                .map(|a| a.name)
                .collect()
        };
        let base = ArchiveFilter {
            sort_by: vec![SortKey::Timestamp],
            ..ArchiveFilter::default()
        };
        assert_eq!(
            names(&ArchiveFilter::default()),
            ["c", "a", "b", "a.checkpoint", "d"]
        );
        assert_eq!(names(&base), ["a", "b", "d", "c", "a.checkpoint"]);
        let hide = ArchiveFilter {
            consider_checkpoints: false,
            ..base.clone()
        };
        assert_eq!(names(&hide), ["a", "b", "d", "c"]);
        assert_eq!(
            names(&ArchiveFilter {
                last: Some(2),
                ..hide.clone()
            }),
            ["d", "c"]
        );
        assert_eq!(
            names(&ArchiveFilter {
                first: Some(2),
                last: Some(1),
                ..hide.clone()
            }),
            ["a", "b"]
        );
        assert_eq!(
            names(&ArchiveFilter {
                last: Some(10),
                reverse: true,
                ..hide.clone()
            }),
            ["c", "d", "b", "a"]
        );
        assert_eq!(
            names(&ArchiveFilter {
                sort_by: vec![SortKey::Name],
                ..hide.clone()
            }),
            ["a", "b", "c", "d"]
        );
        assert_eq!(
            names(&ArchiveFilter {
                sort_by: vec![SortKey::Timestamp, SortKey::Name],
                glob: Some("[bcd]".into()),
                ..ArchiveFilter::default()
            }),
            ["b", "d", "c"]
        );
        assert_eq!(
            names(&ArchiveFilter {
                sort_by: vec![SortKey::Id],
                consider_checkpoints: false,
                ..ArchiveFilter::default()
            }),
            ["a", "c", "d", "b"]
        );
        assert!(filter_archives(
            &v,
            &ArchiveFilter {
                glob: Some("[z-a]".into()),
                ..ArchiveFilter::default()
            }
        )
        .is_err());
    }

    proptest::proptest! {
        #[test]
        fn plan_invariants(
            offsets in proptest::collection::vec(0i64..300_000_000, 0..60),
            cps in proptest::collection::vec(proptest::bool::ANY, 60),
            counts in proptest::collection::vec(-2i64..6, 9),
            within in proptest::option::of(1u64..5000),
        ) {
            let base = t(2015, 1, 1, 0, 0, 0);
            let v: Vec<ArchiveRef> = offsets
                .iter()
                .enumerate()
                .map(|(i, o)| {
                    let suffix = if cps[i] { ".checkpoint" } else { "" };
                    arch(&format!("x{i}{suffix}"), base + Duration::seconds(*o))
                })
                .collect();
            let mut rules = PruneRules { within_hours: within, ..PruneRules::default() };
            for (r, n) in Rule::ALL.iter().zip(&counts) {
                rules.set(*r, *n);
            }
            let now = t(2025, 1, 1, 0, 0, 0);
            match plan_prune_in(&v, None, &rules, now, &utc()) {
                Err(PruneError::NoRules) => proptest::prop_assert!(!rules.any()),
                Err(e) => proptest::prop_assert!(false, "{}", e),
                Ok(plan) => {
                    proptest::prop_assert_eq!(plan.entries.len(), v.len());
                    proptest::prop_assert!(plan.entries.windows(2).all(|w| w[0].archive.ts >= w[1].archive.ts));
                    proptest::prop_assert_eq!(plan.kept_archives() + plan.pruned_archives(), plan.matching_archives());
                    proptest::prop_assert!(plan.kept_checkpoints() <= 1);
                    for rule in Rule::ALL {
                        let n = rules.get(rule);
                        let by_rule = plan.entries.iter().filter(|e| matches!(e.decision, Decision::Keep { reason: KeepReason::Rule(r), .. } if r == rule)).count() as i64;
                        if n >= 0 {
                            proptest::prop_assert!(by_rule <= n);
                        }
                        // counters are 1..=k in newest-first order per rule
                        let counters: Vec<usize> = plan.entries.iter().filter_map(|e| match e.decision {
                            Decision::Keep { reason: KeepReason::Rule(r), counter } | Decision::Keep { reason: KeepReason::Oldest(r), counter } if r == rule => Some(counter),
                            _ => None,
                        }).collect();
                        proptest::prop_assert_eq!(counters, (1..=by_rule as usize + usize::from(plan.entries.iter().any(|e| matches!(e.decision, Decision::Keep { reason: KeepReason::Oldest(r), .. } if r == rule)))).collect::<Vec<_>>());
                    }
                }
            }
        }
    }
}
