//! Time formatting (temporary minimal version; replaced by the full module).

use chrono::{DateTime, Local, Utc};

/// borg's JSON/ISO timestamps: local time, naive, 6 fractional digits.
pub fn isoformat_local(t: &DateTime<Utc>) -> String {
    t.with_timezone(&Local).format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
}

/// borg's text timestamps: `%a, %Y-%m-%d %H:%M:%S` in local time.
pub fn format_time_local(t: &DateTime<Utc>) -> String {
    t.with_timezone(&Local).format("%a, %Y-%m-%d %H:%M:%S").to_string()
}
