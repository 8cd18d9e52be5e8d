//! Python's `repr()` of a string: borg's messages (argparse errors, log lines, placeholder
//! errors) quote values this way, and rborg's must read the same.

/// `repr(s)`: single quotes unless the text holds a single quote and no double one; `\\`, the
/// usual escapes, `\xNN`/`\uNNNN`/`\UNNNNNNNN` for what Python deems unprintable.
pub fn py_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || (0x7f..=0xa0).contains(&(c as u32)) || c == '\u{ad}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if is_py_unprintable(c) => {
                if (c as u32) <= 0xffff {
                    out.push_str(&format!("\\u{:04x}", c as u32))
                } else {
                    out.push_str(&format!("\\U{:08x}", c as u32))
                }
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Non-ASCII code points Python's `str.isprintable()` rejects (besides C0/C1 controls).
fn is_py_unprintable(c: char) -> bool {
    matches!(c as u32,
        0x1680 | 0x2000..=0x200f | 0x2028..=0x202f | 0x205f..=0x2064 | 0x2066..=0x206f
        | 0x3000 | 0xfeff | 0xfff9..=0xfffb | 0xe000..=0xf8ff | 0xf0000..=0x10ffff
        | 0x180e | 0x061c | 0x070f | 0x110bd | 0x1bca0..=0x1bca3 | 0xe0001 | 0xe0020..=0xe007f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_reprs() {
        assert_eq!(py_repr("abc"), "'abc'");
        assert_eq!(py_repr("it's"), "\"it's\"");
        assert_eq!(py_repr("a'\""), "'a\\'\"'");
        assert_eq!(py_repr("t\tn\nb\\"), "'t\\tn\\nb\\\\'");
        assert_eq!(
            py_repr("\u{1}\u{7f}é\u{a0}\u{200b}"),
            "'\\x01\\x7fé\\xa0\\u200b'"
        );
    }
}
