//! A subset of Python's `str.format` for borg's `--format` options: `{key}`, `{key:spec}` with
//! the format-spec mini language (fill, align, sign, zero, width, grouping, precision, type) for
//! strings and numbers, strftime specs for times, and `{{` / `}}` escapes.

use chrono::{DateTime, Utc};

/// A value a format field can take.
#[derive(Clone, Debug)]
pub enum FieldValue {
    Str(String),
    Int(i128),
    Float(f64),
    /// An archive-level time (UTC), shown in local time: `%a, %Y-%m-%d %H:%M:%S` unless the
    /// spec is a strftime format.
    Time(DateTime<Utc>),
    /// An item timestamp in nanoseconds (borg's `safe_timestamp` rounding).
    ItemTime(i128),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Part {
    Lit(String),
    Field { key: String, spec: String },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FormatError {
    #[error("Single '}}' encountered in format string")]
    SingleClose,
    #[error("Single '{{' encountered in format string")]
    SingleOpen,
    #[error("unexpected '{{' in field name")]
    Nested,
}

/// Parses a format string into literal and field parts.
pub fn parse(fmt: &str) -> Result<Vec<Part>, FormatError> {
    let mut parts = Vec::new();
    let mut lit = String::new();
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' => {
                if chars.peek() == Some(&'{') {
                    chars.next();
                    lit.push('{');
                    continue;
                }
                let mut field = String::new();
                let mut depth = 0;
                let mut closed = false;
                for d in chars.by_ref() {
                    match d {
                        '{' => {
                            depth += 1;
                            field.push(d);
                        }
                        '}' if depth > 0 => {
                            depth -= 1;
                            field.push(d);
                        }
                        '}' => {
                            closed = true;
                            break;
                        }
                        _ => field.push(d),
                    }
                }
                if !closed {
                    return Err(FormatError::SingleOpen);
                }
                if !lit.is_empty() {
                    parts.push(Part::Lit(std::mem::take(&mut lit)));
                }
                let (name, spec) = match field.split_once(':') {
                    Some((n, s)) => (n.to_string(), s.to_string()),
                    None => (field, String::new()),
                };
                // a `!conversion` is dropped from the key (callers treat such keys as unknown)
                parts.push(Part::Field { key: name, spec });
            }
            '}' => {
                if chars.peek() == Some(&'}') {
                    chars.next();
                    lit.push('}');
                } else {
                    return Err(FormatError::SingleClose);
                }
            }
            c => lit.push(c),
        }
    }
    if !lit.is_empty() {
        parts.push(Part::Lit(lit));
    }
    Ok(parts)
}

/// The keys a format uses.
pub fn keys(parts: &[Part]) -> Vec<&str> {
    parts
        .iter()
        .filter_map(|p| match p {
            Part::Field { key, .. } => Some(key.as_str()),
            _ => None,
        })
        .collect()
}

struct Spec {
    fill: char,
    align: Option<char>,
    sign: Option<char>,
    zero: bool,
    width: usize,
    grouping: Option<char>,
    precision: Option<usize>,
    ty: Option<char>,
}

fn parse_spec(s: &str) -> Spec {
    let c: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut spec = Spec {
        fill: ' ',
        align: None,
        sign: None,
        zero: false,
        width: 0,
        grouping: None,
        precision: None,
        ty: None,
    };
    let is_align = |ch: char| matches!(ch, '<' | '>' | '^' | '=');
    if c.len() >= 2 && is_align(c[1]) {
        spec.fill = c[0];
        spec.align = Some(c[1]);
        i = 2;
    } else if !c.is_empty() && is_align(c[0]) {
        spec.align = Some(c[0]);
        i = 1;
    }
    if i < c.len() && matches!(c[i], '+' | '-' | ' ') {
        spec.sign = Some(c[i]);
        i += 1;
    }
    if i < c.len() && c[i] == '#' {
        i += 1;
    }
    if i < c.len() && c[i] == '0' {
        spec.zero = true;
        i += 1;
    }
    let start = i;
    while i < c.len() && c[i].is_ascii_digit() {
        i += 1;
    }
    spec.width = c[start..i].iter().collect::<String>().parse().unwrap_or(0);
    if i < c.len() && (c[i] == ',' || c[i] == '_') {
        spec.grouping = Some(c[i]);
        i += 1;
    }
    if i < c.len() && c[i] == '.' {
        i += 1;
        let s = i;
        while i < c.len() && c[i].is_ascii_digit() {
            i += 1;
        }
        spec.precision = c[s..i].iter().collect::<String>().parse().ok();
    }
    if i < c.len() {
        spec.ty = Some(c[i]);
    }
    spec
}

fn group(digits: &str, sep: char) -> String {
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(sep);
        }
        out.push(ch);
    }
    out
}

fn pad(s: String, spec: &Spec, default_align: char) -> String {
    let len = s.chars().count();
    if len >= spec.width {
        return s;
    }
    let n = spec.width - len;
    let fill = |k: usize| std::iter::repeat_n(spec.fill, k).collect::<String>();
    match spec.align.unwrap_or(default_align) {
        '<' => s + &fill(n),
        '^' => fill(n / 2) + &s + &fill(n - n / 2),
        '=' => {
            let (sign, rest) = if s.starts_with(['-', '+', ' ']) {
                s.split_at(1)
            } else {
                ("", s.as_str())
            };
            format!("{sign}{}{rest}", fill(n))
        }
        _ => fill(n) + &s,
    }
}

fn format_num(v: f64, is_int: bool, spec: &Spec) -> String {
    let mut spec2 = Spec { ..parse_spec("") };
    spec2.fill = spec.fill;
    spec2.align = spec.align;
    spec2.width = spec.width;
    if spec.zero && spec.align.is_none() {
        spec2.fill = '0';
        spec2.align = Some('=');
    }
    let neg = v < 0.0;
    let a = v.abs();
    let body = match spec.ty {
        Some('f') | Some('F') => format!("{a:.*}", spec.precision.unwrap_or(6)),
        Some('%') => format!("{:.*}%", spec.precision.unwrap_or(6), a * 100.0),
        Some('x') => format!("{:x}", a as u128),
        Some('X') => format!("{:X}", a as u128),
        Some('o') => format!("{:o}", a as u128),
        Some('b') => format!("{:b}", a as u128),
        Some('e') => format!("{a:.*e}", spec.precision.unwrap_or(6)),
        _ if is_int => format!("{}", a as u128),
        _ => match spec.precision {
            Some(p) => format!("{a:.p$}"),
            None => format!("{a}"),
        },
    };
    let body = match spec.grouping {
        Some(g) => {
            let (int, frac) = body
                .split_once('.')
                .map(|(i, f)| (i.to_string(), format!(".{f}")))
                .unwrap_or((body.clone(), String::new()));
            group(&int, g) + &frac
        }
        None => body,
    };
    let sign = if neg {
        "-"
    } else {
        match spec.sign {
            Some('+') => "+",
            Some(' ') => " ",
            _ => "",
        }
    };
    pad(format!("{sign}{body}"), &spec2, '>')
}

/// Formats one value with a Python format spec.
pub fn format_value(v: &FieldValue, spec: &str) -> String {
    match v {
        FieldValue::Time(t) => super::timefmt::archive_strftime(t, spec),
        FieldValue::ItemTime(ns) => super::timefmt::item_strftime(*ns, spec),
        FieldValue::Str(s) => {
            let sp = parse_spec(spec);
            let s = match sp.precision {
                Some(p) => s.chars().take(p).collect(),
                None => s.clone(),
            };
            pad(s, &sp, '<')
        }
        FieldValue::Int(i) => {
            let sp = parse_spec(spec);
            if matches!(sp.ty, Some('f') | Some('F') | Some('%') | Some('e')) {
                format_num(*i as f64, false, &sp)
            } else if sp.ty.is_none()
                || sp.ty == Some('d')
                || matches!(sp.ty, Some('x' | 'X' | 'o' | 'b'))
            {
                // integers keep full precision
                let neg = *i < 0;
                let a = i.unsigned_abs();
                let body = match sp.ty {
                    Some('x') => format!("{a:x}"),
                    Some('X') => format!("{a:X}"),
                    Some('o') => format!("{a:o}"),
                    Some('b') => format!("{a:b}"),
                    _ => a.to_string(),
                };
                let body = match sp.grouping {
                    Some(g) => group(&body, g),
                    None => body,
                };
                let sign = if neg {
                    "-"
                } else {
                    match sp.sign {
                        Some('+') => "+",
                        Some(' ') => " ",
                        _ => "",
                    }
                };
                let mut sp2 = parse_spec("");
                sp2.fill = sp.fill;
                sp2.align = sp.align;
                sp2.width = sp.width;
                if sp.zero && sp.align.is_none() {
                    sp2.fill = '0';
                    sp2.align = Some('=');
                }
                pad(format!("{sign}{body}"), &sp2, '>')
            } else {
                format_num(*i as f64, true, &sp)
            }
        }
        FieldValue::Float(f) => format_num(*f, false, &parse_spec(spec)),
    }
}

/// Renders parts; `get` supplies field values (unknown keys render via `unknown`).
pub fn render(
    parts: &[Part],
    get: &dyn Fn(&str) -> Option<FieldValue>,
    out: &mut String,
) -> Result<(), String> {
    for p in parts {
        match p {
            Part::Lit(s) => out.push_str(s),
            Part::Field { key, spec } => match get(key) {
                Some(v) => out.push_str(&format_value(&v, spec)),
                None => return Err(key.clone()),
            },
        }
    }
    Ok(())
}

/// borg's always-available formatting keys.
pub fn fixed_key(key: &str) -> Option<&'static str> {
    Some(match key {
        "LF" | "NEWLINE" | "NL" => "\n",
        "SPACE" => " ",
        "TAB" => "\t",
        "CR" => "\r",
        "NUL" => "\0",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(fmt: &str, v: FieldValue) -> String {
        let parts = parse(fmt).unwrap();
        let mut s = String::new();
        render(&parts, &|_| Some(v.clone()), &mut s).unwrap();
        s
    }

    #[test]
    fn python_specs() {
        assert_eq!(f("{x:6}", FieldValue::Str("ab".into())), "ab    ");
        assert_eq!(f("{x:>6}", FieldValue::Str("ab".into())), "    ab");
        assert_eq!(f("{x:8}", FieldValue::Int(123)), "     123");
        assert_eq!(
            f("{x:<36}|", FieldValue::Str("n".into())),
            format!("n{}|", " ".repeat(35))
        );
        assert_eq!(f("{x:*^7}", FieldValue::Str("ab".into())), "**ab***");
        assert_eq!(f("{x:08d}", FieldValue::Int(-42)), "-0000042");
        assert_eq!(f("{x:,}", FieldValue::Int(1234567)), "1,234,567");
        assert_eq!(f("{x:.0%}", FieldValue::Float(0.256)), "26%");
        assert_eq!(f("{x:.3}", FieldValue::Str("abcdef".into())), "abc");
        assert_eq!(f("a{{b}}c{x}", FieldValue::Int(1)), "a{b}c1");
        assert!(parse("{oops").is_err());
        assert!(parse("x}").is_err());
    }
}
