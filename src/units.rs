//! borg's human-readable sizes and durations (`format_file_size`, `format_timedelta`).

/// `format_file_size`: decimal units by default (`1.83 kB`), IEC with `iec` (`1.79 KiB`);
/// bytes without decimals; `sign` forces a leading `+` on positive values.
pub fn format_file_size(v: i128, precision: usize, sign: bool, iec: bool) -> String {
    let (units, power): (&[&str], f64) = if iec {
        (
            &["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"],
            1024.0,
        )
    } else {
        (&["", "k", "M", "G", "T", "P", "E", "Z", "Y"], 1000.0)
    };
    let mut num = v as f64;
    let mut prec = 0;
    let mut unit = units[units.len() - 1];
    let mut found = false;
    for u in &units[..units.len() - 1] {
        if round_to(num.abs(), precision) < power {
            unit = u;
            found = true;
            break;
        }
        num /= power;
        prec = precision;
    }
    if !found {
        prec = precision;
    }
    let s = if sign && num > 0.0 { "+" } else { "" };
    format!("{s}{num:.prec$} {unit}B")
}

fn round_to(x: f64, digits: usize) -> f64 {
    let f = 10f64.powi(digits as i32);
    (x * f).round() / f
}

/// Default size formatting (precision 2, no sign) honouring `--iec`.
pub fn fsize(v: impl Into<i128>) -> String {
    format_file_size(v.into(), 2, false, iec())
}

static IEC: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
pub fn set_iec(on: bool) {
    IEC.store(on, std::sync::atomic::Ordering::Relaxed);
}
pub fn iec() -> bool {
    IEC.load(std::sync::atomic::Ordering::Relaxed)
}

/// `format_timedelta`: `%.2f seconds`, prefixed by `N minutes `, `N hours `, `N days `.
pub fn format_timedelta(secs: f64) -> String {
    let ts = secs.max(0.0);
    let total = ts.floor() as u64;
    let frac = ts - total as f64;
    let s = (total % 60) as f64 + frac;
    let m = (total / 60) % 60;
    let h = (total / 3600) % 24;
    let d = total / 86400;
    let mut txt = format!("{s:.2} seconds");
    if m > 0 {
        txt = format!("{m} minutes {txt}");
    }
    if h > 0 {
        txt = format!("{h} hours {txt}");
    }
    if d > 0 {
        txt = format!("{d} days {txt}");
    }
    txt
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_borg() {
        assert_eq!(format_file_size(909, 2, false, false), "909 B");
        assert_eq!(format_file_size(1830, 2, false, false), "1.83 kB");
        assert_eq!(format_file_size(-1070, 2, false, false), "-1.07 kB");
        assert_eq!(format_file_size(0, 2, false, false), "0 B");
        assert_eq!(format_file_size(999_999, 2, false, false), "1.00 MB");
        assert_eq!(format_file_size(2048, 2, false, true), "2.00 KiB");
        assert_eq!(format_file_size(1500, 1, true, false), "+1.5 kB");
        assert_eq!(format_file_size(524288000, 2, false, false), "524.29 MB");
    }

    #[test]
    fn durations() {
        assert_eq!(format_timedelta(0.004), "0.00 seconds");
        assert_eq!(format_timedelta(61.5), "1 minutes 1.50 seconds");
        assert_eq!(format_timedelta(3600.0), "1 hours 0.00 seconds");
    }
}
