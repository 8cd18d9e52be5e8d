//! Time formatting (temporary minimal version; replaced by the full module).

use chrono::{DateTime, Local, Utc};

/// borg's JSON/ISO timestamps: local time, naive, 6 fractional digits.
pub fn isoformat_local(t: &DateTime<Utc>) -> String {
    t.with_timezone(&Local)
        .format("%Y-%m-%dT%H:%M:%S%.6f")
        .to_string()
}

/// Archive-level times (borg's `OutputTimestamp` of a UTC time: converted through
/// `time.localtime`, which drops the microseconds).
pub fn isoformat_local_secs(t: &DateTime<Utc>) -> String {
    t.with_timezone(&Local)
        .format("%Y-%m-%dT%H:%M:%S.000000")
        .to_string()
}

/// borg's text timestamps: `%a, %Y-%m-%d %H:%M:%S` in local time.
pub fn format_time_local(t: &DateTime<Utc>) -> String {
    t.with_timezone(&Local)
        .format("%a, %Y-%m-%d %H:%M:%S")
        .to_string()
}

/// `--timestamp` text (UTC).
pub fn parse_timestamp(s: &str) -> Result<DateTime<Utc>, String> {
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(n) = chrono::NaiveDateTime::parse_from_str(
            s.trim_end_matches('Z').trim_end_matches("+00:00"),
            f,
        ) {
            return Ok(n.and_utc());
        }
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).expect("midnight").and_utc());
    }
    Err(format!("Invalid timestamp: {s}"))
}

/// Python strftime (temporary: chrono's directives, with Python's 6-digit `%f`).
pub fn strftime<Tz: chrono::TimeZone>(t: &DateTime<Tz>, fmt: &str) -> String
where
    Tz::Offset: std::fmt::Display,
{
    t.format(&fmt.replace("%f", "%6f")).to_string()
}
