//! Time formatting and parsing exactly as borg 1.x (CPython 3.11 on glibc) does it.
//!
//! * [`strftime`] is Python's `datetime.strftime`: CPython first substitutes `%f`, `%z` and `%Z`
//!   itself, then hands the rest to glibc `strftime` in the C locale, which also understands the
//!   GNU flags (`%-d`, `%_H`, `%^a`, `%#Z`, `%10Y`, `%Ey`, …) and copies unknown directives
//!   through verbatim. Both phases are reproduced here.
//! * [`PyDateTime`] is the value being formatted: a wall-clock time plus an optional tzinfo
//!   (offset and name), built the ways borg builds them ([`PyDateTime::utc`],
//!   [`PyDateTime::local`] = `astimezone(None)`, [`to_localtime`] = borg's naive local time).
//! * Parsers for borg's stored timestamps, `--timestamp`, `--keep-within` intervals and the
//!   `--first/--last` positive-int validator, with borg's error texts.
//!
//! Local time comes from chrono's `Local` (which reads `TZ` and `/etc/localtime`); only the zone
//! *abbreviation* (`%Z` of `{now}`), which chrono cannot provide, is asked from libc.

use std::path::Path;
use std::sync::OnceLock;

use chrono::{
    DateTime, Datelike, Duration, Local, LocalResult, NaiveDate, NaiveDateTime, Offset, TimeZone,
    Timelike, Utc,
};
use regex::Regex;

use crate::pyrepr::py_repr;

/// borg's text timestamp format (`format_time`).
pub const TEXT_FORMAT: &str = "%a, %Y-%m-%d %H:%M:%S";
/// borg's `ISO_FORMAT` (always 6 fractional digits, no zone).
pub const ISO_FORMAT: &str = "%Y-%m-%dT%H:%M:%S.%f";
/// borg's `ISO_FORMAT_NO_USECS` (also the default rendering of `{now}` / `{utcnow}`).
pub const ISO_FORMAT_NO_USECS: &str = "%Y-%m-%dT%H:%M:%S";

// ---------------------------------------------------------------------------------------------
// Time zones
// ---------------------------------------------------------------------------------------------

/// Where local time comes from. Prune period keys and text timestamps depend on it; tests use
/// [`FixedZone`] for determinism and child processes with `TZ=…` for DST behaviour.
pub trait LocalZone {
    /// UTC offset (seconds east of UTC) in effect at the instant `unix` (seconds since epoch).
    fn offset_at(&self, unix: i64) -> i32;
    /// The zone abbreviation in effect at `unix` (`CET`, `EDT`, …), as libc's `tm_zone`.
    fn abbreviation_at(&self, unix: i64) -> String;
}

/// The process' local time zone: chrono `Local` for offsets, libc `localtime_r` for names.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemZone;

impl LocalZone for SystemZone {
    fn offset_at(&self, unix: i64) -> i32 {
        match DateTime::<Utc>::from_timestamp(unix, 0) {
            Some(dt) => Local
                .offset_from_utc_datetime(&dt.naive_utc())
                .fix()
                .local_minus_utc(),
            None => 0,
        }
    }

    fn abbreviation_at(&self, unix: i64) -> String {
        libc_zone_name(unix).unwrap_or_else(|| {
            // No name from libc: Python would show the offset-ish name; keep something sane.
            let off = self.offset_at(unix);
            if off == 0 {
                "UTC".into()
            } else {
                format_utcoffset(off, 0)
            }
        })
    }
}

extern "C" {
    fn tzset();
}

#[allow(clippy::useless_conversion)] // time_t is not i64 everywhere
fn libc_zone_name(unix: i64) -> Option<String> {
    // (time_t is named through timespec: musl's libc crate deprecates the alias)
    // SAFETY: timespec is plain data, all-zero is valid.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    ts.tv_sec = unix.try_into().ok()?;
    // SAFETY: tzset has no preconditions; localtime_r writes only into `tm`, which is a valid
    // zero-initialised struct; tm_zone (if non-null) points to a NUL-terminated static string.
    unsafe {
        tzset();
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&ts.tv_sec, &mut tm).is_null() || tm.tm_zone.is_null() {
            return None;
        }
        let name = std::ffi::CStr::from_ptr(tm.tm_zone);
        Some(name.to_string_lossy().into_owned())
    }
}

/// A fixed-offset zone (no DST), e.g. for deterministic tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixedZone {
    /// Seconds east of UTC.
    pub offset_secs: i32,
    /// Abbreviation reported for `%Z`.
    pub name: String,
}

impl FixedZone {
    /// UTC (offset 0, name `UTC`).
    pub fn utc() -> Self {
        FixedZone {
            offset_secs: 0,
            name: "UTC".into(),
        }
    }
    /// A zone `hours` east of UTC, named like `+0200`.
    pub fn hours(hours: i32) -> Self {
        FixedZone {
            offset_secs: hours * 3600,
            name: format_utcoffset(hours * 3600, 0),
        }
    }
}

impl LocalZone for FixedZone {
    fn offset_at(&self, _unix: i64) -> i32 {
        self.offset_secs
    }
    fn abbreviation_at(&self, _unix: i64) -> String {
        self.name.clone()
    }
}

// ---------------------------------------------------------------------------------------------
// Python datetime values
// ---------------------------------------------------------------------------------------------

/// Python's `tzinfo` as borg uses it: a fixed offset with a name (`timezone(offset, name)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PyTzInfo {
    /// Seconds east of UTC.
    pub offset_secs: i32,
    /// What `%Z` prints.
    pub name: String,
}

/// A Python `datetime`: wall-clock fields (with microseconds) plus an optional tzinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PyDateTime {
    /// The wall-clock reading.
    pub wall: NaiveDateTime,
    /// `None` for naive datetimes (`%z`/`%Z` expand to nothing).
    pub tz: Option<PyTzInfo>,
}

impl PyDateTime {
    /// A naive datetime.
    pub fn naive(wall: NaiveDateTime) -> Self {
        PyDateTime { wall, tz: None }
    }

    /// An aware UTC datetime (`datetime.now(timezone.utc)`; `%Z` is `UTC`, `%z` `+0000`).
    pub fn utc(ts: DateTime<Utc>) -> Self {
        PyDateTime {
            wall: ts.naive_utc(),
            tz: Some(PyTzInfo {
                offset_secs: 0,
                name: "UTC".into(),
            }),
        }
    }

    /// `ts.astimezone(None)`: aware local time (microseconds kept) whose tzinfo carries the
    /// local offset and abbreviation in effect at `ts`.
    pub fn local(ts: DateTime<Utc>) -> Self {
        Self::local_in(ts, &SystemZone)
    }

    /// [`PyDateTime::local`] in an explicit zone.
    pub fn local_in(ts: DateTime<Utc>, zone: &dyn LocalZone) -> Self {
        let unix = ts.timestamp();
        let off = zone.offset_at(unix);
        PyDateTime {
            wall: ts.naive_utc() + Duration::seconds(off as i64),
            tz: Some(PyTzInfo {
                offset_secs: off,
                name: zone.abbreviation_at(unix),
            }),
        }
    }

    /// Python `strftime` of this value.
    pub fn strftime(&self, fmt: &str) -> String {
        strftime(self, fmt)
    }
}

/// borg's `to_localtime`: the naive local wall time of `ts`, truncated to whole seconds
/// (borg goes through `time.localtime`, so microseconds are dropped; that is why borg's text and
/// ISO outputs of archive times always end in `.000000`).
pub fn to_localtime(ts: DateTime<Utc>) -> NaiveDateTime {
    to_localtime_in(ts, &SystemZone)
}

/// [`to_localtime`] in an explicit zone.
pub fn to_localtime_in(ts: DateTime<Utc>, zone: &dyn LocalZone) -> NaiveDateTime {
    let unix = ts.timestamp(); // floor, like Python's ROUND_FLOOR in time.localtime
    let off = zone.offset_at(unix) as i64;
    DateTime::<Utc>::from_timestamp(unix + off, 0)
        .map(|d| d.naive_utc())
        .unwrap_or_else(|| ts.naive_utc())
}

/// borg's text timestamp of an archive/file time: `%a, %Y-%m-%d %H:%M:%S` in local time.
pub fn format_time(ts: DateTime<Utc>) -> String {
    format_time_in(ts, &SystemZone)
}

/// [`format_time`] in an explicit zone.
pub fn format_time_in(ts: DateTime<Utc>, zone: &dyn LocalZone) -> String {
    strftime(&PyDateTime::naive(to_localtime_in(ts, zone)), TEXT_FORMAT)
}

/// borg's ISO timestamp for JSON / `iso*` keys: local, naive, `%Y-%m-%dT%H:%M:%S.%f` (the
/// fraction is always `000000` because borg converts through whole-second local time).
pub fn isoformat_time(ts: DateTime<Utc>) -> String {
    isoformat_time_in(ts, &SystemZone)
}

/// [`isoformat_time`] in an explicit zone.
pub fn isoformat_time_in(ts: DateTime<Utc>, zone: &dyn LocalZone) -> String {
    strftime(&PyDateTime::naive(to_localtime_in(ts, zone)), ISO_FORMAT)
}

/// `+HHMM[SS[.ffffff]]` like Python's `%z` (`format_utcoffset` with an empty separator).
pub fn format_utcoffset(offset_secs: i32, micros: u32) -> String {
    let sign = if offset_secs < 0 { '-' } else { '+' };
    let a = offset_secs.unsigned_abs();
    let (h, m, s) = (a / 3600, (a / 60) % 60, a % 60);
    let mut out = format!("{sign}{h:02}{m:02}");
    if s != 0 || micros != 0 {
        out.push_str(&format!("{s:02}"));
        if micros != 0 {
            out.push_str(&format!(".{micros:06}"));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// strftime
// ---------------------------------------------------------------------------------------------

/// Python's `datetime.strftime(fmt)` on Linux (CPython 3.11, glibc, C locale).
///
/// Every glibc directive and flag works (`%a %A %b %B %c %C %d %D %e %F %g %G %h %H %I %j %k %l
/// %m %M %n %p %P %r %R %s %S %t %T %u %U %V %w %W %x %X %y %Y %z %Z %%`, flags `_ - 0 ^ #`,
/// widths, `E`/`O` modifiers), plus Python's own `%f` (6-digit microseconds), `%z`
/// (`+HHMM`, empty when naive) and `%Z` (tz name, empty when naive). Unknown directives are
/// copied verbatim (`%Q` → `%Q`); a NUL ends the format, as in CPython.
pub fn strftime(dt: &PyDateTime, fmt: &str) -> String {
    // CPython stops at an embedded NUL (it scans the UTF-8 buffer as a C string).
    let fmt = fmt.split('\0').next().unwrap_or("");
    let expanded = python_phase(dt, fmt);
    let tm = Tm::from_naive(&dt.wall);
    // time.strftime retries with buffers of 1024, 2048, … bytes while the result is empty and the
    // buffer is smaller than 256 × the format length; an output that never fits yields ''.
    let fmtlen = expanded.len().max(1);
    let mut cap = 1024usize;
    while cap < 256 * fmtlen {
        cap *= 2;
    }
    let chars: Vec<char> = expanded.chars().collect();
    let mut out = String::new();
    match glibc_format(&tm, &chars, &mut out, cap) {
        Ok(()) if out.len() < cap => out,
        _ => String::new(),
    }
}

/// CPython's `wrap_strftime`: replace `%z`, `%Z` and `%f` (only when directly after `%`).
fn python_phase(dt: &PyDateTime, fmt: &str) -> String {
    let mut out = String::with_capacity(fmt.len() + 8);
    let mut it = fmt.chars();
    while let Some(c) = it.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match it.next() {
            None => out.push('%'),
            Some('z') => {
                if let Some(tz) = &dt.tz {
                    out.push_str(&format_utcoffset(tz.offset_secs, 0));
                }
            }
            Some('Z') => {
                if let Some(tz) = &dt.tz {
                    out.push_str(&tz.name.replace('%', "%%"));
                }
            }
            Some('f') => out.push_str(&format!("{:06}", dt.wall.nanosecond() / 1000 % 1_000_000)),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
        }
    }
    out
}

/// The `struct tm` CPython passes to glibc (`isdst = -1`, no zone, no gmtoff).
struct Tm {
    year: i64,
    mon: i64,
    mday: i64,
    hour: i64,
    min: i64,
    sec: i64,
    wday: i64,
    yday: i64,
    naive: NaiveDateTime,
}

impl Tm {
    fn from_naive(n: &NaiveDateTime) -> Self {
        Tm {
            year: n.year() as i64,
            mon: n.month0() as i64,
            mday: n.day() as i64,
            hour: n.hour() as i64,
            min: n.minute() as i64,
            sec: n.second() as i64,
            wday: n.weekday().num_days_from_sunday() as i64,
            yday: n.ordinal0() as i64,
            naive: *n,
        }
    }

    /// glibc `mktime` with `tm_isdst = -1`: the fields read as local time.
    fn mktime(&self) -> i64 {
        let n = self.naive.with_nanosecond(0).unwrap_or(self.naive);
        match Local.from_local_datetime(&n) {
            LocalResult::Single(t) => t.timestamp(),
            LocalResult::Ambiguous(a, _) => a.timestamp(),
            LocalResult::None => {
                let off = Local.offset_from_utc_datetime(&n).fix().local_minus_utc() as i64;
                n.and_utc().timestamp() - off
            }
        }
    }
}

const ABDAY: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const DAY: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
const ABMON: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const MON: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

struct TooLong;

/// Output sink with glibc's width/pad/case rules.
struct Sink<'a> {
    out: &'a mut String,
    cap: usize,
}

impl Sink<'_> {
    fn check(&self) -> Result<(), TooLong> {
        if self.out.len() >= self.cap {
            Err(TooLong)
        } else {
            Ok(())
        }
    }

    /// glibc `add`/`cpy`: pad to `width` (zeros if `pad == '0'`, else spaces), then the text.
    fn add(&mut self, s: &str, width: i64, pad: Option<char>, case: Case) -> Result<(), TooLong> {
        let n = s.chars().count() as i64;
        if width > n {
            let delta = (width - n) as usize;
            if delta >= self.cap {
                return Err(TooLong);
            }
            let ch = if pad == Some('0') { '0' } else { ' ' };
            self.out.extend(std::iter::repeat_n(ch, delta));
        }
        match case {
            Case::Keep => self.out.push_str(s),
            Case::Lower => self.out.push_str(&s.to_ascii_lowercase()),
            Case::Upper => self.out.push_str(&s.to_ascii_uppercase()),
        }
        self.check()
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Case {
    Keep,
    Lower,
    Upper,
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

/// Days from the first day of ISO week 1 to `yday` (glibc `iso_week_days`).
fn iso_week_days(yday: i64, wday: i64) -> i64 {
    let big_enough_multiple_of_7 = (366 / 7 + 2) * 7;
    yday - (yday - wday + 4 + big_enough_multiple_of_7) % 7 + 4 - 1
}

fn glibc_format(tm: &Tm, f: &[char], out: &mut String, cap: usize) -> Result<(), TooLong> {
    let mut sink = Sink { out, cap };
    let hour12 = match tm.hour {
        h if h > 12 => h - 12,
        0 => 12,
        h => h,
    };
    let mut i = 0usize;
    while i < f.len() {
        if f[i] != '%' {
            sink.out.push(f[i]);
            sink.check()?;
            i += 1;
            continue;
        }
        let mut pad: Option<char> = None;
        let mut upcase = false;
        let mut lowcase = false;
        let mut change_case = false;
        i += 1;
        while i < f.len() {
            match f[i] {
                c @ ('_' | '-' | '0') => pad = Some(c),
                '^' => upcase = true,
                '#' => change_case = true,
                _ => break,
            }
            i += 1;
        }
        let mut width: i64 = -1;
        if i < f.len() && f[i].is_ascii_digit() {
            width = 0;
            while i < f.len() && f[i].is_ascii_digit() {
                let d = f[i] as i64 - '0' as i64;
                width = if width > (i32::MAX as i64 - d) / 10 {
                    i32::MAX as i64
                } else {
                    width * 10 + d
                };
                i += 1;
            }
        }
        let mut modifier: Option<char> = None;
        if i < f.len() && (f[i] == 'E' || f[i] == 'O') {
            modifier = Some(f[i]);
            i += 1;
        }
        // `i` now indexes the conversion character (or the end of the format).
        let case = |up: bool, low: bool| {
            if low {
                Case::Lower
            } else if up {
                Case::Upper
            } else {
                Case::Keep
            }
        };
        enum Act {
            Text(String),
            Num {
                digits: i64,
                value: i64,
                spacepad: bool,
            },
            Sub(&'static str),
            Bad,
            Nothing,
        }
        let conv = f.get(i).copied();
        let num = |d: i64, v: i64| Act::Num {
            digits: d.max(width),
            value: v,
            spacepad: false,
        };
        let act = match conv {
            None => {
                i -= 1; // GNU extension: `%` at the end of the format
                Act::Bad
            }
            Some('%') => {
                if modifier.is_some() {
                    Act::Bad
                } else {
                    Act::Text("%".into())
                }
            }
            Some(c @ ('a' | 'A')) => {
                if modifier.is_some() {
                    Act::Bad
                } else {
                    if change_case {
                        upcase = true;
                        lowcase = false;
                    }
                    let w = tm.wday as usize;
                    Act::Text(if c == 'a' { ABDAY[w] } else { DAY[w] }.into())
                }
            }
            Some(c @ ('b' | 'h' | 'B')) => {
                if change_case {
                    upcase = true;
                    lowcase = false;
                }
                if modifier == Some('E') {
                    Act::Bad
                } else {
                    let m = tm.mon as usize;
                    Act::Text(if c == 'B' { MON[m] } else { ABMON[m] }.into())
                }
            }
            Some('c') => {
                if modifier == Some('O') {
                    Act::Bad
                } else {
                    Act::Sub("%a %b %e %H:%M:%S %Y")
                }
            }
            Some('C') => {
                let y = tm.year;
                num(1, y / 100 - i64::from(y % 100 < 0))
            }
            Some('x') => {
                if modifier == Some('O') {
                    Act::Bad
                } else {
                    Act::Sub("%m/%d/%y")
                }
            }
            Some('D') => {
                if modifier.is_some() {
                    Act::Bad
                } else {
                    Act::Sub("%m/%d/%y")
                }
            }
            Some('d') if modifier != Some('E') => num(2, tm.mday),
            Some('e') if modifier != Some('E') => Act::Num {
                digits: 2i64.max(width),
                value: tm.mday,
                spacepad: true,
            },
            Some('F') => {
                if modifier.is_some() {
                    Act::Bad
                } else {
                    Act::Sub("%Y-%m-%d")
                }
            }
            Some('H') if modifier != Some('E') => num(2, tm.hour),
            Some('I') if modifier != Some('E') => num(2, hour12),
            Some('k') if modifier != Some('E') => Act::Num {
                digits: 2i64.max(width),
                value: tm.hour,
                spacepad: true,
            },
            Some('l') if modifier != Some('E') => Act::Num {
                digits: 2i64.max(width),
                value: hour12,
                spacepad: true,
            },
            Some('j') if modifier != Some('E') => num(3, 1 + tm.yday),
            Some('M') if modifier != Some('E') => num(2, tm.min),
            Some('m') if modifier != Some('E') => num(2, tm.mon + 1),
            Some('n') => Act::Text("\n".into()),
            Some(c @ ('p' | 'P')) => {
                if c == 'P' {
                    lowcase = true;
                }
                if change_case {
                    upcase = false;
                    lowcase = true;
                }
                Act::Text(if tm.hour > 11 { "PM" } else { "AM" }.into())
            }
            Some('R') => Act::Sub("%H:%M"),
            Some('r') => Act::Sub("%I:%M:%S %p"),
            Some('S') if modifier != Some('E') => num(2, tm.sec),
            Some('s') => Act::Num {
                digits: 1,
                value: tm.mktime(),
                spacepad: false,
            },
            Some('X') => {
                if modifier == Some('O') {
                    Act::Bad
                } else {
                    Act::Sub("%H:%M:%S")
                }
            }
            Some('T') => Act::Sub("%H:%M:%S"),
            Some('t') => Act::Text("\t".into()),
            Some('u') => num(1, (tm.wday - 1 + 7) % 7 + 1),
            Some('U') if modifier != Some('E') => num(2, (tm.yday - tm.wday + 7) / 7),
            Some(c @ ('V' | 'g' | 'G')) if modifier != Some('E') => {
                let mut year = tm.year;
                let mut days = iso_week_days(tm.yday, tm.wday);
                if days < 0 {
                    year -= 1;
                    days = iso_week_days(tm.yday + 365 + i64::from(is_leap(year)), tm.wday);
                } else {
                    let d = iso_week_days(tm.yday - (365 + i64::from(is_leap(year))), tm.wday);
                    if d >= 0 {
                        year += 1;
                        days = d;
                    }
                }
                match c {
                    'g' => num(2, (year % 100 + 100) % 100),
                    'G' => num(1, year),
                    _ => num(2, days / 7 + 1),
                }
            }
            Some('W') if modifier != Some('E') => num(2, (tm.yday - (tm.wday - 1 + 7) % 7 + 7) / 7),
            Some('w') if modifier != Some('E') => num(1, tm.wday),
            Some('Y') => {
                if modifier == Some('O') {
                    Act::Bad
                } else {
                    num(1, tm.year)
                }
            }
            Some('y') => num(2, (tm.year % 100 + 100) % 100),
            Some('Z') => {
                if change_case {
                    upcase = false;
                    lowcase = true;
                }
                // CPython's struct tm has no zone and tm_isdst = -1: glibc prints nothing.
                Act::Text(String::new())
            }
            Some('z') => Act::Nothing, // tm_isdst < 0: glibc prints nothing at all
            Some(_) => Act::Bad,
        };
        match act {
            Act::Nothing => {}
            Act::Text(s) => sink.add(&s, width, pad, case(upcase, lowcase))?,
            Act::Sub(sub) => {
                let chars: Vec<char> = sub.chars().collect();
                let mut tmp = String::new();
                glibc_format(tm, &chars, &mut tmp, cap)?;
                let c = if upcase { Case::Upper } else { Case::Keep };
                sink.add(&tmp, width, pad, c)?;
            }
            Act::Bad => {
                // Copy the directive back from the nearest '%' up to and including f[i].
                let mut start = i;
                while f[start] != '%' {
                    start -= 1;
                }
                let s: String = f[start..=i].iter().collect();
                sink.add(&s, width, pad, case(upcase, lowcase))?;
            }
            Act::Num {
                digits,
                value,
                spacepad,
            } => {
                let mut pad = pad;
                let mut width = width;
                if spacepad && pad != Some('0') && pad != Some('-') {
                    pad = Some('_');
                }
                let neg = value < 0;
                let mut body = value.unsigned_abs().to_string();
                if neg {
                    body.insert(0, '-');
                }
                if pad != Some('-') {
                    let padding = digits - body.len() as i64;
                    if padding > 0 {
                        if padding as usize >= sink.cap {
                            return Err(TooLong);
                        }
                        if pad == Some('_') {
                            sink.out.extend(std::iter::repeat_n(' ', padding as usize));
                            width = if width > padding { width - padding } else { 0 };
                        } else {
                            if neg {
                                body.remove(0);
                                sink.out.push('-');
                            }
                            sink.out.extend(std::iter::repeat_n('0', padding as usize));
                            width = 0;
                        }
                    }
                }
                sink.add(&body, width, pad, Case::Keep)?;
            }
        }
        i += 1;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

/// A tiny Python `datetime.strptime` for the directives borg's formats use
/// (`%Y %m %d %H %M %S %f %j`), with Python's regexes: case-insensitive, whitespace in the
/// format matches any run of whitespace, leftmost-first match that must consume everything.
fn py_strptime(s: &str, fmt: &'static str) -> Option<NaiveDateTime> {
    static CACHE: OnceLock<std::sync::Mutex<Vec<(&'static str, Regex)>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let re = {
        let mut guard = cache.lock().unwrap_or_else(|e| e.into_inner());
        match guard.iter().find(|(f, _)| *f == fmt) {
            Some((_, r)) => r.clone(),
            None => {
                let r = Regex::new(&strptime_regex(fmt)).expect("strptime regex");
                guard.push((fmt, r.clone()));
                r
            }
        }
    };
    let caps = re.captures(s)?;
    if caps.get(0)?.end() != s.len() {
        return None; // "unconverted data remains"
    }
    let get = |n: &str| caps.name(n).map(|m| m.as_str().trim_start());
    // Python's `\d` and int() accept decimal digits of every script.
    let to_int = |v: &str| -> Option<i64> {
        v.chars()
            .try_fold(0i64, |acc, c| Some(acc * 10 + py_decimal(c)? as i64))
    };
    let num = |n: &str, default: i64| -> Option<i64> {
        match get(n) {
            Some(v) => to_int(v),
            None => Some(default),
        }
    };
    let year = num("Y", 1900)?;
    let month = num("m", 1)?;
    let day = num("d", 1)?;
    let hour = num("H", 0)?;
    let minute = num("M", 0)?;
    let second = num("S", 0)?;
    let micros = match get("f") {
        Some(f) => format!("{f:0<6}").parse::<u32>().ok()?,
        None => 0,
    };
    if !(1..=9999).contains(&year) {
        return None;
    }
    let date = if let Some(j) = get("j") {
        let j = to_int(j)?;
        let jan1 = NaiveDate::from_ymd_opt(year as i32, 1, 1)?;
        jan1.checked_add_signed(Duration::days(j - 1))?
    } else {
        NaiveDate::from_ymd_opt(year as i32, month as u32, day as u32)?
    };
    if second > 59 {
        return None; // datetime(): "second must be in 0..59"
    }
    date.and_hms_micro_opt(hour as u32, minute as u32, second as u32, micros)
}

fn strptime_regex(fmt: &str) -> String {
    let mut out = String::from("(?i)^");
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '%' {
            let d = chars.next().expect("directive");
            out.push_str(match d {
                'd' => r"(?P<d>3[0-1]|[1-2]\d|0[1-9]|[1-9]| [1-9])",
                'f' => r"(?P<f>[0-9]{1,6})",
                'H' => r"(?P<H>2[0-3]|[0-1]\d|\d)",
                'j' => r"(?P<j>36[0-6]|3[0-5]\d|[1-2]\d\d|0[1-9]\d|00[1-9]|[1-9]\d|0[1-9]|[1-9])",
                'm' => r"(?P<m>1[0-2]|0[1-9]|[1-9])",
                'M' => r"(?P<M>[0-5]\d|\d)",
                'S' => r"(?P<S>6[0-1]|[0-5]\d|\d)",
                'Y' => r"(?P<Y>\d\d\d\d)",
                other => panic!("unsupported strptime directive %{other}"),
            });
        } else if c.is_whitespace() {
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
            out.push_str(r"\s+");
        } else {
            out.push_str(&regex::escape(&c.to_string()));
        }
    }
    out
}

/// Errors of the timestamp parsers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeParseError {
    /// A stored timestamp that is not `%Y-%m-%dT%H:%M:%S[.%f]`.
    #[error("time data {} does not match format {}", py_repr(.0), py_repr(.1))]
    BadStoredTimestamp(String, &'static str),
    /// argparse's text for a rejected `--timestamp` (prefix it with `argument --timestamp: `).
    #[error("invalid timestamp value: {}", py_repr(.0))]
    InvalidTimestampArg(String),
}

/// Parse a timestamp as borg stores it (manifest, archive metadata: naive UTC,
/// `2024-01-03T00:00:00.000000` or without fraction) into a UTC instant.
pub fn parse_timestamp(s: &str) -> Result<DateTime<Utc>, TimeParseError> {
    let fmt = if s.contains('.') {
        ISO_FORMAT
    } else {
        ISO_FORMAT_NO_USECS
    };
    if let Some(n) = parse_iso_fast(s) {
        return Ok(n.and_utc());
    }
    py_strptime(s, fmt)
        .map(|n| n.and_utc())
        .ok_or(TimeParseError::BadStoredTimestamp(s.to_string(), fmt))
}

/// Fast path for the canonical `YYYY-MM-DDTHH:MM:SS[.ffffff]` shape.
fn parse_iso_fast(s: &str) -> Option<NaiveDateTime> {
    let b = s.as_bytes();
    if b.len() != 19 && b.len() != 26 {
        return None;
    }
    let shape = b"0000-00-00T00:00:00.000000";
    for (i, &c) in b.iter().enumerate() {
        if shape[i] == b'0' {
            if !c.is_ascii_digit() {
                return None;
            }
        } else if c != shape[i] {
            return None;
        }
    }
    let n = |a: usize, z: usize| s[a..z].parse::<u32>().ok();
    let year = n(0, 4)? as i32;
    if year < 1 {
        return None;
    }
    let micros = if b.len() == 26 { n(20, 26)? } else { 0 };
    let sec = n(17, 19)?;
    if sec > 59 {
        return None;
    }
    NaiveDate::from_ymd_opt(year, n(5, 7)?, n(8, 10)?)?.and_hms_micro_opt(
        n(11, 13)?,
        n(14, 16)?,
        sec,
        micros,
    )
}

/// The formats `--timestamp` accepts (all UTC), in borg's order.
pub const TIMESTAMP_FORMATS: [&str; 8] = [
    "%Y-%m-%dT%H:%M:%SZ",
    "%Y-%m-%dT%H:%M:%S+00:00",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d",
    "%Y-%j",
];

/// The largest timestamp borg accepts from a file's mtime (`MAX_S`, 32-bit safe).
pub const MAX_S: i64 = (1 << 31) - 1 - 48 * 3600;

/// `--timestamp` (create, recreate, import-tar): the mtime of an existing file or directory, or a
/// UTC time in one of [`TIMESTAMP_FORMATS`]. The error displays as argparse's
/// `invalid timestamp value: '…'`.
pub fn parse_timestamp_arg(s: &str) -> Result<DateTime<Utc>, TimeParseError> {
    if !s.contains('\0') {
        if let Ok(md) = std::fs::metadata(Path::new(s)) {
            use std::os::unix::fs::MetadataExt;
            return Ok(py_fromtimestamp_float(md.mtime(), md.mtime_nsec()));
        }
    }
    for fmt in TIMESTAMP_FORMATS {
        if let Some(n) = py_strptime(s, fmt) {
            return Ok(n.and_utc());
        }
    }
    Err(TimeParseError::InvalidTimestampArg(s.to_string()))
}

/// `datetime.fromtimestamp(safe_s(st_mtime), timezone.utc)` where `st_mtime` is CPython's float
/// `sec + nsec * 1e-9`; microseconds are rounded half-even from that float, like CPython.
fn py_fromtimestamp_float(sec: i64, nsec: i64) -> DateTime<Utc> {
    let t = sec as f64 + nsec as f64 * 1e-9;
    let t = if t < 0.0 {
        0.0
    } else if t > MAX_S as f64 {
        MAX_S as f64
    } else {
        t
    };
    let int_part = t.trunc();
    let mut us = ((t - int_part) * 1e6).round_ties_even();
    let mut secs = int_part as i64;
    if us >= 1e6 {
        us -= 1e6;
        secs += 1;
    }
    DateTime::<Utc>::from_timestamp(secs, us as u32 * 1000).unwrap_or_default()
}

/// Errors of [`parse_interval`], with borg's texts (argparse prefixes `argument --keep-within: `).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntervalError {
    /// The last character is not one of `H d w m y`.
    #[error("Unexpected interval time unit \"{0}\": expected one of ['H', 'd', 'w', 'm', 'y']")]
    Unit(String),
    /// The number part is not an integer > 0.
    #[error("Unexpected interval number \"{0}\": expected an integer greater than 0")]
    Number(String),
}

/// `--keep-within` intervals: `<int><unit>` with unit `H` (hour), `d` (24 h), `w` (168 h),
/// `m` (31 days) or `y` (365 days); returns hours. (borg itself crashes on an empty string; we
/// report it as a unit error.)
pub fn parse_interval(s: &str) -> Result<u64, IntervalError> {
    let Some(suffix) = s.chars().last() else {
        return Err(IntervalError::Unit(String::new()));
    };
    let mult: u64 = match suffix {
        'H' => 1,
        'd' => 24,
        'w' => 24 * 7,
        'm' => 24 * 31,
        'y' => 24 * 365,
        other => return Err(IntervalError::Unit(other.to_string())),
    };
    let number = &s[..s.len() - suffix.len_utf8()];
    match parse_py_int(number) {
        Some(n) if n > 0 => Ok(u64::try_from(n).unwrap_or(u64::MAX).saturating_mul(mult)),
        _ => Err(IntervalError::Number(number.to_string())),
    }
}

/// The first code point of every run of ten Unicode decimal digits (category Nd, Unicode 14 as
/// in CPython 3.11).
const DECIMAL_ZEROS: [u32; 66] = [
    0x30, 0x660, 0x6f0, 0x7c0, 0x966, 0x9e6, 0xa66, 0xae6, 0xb66, 0xbe6, 0xc66, 0xce6, 0xd66,
    0xde6, 0xe50, 0xed0, 0xf20, 0x1040, 0x1090, 0x17e0, 0x1810, 0x1946, 0x19d0, 0x1a80, 0x1a90,
    0x1b50, 0x1bb0, 0x1c40, 0x1c50, 0xa620, 0xa8d0, 0xa900, 0xa9d0, 0xa9f0, 0xaa50, 0xabf0, 0xff10,
    0x104a0, 0x10d30, 0x11066, 0x110f0, 0x11136, 0x111d0, 0x112f0, 0x11450, 0x114d0, 0x11650,
    0x116c0, 0x11730, 0x118e0, 0x11950, 0x11c50, 0x11d50, 0x11da0, 0x16a60, 0x16ac0, 0x16b50,
    0x1d7ce, 0x1d7d8, 0x1d7e2, 0x1d7ec, 0x1d7f6, 0x1e140, 0x1e2f0, 0x1e950, 0x1fbf0,
];

/// Python's `unicodedata.decimal(c)`: the value of a decimal digit of any script.
pub fn py_decimal(c: char) -> Option<u32> {
    let u = c as u32;
    if c.is_ascii_digit() {
        return Some(u - 0x30);
    }
    let i = DECIMAL_ZEROS.partition_point(|&z| z <= u);
    let zero = *DECIMAL_ZEROS.get(i.checked_sub(1)?)?;
    (u - zero < 10).then_some(u - zero)
}

/// Python's `str.isspace()` for one character.
pub fn py_isspace(c: char) -> bool {
    matches!(c as u32, 0x9..=0xd | 0x1c..=0x20 | 0x85 | 0xa0 | 0x1680 | 0x2000..=0x200a
        | 0x2028 | 0x2029 | 0x202f | 0x205f | 0x3000)
}

/// Python's `int(str)`: surrounding whitespace, optional sign, decimal digits of any script with
/// single underscores between them. Saturates at the `i128` range.
pub fn parse_py_int(s: &str) -> Option<i128> {
    // int() strips Unicode whitespace, except U+001C..U+001F (which it rejects).
    let t = s.trim_matches(|c: char| py_isspace(c) && !('\u{1c}'..='\u{1f}').contains(&c));
    let (neg, digits) = match t.as_bytes().first()? {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
    {
        return None;
    }
    let mut v: i128 = 0;
    for c in digits.chars() {
        if c == '_' {
            continue;
        }
        let d = py_decimal(c)? as i128;
        v = v.saturating_mul(10).saturating_add(d);
    }
    Some(if neg { -v } else { v })
}

/// Errors of [`parse_positive_int`], as argparse shows them after `argument --first: `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PositiveIntError {
    /// Not an integer at all.
    #[error("invalid positive_int_validator value: {}", py_repr(.0))]
    NotAnInt(String),
    /// Zero or negative.
    #[error("A positive integer is required: {0}")]
    NotPositive(String),
}

/// borg's `positive_int_validator` (`--first N`, `--last N`, …).
pub fn parse_positive_int(s: &str) -> Result<u64, PositiveIntError> {
    match parse_py_int(s) {
        None => Err(PositiveIntError::NotAnInt(s.to_string())),
        Some(v) if v <= 0 => Err(PositiveIntError::NotPositive(s.to_string())),
        Some(v) => Ok(u64::try_from(v).unwrap_or(u64::MAX)),
    }
}

// ---- item times (what `list`/`diff` show for mtime/ctime/atime) ----

/// An item timestamp (ns) as borg's `safe_timestamp` makes it: `datetime.fromtimestamp(ns /
/// 1e9)`, i.e. naive local time, microseconds rounded half-even from the float.
pub fn item_local(ns: i128) -> NaiveDateTime {
    let f = ns as f64 / 1e9;
    let secs = f.floor();
    let mut us = ((f - secs) * 1e6).round_ties_even() as i64;
    let mut s = secs as i64;
    if us >= 1_000_000 {
        s += 1;
        us -= 1_000_000;
    }
    let utc = DateTime::<Utc>::from_timestamp(s, (us * 1000) as u32).unwrap_or_default();
    let off = SystemZone.offset_at(s);
    utc.naive_utc() + chrono::Duration::seconds(off as i64)
}

/// `isomtime`-style text of an item time.
pub fn item_isoformat(ns: i128) -> String {
    item_local(ns).format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
}

/// An item time formatted with a Python strftime spec (empty = borg's text format).
pub fn item_strftime(ns: i128, spec: &str) -> String {
    let fmt = if spec.is_empty() { TEXT_FORMAT } else { spec };
    PyDateTime::naive(item_local(ns)).strftime(fmt)
}

/// Archive-level times (start/end/last_modified): borg's `OutputTimestamp` of a UTC time.
pub fn isoformat_local_secs(t: &DateTime<Utc>) -> String {
    isoformat_time(*t)
}

/// Archive-level text time.
pub fn format_time_local(t: &DateTime<Utc>) -> String {
    format_time(*t)
}

/// Archive-level time with a strftime spec (empty = text format).
pub fn archive_strftime(t: &DateTime<Utc>, spec: &str) -> String {
    let fmt = if spec.is_empty() { TEXT_FORMAT } else { spec };
    PyDateTime::naive(to_localtime(*t)).strftime(fmt)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ndt(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32, us: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, mo, d)
            .unwrap()
            .and_hms_micro_opt(h, mi, s, us)
            .unwrap()
    }

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        ndt(y, mo, d, h, mi, s, 0).and_utc()
    }

    /// Expected values taken from CPython 3.11 on glibc 2.36.
    #[test]
    fn strftime_directives_table() {
        let d = PyDateTime::naive(ndt(2024, 1, 3, 4, 5, 6, 7890));
        let table: &[(&str, &str)] = &[
            ("%a", "Wed"),
            ("%A", "Wednesday"),
            ("%b", "Jan"),
            ("%B", "January"),
            ("%c", "Wed Jan  3 04:05:06 2024"),
            ("%C", "20"),
            ("%d", "03"),
            ("%D", "01/03/24"),
            ("%e", " 3"),
            ("%F", "2024-01-03"),
            ("%g", "24"),
            ("%G", "2024"),
            ("%h", "Jan"),
            ("%H", "04"),
            ("%I", "04"),
            ("%j", "003"),
            ("%k", " 4"),
            ("%l", " 4"),
            ("%m", "01"),
            ("%M", "05"),
            ("%n", "\n"),
            ("%p", "AM"),
            ("%P", "am"),
            ("%r", "04:05:06 AM"),
            ("%R", "04:05"),
            ("%S", "06"),
            ("%t", "\t"),
            ("%T", "04:05:06"),
            ("%u", "3"),
            ("%U", "00"),
            ("%V", "01"),
            ("%w", "3"),
            ("%W", "01"),
            ("%x", "01/03/24"),
            ("%X", "04:05:06"),
            ("%y", "24"),
            ("%Y", "2024"),
            ("%z", ""),
            ("%Z", ""),
            ("%%", "%"),
            ("%f", "007890"),
            ("%Y-%m-%dT%H:%M:%S.%f", "2024-01-03T04:05:06.007890"),
            ("%+", "%+"),
            ("%Q", "%Q"),
            ("%", "%"),
            ("a%", "a%"),
            ("%-d", "3"),
            ("%_d", " 3"),
            ("%0e", "03"),
            ("%^a", "WED"),
            ("%#a", "WED"),
            ("%^B", "JANUARY"),
            ("%10Y", "0000002024"),
            ("%-5d", "    3"),
            ("%_5d", "    3"),
            ("%5d", "00003"),
            ("%^p", "AM"),
            ("%#p", "am"),
            ("%4%", "   %"),
            ("%3n", "  \n"),
            ("%E%", "%"),
            ("%Ex", "01/03/24"),
            ("%EC", "20"),
            ("%:z", "%:z"),
            ("%E", "%E"),
            ("%-", "%-"),
            ("%10", "       %10"),
            ("%^10a", "       WED"),
            ("%010a", "0000000Wed"),
            ("%_010d", "0000000003"),
            ("%3f", "%3f"),
            ("%-f", "%-f"),
            ("%%f", "%f"),
            ("a\0b%Y", "a"),
        ];
        for (f, want) in table {
            assert_eq!(d.strftime(f), *want, "format {f:?}");
        }
    }

    #[test]
    fn strftime_small_years_and_iso_weeks() {
        let d = PyDateTime::naive(ndt(5, 2, 1, 13, 0, 0, 0));
        assert_eq!(
            d.strftime("%Y|%C|%G|%F|%y|%-y|%_y"),
            "5|0|5|5-02-01|05|5| 5"
        );
        assert_eq!(d.strftime("%c"), "Tue Feb  1 13:00:00 5");
        let d = PyDateTime::naive(ndt(2021, 1, 1, 0, 0, 0, 0));
        assert_eq!(
            d.strftime("%G-%V %g %U %W %l %r"),
            "2020-53 20 00 00 12 12:00:00 AM"
        );
        let d = PyDateTime::naive(ndt(2024, 12, 30, 9, 0, 0, 0));
        assert_eq!(d.strftime("%G-W%V-%u"), "2025-W01-1");
    }

    #[test]
    fn strftime_aware_values() {
        let t = utc(2024, 1, 3, 4, 5, 6) + Duration::microseconds(42);
        let u = PyDateTime::utc(t);
        assert_eq!(
            u.strftime("%Y-%m-%dT%H:%M:%S.%f %z %Z"),
            "2024-01-03T04:05:06.000042 +0000 UTC"
        );
        let l = PyDateTime::local_in(
            t,
            &FixedZone {
                offset_secs: -(3 * 3600 + 1800),
                name: "N%T".into(),
            },
        );
        // a '%' in the zone name is escaped before glibc sees it
        assert_eq!(l.strftime("%H:%M %z %Z"), "00:35 -0330 N%T");
        let odd = PyDateTime {
            wall: ndt(2000, 1, 1, 0, 0, 0, 0),
            tz: Some(PyTzInfo {
                offset_secs: 3630,
                name: "X".into(),
            }),
        };
        assert_eq!(odd.strftime("%z|%-z|%5Z|%#Z"), "+010030||     |");
    }

    #[test]
    fn borg_text_and_iso_times() {
        let t = utc(2026, 11, 25, 16, 5, 51) + Duration::microseconds(999_999);
        let cet = FixedZone {
            offset_secs: 3600,
            name: "CET".into(),
        };
        assert_eq!(format_time_in(t, &cet), "Wed, 2026-11-25 17:05:51");
        // borg drops microseconds on the way to local time
        assert_eq!(isoformat_time_in(t, &cet), "2026-11-25T17:05:51.000000");
        assert_eq!(
            to_localtime_in(t, &FixedZone::utc()),
            ndt(2026, 11, 25, 16, 5, 51, 0)
        );
        let before_epoch = utc(1969, 12, 31, 23, 59, 59) + Duration::microseconds(500_000);
        assert_eq!(
            to_localtime_in(before_epoch, &FixedZone::utc()),
            ndt(1969, 12, 31, 23, 59, 59, 0)
        );
        assert_eq!(format_utcoffset(-3600, 0), "-0100");
        assert_eq!(format_utcoffset(19800, 0), "+0530");
        assert_eq!(format_utcoffset(61, 5), "+000101.000005");
    }

    #[test]
    fn stored_timestamps() {
        assert_eq!(
            parse_timestamp("2024-01-03T00:00:00.000000").unwrap(),
            utc(2024, 1, 3, 0, 0, 0)
        );
        assert_eq!(
            parse_timestamp("2024-01-03T10:11:12").unwrap(),
            utc(2024, 1, 3, 10, 11, 12)
        );
        assert_eq!(
            parse_timestamp("2024-01-03T10:11:12.5").unwrap(),
            utc(2024, 1, 3, 10, 11, 12) + Duration::milliseconds(500)
        );
        assert_eq!(
            parse_timestamp("2024-1-3t1:2:3").unwrap(),
            utc(2024, 1, 3, 1, 2, 3)
        );
        let e = parse_timestamp("2024-01-03 10:11:12").unwrap_err();
        assert_eq!(
            e.to_string(),
            "time data '2024-01-03 10:11:12' does not match format '%Y-%m-%dT%H:%M:%S'"
        );
        assert!(parse_timestamp("2024-02-30T00:00:00").is_err());
        assert!(parse_timestamp("2024-01-03T00:00:60").is_err());
        assert!(parse_timestamp("2024-01-03T00:00:00.1234567").is_err());
    }

    #[test]
    fn timestamp_option() {
        let ok: &[(&str, DateTime<Utc>)] = &[
            ("2024-01-03T04:05:06Z", utc(2024, 1, 3, 4, 5, 6)),
            ("2024-01-03t04:05:06z", utc(2024, 1, 3, 4, 5, 6)),
            ("2024-01-03T04:05:06+00:00", utc(2024, 1, 3, 4, 5, 6)),
            ("2024-01-03T04:05:06", utc(2024, 1, 3, 4, 5, 6)),
            ("2024-01-03 04:05:06", utc(2024, 1, 3, 4, 5, 6)),
            ("2024-01-03  \t04:05", utc(2024, 1, 3, 4, 5, 0)),
            ("2024-01-03T04:05", utc(2024, 1, 3, 4, 5, 0)),
            ("2024-01-03 04:05", utc(2024, 1, 3, 4, 5, 0)),
            ("2024-01-03", utc(2024, 1, 3, 0, 0, 0)),
            ("2024-1-3", utc(2024, 1, 3, 0, 0, 0)),
            ("2024-060", utc(2024, 2, 29, 0, 0, 0)),
            ("2023-366", utc(2024, 1, 1, 0, 0, 0)),
        ];
        for (s, want) in ok {
            assert_eq!(parse_timestamp_arg(s).unwrap(), *want, "{s}");
        }
        for bad in [
            "foo",
            "2024-01-03T04:05:06.5",
            "2024-02-30",
            "24-01-03",
            "2024-01-03T04:05:06+01:00",
            "",
            "2024-01-03T24:00",
        ] {
            let e = parse_timestamp_arg(bad).unwrap_err();
            assert_eq!(e.to_string(), format!("invalid timestamp value: '{bad}'"));
        }
        assert_eq!(
            parse_timestamp_arg("it's").unwrap_err().to_string(),
            "invalid timestamp value: \"it's\""
        );
        // An existing path means its mtime.
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("2024-01-03");
        let file = std::fs::File::create(&f).unwrap();
        let mtime = std::time::UNIX_EPOCH + std::time::Duration::new(1_700_000_000, 123_456_789);
        file.set_modified(mtime).unwrap();
        assert_eq!(
            parse_timestamp_arg(f.to_str().unwrap()).unwrap(),
            DateTime::<Utc>::from_timestamp(1_700_000_000, 123_457_000).unwrap()
        );
    }

    #[test]
    fn intervals() {
        let ok: &[(&str, u64)] = &[
            ("1H", 1),
            ("2d", 48),
            ("1w", 168),
            ("1m", 744),
            ("1y", 8760),
            (" 3d", 72),
            ("+2H", 2),
            ("1_0H", 10),
        ];
        for (s, h) in ok {
            assert_eq!(parse_interval(s).unwrap(), *h, "{s}");
        }
        let errs: &[(&str, &str)] = &[
            (
                "5x",
                "Unexpected interval time unit \"x\": expected one of ['H', 'd', 'w', 'm', 'y']",
            ),
            (
                "5D",
                "Unexpected interval time unit \"D\": expected one of ['H', 'd', 'w', 'm', 'y']",
            ),
            (
                "0d",
                "Unexpected interval number \"0\": expected an integer greater than 0",
            ),
            (
                "-3d",
                "Unexpected interval number \"-3\": expected an integer greater than 0",
            ),
            (
                "d",
                "Unexpected interval number \"\": expected an integer greater than 0",
            ),
            (
                "1.5d",
                "Unexpected interval number \"1.5\": expected an integer greater than 0",
            ),
            (
                "",
                "Unexpected interval time unit \"\": expected one of ['H', 'd', 'w', 'm', 'y']",
            ),
        ];
        for (s, msg) in errs {
            assert_eq!(parse_interval(s).unwrap_err().to_string(), *msg, "{s:?}");
        }
        assert_eq!(
            parse_interval("99999999999999999999999y").unwrap(),
            u64::MAX
        );
    }

    #[test]
    fn positive_ints() {
        assert_eq!(parse_positive_int("3").unwrap(), 3);
        assert_eq!(parse_positive_int(" 7 ").unwrap(), 7);
        assert_eq!(
            parse_positive_int("0").unwrap_err().to_string(),
            "A positive integer is required: 0"
        );
        assert_eq!(
            parse_positive_int("-2").unwrap_err().to_string(),
            "A positive integer is required: -2"
        );
        assert_eq!(
            parse_positive_int("x").unwrap_err().to_string(),
            "invalid positive_int_validator value: 'x'"
        );
        assert_eq!(parse_py_int("1__0"), None);
        assert_eq!(parse_py_int("_1"), None);
        assert_eq!(parse_py_int("-0"), Some(0));
        assert_eq!(parse_py_int("\u{663}\u{ff11}"), Some(31));
        assert_eq!(parse_py_int("\u{a0} 7\u{3000}"), Some(7));
        assert_eq!(parse_py_int("\u{1c}7"), None);
        assert_eq!(py_decimal('\u{1d7d8}'), Some(0));
        assert_eq!(py_decimal('\u{1d7e1}'), Some(9));
        assert_eq!(py_decimal('\u{b2}'), None); // superscript two is not a decimal digit
        assert_eq!(py_decimal('a'), None);
    }

    #[test]
    fn fixed_zones() {
        let z = FixedZone::hours(-5);
        assert_eq!(z.name, "-0500");
        let t = utc(2024, 7, 1, 3, 0, 0);
        let l = PyDateTime::local_in(t, &z);
        assert_eq!(
            l.strftime("%Y-%m-%d %H:%M %z %Z"),
            "2024-06-30 22:00 -0500 -0500"
        );
    }
}
