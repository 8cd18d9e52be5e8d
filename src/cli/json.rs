//! JSON exactly as Python's `json.dumps(obj, sort_keys=True, indent=4)` writes it (borg's
//! `--json` documents): ASCII-only with `\uXXXX` escapes, `", "`/`": "` separators, indent from
//! `BORG_JSON_INDENT`.

use serde_json::Value;

/// The indent setting: `None` = one line; `Some(s)` = newline + `s` per level.
pub fn indent_from_env() -> Option<String> {
    match std::env::var("BORG_JSON_INDENT") {
        Err(_) => Some("    ".into()),
        Ok(v) if v.eq_ignore_ascii_case("none") => None,
        Ok(v) if v.is_empty() => Some(String::new()),
        Ok(v) => match v.parse::<i64>() {
            Ok(n) if n >= 0 => Some(" ".repeat(n as usize)),
            Ok(_) => Some(String::new()),
            Err(_) => Some(v),
        },
    }
}

fn escape_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for u in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn float_repr(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    if f == f.trunc() && f.abs() < 1e16 {
        return format!("{f:.1}");
    }
    // Python's repr: the shortest round-trip digits, positional for 1e-4 <= |f| < 1e16,
    // otherwise scientific with a signed, at least two-digit exponent.
    let sci = format!("{f:e}");
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..16).contains(&exp) {
        return format!("{f:?}");
    }
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mant}e{sign}{:02}", exp.abs())
}

fn write(v: &Value, indent: Option<&str>, level: usize, sort: bool, out: &mut String) {
    let nl = |out: &mut String, level: usize| {
        if let Some(ind) = indent {
            out.push('\n');
            for _ in 0..level {
                out.push_str(ind);
            }
        }
    };
    let item_sep = if indent.is_some() { "," } else { ", " };
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|_| n.is_f64()) {
                out.push_str(&float_repr(f));
            } else {
                out.push_str(&n.to_string());
            }
        }
        Value::String(s) => escape_str(s, out),
        Value::Array(a) => {
            if a.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                nl(out, level + 1);
                write(x, indent, level + 1, sort, out);
            }
            nl(out, level);
            out.push(']');
        }
        Value::Object(m) => {
            if m.is_empty() {
                out.push_str("{}");
                return;
            }
            let mut keys: Vec<&String> = m.keys().collect();
            if sort {
                keys.sort();
            }
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                nl(out, level + 1);
                escape_str(k, out);
                out.push_str(": ");
                write(&m[k], indent, level + 1, sort, out);
            }
            nl(out, level);
            out.push('}');
        }
    }
}

/// `json.dumps(v, sort_keys=True, indent=<env>)`.
pub fn dumps(v: &Value) -> String {
    let ind = indent_from_env();
    let mut out = String::new();
    write(v, ind.as_deref(), 0, true, &mut out);
    out
}

/// `json.dumps(v)` (one line, insertion order) — for JSON-lines output and log records.
pub fn dumps_line(v: &Value) -> String {
    let mut out = String::new();
    write(v, None, 0, false, &mut out);
    out
}

/// Prints a `--json` document to stdout.
pub fn print(v: &Value) {
    super::write_stdout(&format!("{}\n", dumps(v)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn like_python() {
        let v = json!({"b": [1, 2.5, "ü"], "a": {}, "c": []});
        let mut out = String::new();
        write(&v, Some("    "), 0, true, &mut out);
        assert_eq!(out, "{\n    \"a\": {},\n    \"b\": [\n        1,\n        2.5,\n        \"\\u00fc\"\n    ],\n    \"c\": []\n}");
        assert_eq!(
            dumps_line(&json!({"x": 1.0, "y": "a\"b"})),
            "{\"x\": 1.0, \"y\": \"a\\\"b\"}"
        );
        let mut o2 = String::new();
        escape_str("😀", &mut o2);
        assert_eq!(o2, "\"\\ud83d\\ude00\"");
    }

    #[test]
    fn floats_like_python_repr() {
        // expected strings are Python 3's repr() of the same doubles
        for (f, py) in [
            (2.398495594898195e-5, "2.398495594898195e-05"),
            (0.0001, "0.0001"),
            (1e-5, "1e-05"),
            (1e16, "1e+16"),
            (1.5e300, "1.5e+300"),
            (123456.789, "123456.789"),
            (0.1, "0.1"),
            (3.0, "3.0"),
            (-2.5e-7, "-2.5e-07"),
        ] {
            assert_eq!(float_repr(f), py, "{f}");
        }
    }
}
