//! Translation of borg pattern texts into `regex`-crate syntax.
//!
//! borg compiles `fm:` patterns with Python's `fnmatch.translate`, `sh:` patterns with its own
//! shell-glob translator and `re:` patterns verbatim, all for Python's `re` engine. This module
//! reproduces the *meaning* of those translations (as of CPython 3.11, which both reference borg
//! installations run on) but emits syntax for the `regex` crate:
//!
//! * bracket expressions are first rendered the way Python would render them and then parsed
//!   with Python's character-class rules (first `]` literal, `a-z` ranges, `-` literal at the
//!   edges, backslash escapes), so the resulting set of characters is exactly Python's; the set
//!   is then emitted with every non-alphanumeric character written as `\x{..}`, which keeps the
//!   `regex` crate's extra class syntax (nested `[..]`, `&&`, `--`, `~~`) out of the way;
//! * `re:` patterns go through a small Python-`re` → `regex` rewriter, see
//!   [`translate_python_regex`].

use std::fmt::Write as _;

/// Error text produced while translating a pattern (rendered like Python's `re.error` text,
/// without the "at position N" suffix).
pub(super) type TranslateError = String;

/// Lexical path normalisation with the semantics of Python's `posixpath.normpath`.
///
/// Empty and `.` components are dropped, `..` removes the preceding component when there is one
/// (and is dropped right after a leading `/`), exactly two leading slashes are kept as two, any
/// other number of leading slashes becomes one, and an empty result is `"."`.
pub(super) fn normpath(path: &str) -> String {
    if path.is_empty() {
        return ".".to_string();
    }
    let leading = if path.starts_with("//") && !path.starts_with("///") {
        2
    } else if path.starts_with('/') {
        1
    } else {
        0
    };
    let mut parts: Vec<&str> = Vec::new();
    for comp in path.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                let keep = (leading == 0 && parts.is_empty()) || parts.last() == Some(&"..");
                if keep {
                    parts.push(comp);
                } else {
                    parts.pop();
                }
            }
            _ => parts.push(comp),
        }
    }
    let mut out = "/".repeat(leading);
    out.push_str(&parts.join("/"));
    if out.is_empty() {
        out.push('.');
    }
    out
}

/// One member of a character class.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ClassItem {
    Range(char, char),
    /// A `regex`-crate class fragment standing for a Python category escape (`\d`, `\w`, ...).
    Category(&'static str),
}

/// A parsed character class.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PyClass {
    negated: bool,
    items: Vec<ClassItem>,
}

impl PyClass {
    fn to_regex(&self) -> String {
        let mut out = String::from("[");
        if self.negated {
            out.push('^');
        }
        for item in &self.items {
            match item {
                ClassItem::Range(lo, hi) if lo == hi => push_class_char(&mut out, *lo),
                ClassItem::Range(lo, hi) => {
                    push_class_char(&mut out, *lo);
                    out.push('-');
                    push_class_char(&mut out, *hi);
                }
                ClassItem::Category(frag) => out.push_str(frag),
            }
        }
        out.push(']');
        out
    }
}

fn push_class_char(out: &mut String, c: char) {
    if c.is_ascii_alphanumeric() {
        out.push(c);
    } else {
        let _ = write!(out, "\\x{{{:X}}}", c as u32);
    }
}

/// A literal character in `regex`-crate syntax (outside classes).
fn push_literal(out: &mut String, c: char) {
    if c.is_whitespace() || c == '#' {
        // Would be ignored in verbose mode if written plainly.
        let _ = write!(out, "\\x{{{:X}}}", c as u32);
    } else {
        let mut buf = [0u8; 4];
        out.push_str(&regex::escape(c.encode_utf8(&mut buf)));
    }
}

/// Character source with look-ahead, over a pre-split char vector.
struct Cursor<'a> {
    chars: &'a [char],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(chars: &'a [char], pos: usize) -> Self {
        Cursor { chars, pos }
    }
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }
    fn peek_at(&self, off: usize) -> Option<char> {
        self.chars.get(self.pos + off).copied()
    }
    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }
    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    /// Take up to `max` characters satisfying `pred`.
    fn take_while(&mut self, max: usize, pred: impl Fn(char) -> bool) -> String {
        let mut s = String::new();
        while s.chars().count() < max {
            match self.peek() {
                Some(c) if pred(c) => {
                    s.push(c);
                    self.pos += 1;
                }
                _ => break,
            }
        }
        s
    }
}

/// What a backslash escape means in Python's `re` (shared by class and non-class context where
/// the meaning coincides).
enum PyEscape {
    Char(char),
    /// A category such as `\d`: its `regex` atom (outside classes) and class fragment.
    Category {
        atom: &'static str,
        frag: &'static str,
    },
}

/// Parse the escape whose backslash has just been consumed. `in_class` selects class-context
/// rules (`\b` is backspace, anchors are errors, no backreferences).
fn parse_escape(cur: &mut Cursor<'_>, in_class: bool) -> Result<PyEscape, TranslateError> {
    let Some(c) = cur.next() else {
        return Err("bad escape (end of pattern)".to_string());
    };
    let hex = |cur: &mut Cursor<'_>, n: usize, tag: char| -> Result<char, TranslateError> {
        let digits = cur.take_while(n, |d| d.is_ascii_hexdigit());
        if digits.chars().count() != n {
            return Err(format!("incomplete escape \\{tag}{digits}"));
        }
        let v = u32::from_str_radix(&digits, 16).map_err(|e| e.to_string())?;
        char::from_u32(v).ok_or_else(|| format!("bad escape \\{tag}{digits}"))
    };
    let cat = |atom, frag| PyEscape::Category { atom, frag };
    Ok(match c {
        'a' => PyEscape::Char('\x07'),
        'f' => PyEscape::Char('\x0c'),
        'n' => PyEscape::Char('\n'),
        'r' => PyEscape::Char('\r'),
        't' => PyEscape::Char('\t'),
        'v' => PyEscape::Char('\x0b'),
        '\\' => PyEscape::Char('\\'),
        'b' if in_class => PyEscape::Char('\x08'),
        'd' => cat(r"\d", r"\d"),
        'D' => cat(r"\D", r"\D"),
        'w' => cat(r"\w", r"\w"),
        'W' => cat(r"\W", r"\W"),
        // Python's `\s` (str.isspace) is Unicode White_Space plus U+001C..U+001F.
        's' => cat(r"[\s\x{1C}-\x{1F}]", r"\s\x{1C}-\x{1F}"),
        // Inside a class a nested negated class, which the regex crate unions.
        'S' => cat(r"[^\s\x{1C}-\x{1F}]", r"[^\s\x{1C}-\x{1F}]"),
        'x' => PyEscape::Char(hex(cur, 2, 'x')?),
        'u' => PyEscape::Char(hex(cur, 4, 'u')?),
        'U' => PyEscape::Char(hex(cur, 8, 'U')?),
        'N' => return Err("named Unicode escapes (\\N{...}) are not supported".to_string()),
        '0'..='7' => {
            // Octal: `\0`, `\0o`, `\0oo`; `\ooo` with three octal digits. In class context any
            // octal start is octal; outside classes `\1`..`\7` not followed by two more octal
            // digits is a backreference.
            let is_oct = |d: char| ('0'..='7').contains(&d);
            let three = cur.peek().is_some_and(is_oct) && cur.peek_at(1).is_some_and(is_oct);
            if c != '0' && !in_class && !three {
                return Err(format!(
                    "backreferences (\\{c}) are not supported by the regex engine"
                ));
            }
            let mut digits = String::from(c);
            digits.push_str(&cur.take_while(2, is_oct));
            let v = u32::from_str_radix(&digits, 8).map_err(|e| e.to_string())?;
            if v > 0o377 {
                return Err(format!(
                    "octal escape value \\{digits} outside of range 0-0o377"
                ));
            }
            PyEscape::Char(char::from_u32(v).expect("octal <= 0o377"))
        }
        '8' | '9' if in_class => return Err(format!("bad escape \\{c}")),
        '8' | '9' => {
            return Err(format!(
                "backreferences (\\{c}) are not supported by the regex engine"
            ))
        }
        c if c.is_ascii_alphabetic() => return Err(format!("bad escape \\{c}")),
        c => PyEscape::Char(c),
    })
}

/// Parse a Python character class; the cursor is just after the opening `[`. Consumes the
/// closing `]`.
fn parse_py_class(cur: &mut Cursor<'_>) -> Result<PyClass, TranslateError> {
    let negated = cur.eat('^');
    let mut items: Vec<ClassItem> = Vec::new();
    // Category escapes as written, used for the "bad character range" message.
    enum Member {
        Lit(char),
        Cat(&'static str),
    }
    let item_of = |cur: &mut Cursor<'_>, c: char| -> Result<(Member, String), TranslateError> {
        if c == '\\' {
            let start = cur.pos - 1;
            let esc = parse_escape(cur, true)?;
            let text: String = cur.chars[start..cur.pos].iter().collect();
            Ok(match esc {
                PyEscape::Char(ch) => (Member::Lit(ch), text),
                PyEscape::Category { frag, .. } => (Member::Cat(frag), text),
            })
        } else {
            Ok((Member::Lit(c), c.to_string()))
        }
    };
    loop {
        let Some(c) = cur.next() else {
            return Err("unterminated character set".to_string());
        };
        if c == ']' && !items.is_empty() {
            break;
        }
        let (first, first_text) = item_of(cur, c)?;
        if cur.eat('-') {
            let Some(c2) = cur.next() else {
                return Err("unterminated character set".to_string());
            };
            if c2 == ']' {
                push_member(&mut items, first);
                items.push(ClassItem::Range('-', '-'));
                break;
            }
            let (second, second_text) = item_of(cur, c2)?;
            match (first, second) {
                (Member::Lit(lo), Member::Lit(hi)) if lo <= hi => {
                    items.push(ClassItem::Range(lo, hi));
                }
                _ => return Err(format!("bad character range {first_text}-{second_text}")),
            }
        } else {
            push_member(&mut items, first);
        }
    }
    fn push_member(items: &mut Vec<ClassItem>, m: Member) {
        match m {
            Member::Lit(c) => items.push(ClassItem::Range(c, c)),
            Member::Cat(frag) => items.push(ClassItem::Category(frag)),
        }
    }
    Ok(PyClass { negated, items })
}

/// Parse a class body that *we* generated (from a glob bracket expression) as Python would.
fn class_from_python_text(body: &str) -> Result<PyClass, TranslateError> {
    let text: Vec<char> = format!("{body}]").chars().collect();
    let mut cur = Cursor::new(&text, 0);
    let class = parse_py_class(&mut cur)?;
    if cur.pos != text.len() {
        // Cannot happen for bodies produced by the glob translators; be loud if it does.
        return Err(format!("internal error: class body {body:?} ended early"));
    }
    Ok(class)
}

/// Locate the end of a glob bracket expression starting at `open` (the index of `[`). Returns
/// the index of the closing `]`, or `None` when the `[` is a literal.
fn glob_bracket_end(pat: &[char], open: usize) -> Option<usize> {
    let mut j = open + 1;
    if pat.get(j) == Some(&'!') {
        j += 1;
    }
    if pat.get(j) == Some(&']') {
        j += 1;
    }
    while j < pat.len() && pat[j] != ']' {
        j += 1;
    }
    (j < pat.len()).then_some(j)
}

/// Double every backslash (glob bracket contents have no escapes).
fn double_backslashes(s: &str) -> String {
    s.replace('\\', "\\\\")
}

/// Python-class text for an `fm:` bracket expression body `inner` (between `[` and `]`),
/// following CPython 3.11 `fnmatch.translate`: hyphens are range operators only at positions
/// where a range can start (never the first member, never right after another range's hyphen),
/// ranges whose ends are reversed are dropped together with both end points, other hyphens and
/// `& ~ |` are literal. Returns `None` for "matches nothing", `Some(None)` for "any character".
fn fnmatch_class_text(inner: &[char]) -> Option<Option<String>> {
    let body: String = inner.iter().collect();
    let mut stuff = if !body.contains('-') {
        double_backslashes(&body)
    } else {
        // Split into chunks at the hyphens that act as range operators.
        let mut chunks: Vec<String> = Vec::new();
        let mut start = 0usize;
        let mut search = if inner.first() == Some(&'!') { 2 } else { 1 };
        loop {
            let found = (search..inner.len()).find(|&k| inner[k] == '-');
            match found {
                Some(k) => {
                    chunks.push(inner[start..k].iter().collect());
                    start = k + 1;
                    search = k + 3;
                }
                None => break,
            }
        }
        let last: String = inner[start.min(inner.len())..].iter().collect();
        if last.is_empty() {
            chunks.last_mut().expect("a hyphen was found").push('-');
        } else {
            chunks.push(last);
        }
        // Drop reversed ranges (last char of one chunk > first char of the next), merging the
        // neighbours without the two end points; scan from the end as the chunks shrink.
        let mut k = chunks.len().saturating_sub(1);
        while k > 0 {
            let prev_last = chunks[k - 1].chars().last();
            let next_first = chunks[k].chars().next();
            if let (Some(a), Some(b)) = (prev_last, next_first) {
                if a > b {
                    let mut merged: String = {
                        let mut p = chunks[k - 1].clone();
                        p.pop();
                        p
                    };
                    merged.extend(chunks[k].chars().skip(1));
                    chunks[k - 1] = merged;
                    chunks.remove(k);
                }
            }
            k -= 1;
        }
        chunks
            .iter()
            .map(|c| double_backslashes(c).replace('-', "\\-"))
            .collect::<Vec<_>>()
            .join("-")
    };
    // Set operators are literal.
    let mut escaped = String::with_capacity(stuff.len());
    for c in stuff.chars() {
        if matches!(c, '&' | '~' | '|') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    stuff = escaped;
    if stuff.is_empty() {
        return None;
    }
    if stuff == "!" {
        return Some(None);
    }
    if let Some(rest) = stuff.strip_prefix('!') {
        stuff = format!("^{rest}");
    } else if stuff.starts_with('^') || stuff.starts_with('[') {
        stuff.insert(0, '\\');
    }
    Some(Some(stuff))
}

/// Translate a (fully prepared) `fm:` pattern into an anchored `regex`-crate pattern with the
/// meaning of CPython 3.11 `fnmatch.translate` used with `re.match`: `*` is any run of
/// characters (including `/` and newlines), `?` any one character, `[...]`/`[!...]` sets,
/// everything else literal.
pub(super) fn translate_fnmatch(pattern: &str) -> Result<String, TranslateError> {
    let pat: Vec<char> = pattern.chars().collect();
    let mut out = String::from("^(?s:");
    let mut i = 0;
    let mut last_was_star = false;
    while i < pat.len() {
        let c = pat[i];
        i += 1;
        if c == '*' {
            if !last_was_star {
                out.push_str(".*");
            }
            last_was_star = true;
            continue;
        }
        last_was_star = false;
        match c {
            '?' => out.push('.'),
            '[' => match glob_bracket_end(&pat, i - 1) {
                None => out.push_str("\\["),
                Some(end) => {
                    match fnmatch_class_text(&pat[i..end]) {
                        None => out.push_str("[^\\x{0}-\\x{10FFFF}]"),
                        Some(None) => out.push('.'),
                        Some(Some(text)) => {
                            out.push_str(&class_from_python_text(&text)?.to_regex())
                        }
                    }
                    i = end + 1;
                }
            },
            c => push_literal(&mut out, c),
        }
    }
    out.push_str(")\\z");
    Ok(out)
}

/// Translate a (fully prepared) `sh:` pattern into an anchored `regex`-crate pattern with the
/// meaning of borg's shell-pattern translator: `**/` is zero or more whole directory levels,
/// any other `*` is a run of non-`/` characters, `?` one non-`/` character, `[...]`/`[!...]`
/// sets (which *may* match `/`), everything else literal.
pub(super) fn translate_shell(pattern: &str) -> Result<String, TranslateError> {
    let pat: Vec<char> = pattern.chars().collect();
    let mut out = String::from("^(?s:");
    let mut i = 0;
    while i < pat.len() {
        let c = pat[i];
        i += 1;
        match c {
            '*' => {
                if pat.get(i) == Some(&'*') && pat.get(i + 1) == Some(&'/') {
                    out.push_str("(?:[^/]*/)*");
                    i += 2;
                } else {
                    out.push_str("[^/]*");
                }
            }
            '?' => out.push_str("[^/]"),
            '[' => match glob_bracket_end(&pat, i - 1) {
                None => out.push_str("\\["),
                Some(end) => {
                    let inner: String = pat[i..end].iter().collect();
                    let mut stuff = double_backslashes(&inner);
                    if let Some(rest) = stuff.strip_prefix('!') {
                        stuff = format!("^{rest}");
                    } else if stuff.starts_with('^') {
                        stuff.insert(0, '\\');
                    }
                    out.push_str(&class_from_python_text(&stuff)?.to_regex());
                    i = end + 1;
                }
            },
            c => push_literal(&mut out, c),
        }
    }
    out.push_str(")\\z");
    Ok(out)
}

/// Rewrite a Python `re` pattern into `regex`-crate syntax with the same meaning where the
/// `regex` crate can express it.
///
/// Handled: `\Z` → `\z`; Python's literal-`{` rule (a `{` that does not start a valid
/// `{m}`, `{m,}`, `{,n}`, `{m,n}` quantifier is literal) and `{,n}` → `{0,n}`; character
/// classes are re-parsed with Python's rules (a `[` inside a class, `&&`, `--`, `~~` are
/// literals in Python); `\s`/`\S` include U+001C..U+001F as in Python; octal escapes; `\b`
/// inside a class is backspace; escaped non-ASCII characters and punctuation are literals
/// (Python's `\<` is `<`, not a word boundary); `(?#...)` comments are dropped; Python's
/// `$` before a final newline where only `)`/`|` follow; Python's errors for repeating nothing
/// or an anchor, repeating a repeat, global flags after the start, unknown `(?...)` forms and
/// bad escapes such as `\p`.
///
/// Rejected with an error (the `regex` crate has no equivalent): backreferences (`\1`,
/// `(?P=name)`), look-ahead/look-behind (`(?=`, `(?!`, `(?<=`, `(?<!`), atomic groups `(?>`,
/// conditionals `(?(`, possessive quantifiers, `\N{...}`, the `a`/`L` flags.
pub(super) fn translate_python_regex(pattern: &str) -> Result<String, TranslateError> {
    /// What the previous item was, for Python's repeat rules.
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Prev {
        /// Start of the pattern, of a group or of an alternative.
        Nothing,
        /// Something repeatable.
        Atom,
        /// An anchor (`^ $ \A \Z \b \B`): "nothing to repeat".
        Anchor,
        /// A quantifier (`? + *` or `{..}`); `?` may still follow to make it lazy.
        Greedy,
        /// A lazy quantifier; nothing may follow.
        Lazy,
    }
    let chars: Vec<char> = pattern.chars().collect();
    let mut cur = Cursor::new(&chars, 0);
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut prev = Prev::Nothing;
    // Python only accepts global flags `(?i)` before anything else.
    let mut seen_content = false;
    let mut verbose = false;
    // Whether any flag group turns on MULTILINE (then `$` keeps the regex crate's meaning,
    // which equals Python's multiline `$`).
    let multiline = pattern.match_indices("(?").any(|(i, _)| {
        pattern[i + 2..]
            .chars()
            .take_while(|f| "aiLmsux-".contains(*f))
            .any(|f| f == 'm')
    });
    let quantifier = |prev: Prev, q: &str| -> Result<Prev, TranslateError> {
        match prev {
            Prev::Atom => Ok(Prev::Greedy),
            Prev::Greedy if q == "?" => Ok(Prev::Lazy),
            Prev::Greedy if q == "+" => {
                Err("possessive quantifiers are not supported by the regex engine".to_string())
            }
            Prev::Greedy | Prev::Lazy => Err("multiple repeat".to_string()),
            Prev::Nothing | Prev::Anchor => Err("nothing to repeat".to_string()),
        }
    };
    while let Some(c) = cur.next() {
        if verbose && (c.is_whitespace() || c == '#') {
            // Verbose mode: whitespace and `#` comments are not items (the regex crate agrees).
            if c == '#' {
                while let Some(x) = cur.next() {
                    if x == '\n' {
                        break;
                    }
                }
                out.push('\n');
            } else {
                out.push(c);
            }
            continue;
        }
        let is_global_flags = c == '(' && {
            let mut k = cur.pos;
            if chars.get(k) == Some(&'?') {
                k += 1;
                let start = k;
                while chars.get(k).is_some_and(|f| "aiLmsux".contains(*f)) {
                    k += 1;
                }
                k > start && chars.get(k) == Some(&')')
            } else {
                false
            }
        };
        let is_comment = c == '(' && cur.peek() == Some('?') && cur.peek_at(1) == Some('#');
        if !is_global_flags && !is_comment {
            seen_content = true;
        }
        match c {
            '\\' => {
                // Anchors and boundaries first (only meaningful outside classes).
                match cur.peek() {
                    Some('Z') => {
                        cur.next();
                        out.push_str("\\z");
                        prev = Prev::Anchor;
                        continue;
                    }
                    Some(a @ ('A' | 'b' | 'B')) => {
                        cur.next();
                        out.push('\\');
                        out.push(a);
                        prev = Prev::Anchor;
                        continue;
                    }
                    _ => {}
                }
                match parse_escape(&mut cur, false)? {
                    PyEscape::Char(ch) => push_literal(&mut out, ch),
                    PyEscape::Category { atom, .. } => out.push_str(atom),
                }
                prev = Prev::Atom;
            }
            '[' => {
                let class = parse_py_class(&mut cur)?;
                out.push_str(&class.to_regex());
                prev = Prev::Atom;
            }
            '{' => {
                let save = cur.pos;
                let lo = cur.take_while(usize::MAX, |d| d.is_ascii_digit());
                let (hi, comma) = if cur.eat(',') {
                    (cur.take_while(usize::MAX, |d| d.is_ascii_digit()), true)
                } else {
                    (lo.clone(), false)
                };
                if (lo.is_empty() && !comma) || !cur.eat('}') {
                    cur.pos = save;
                    out.push_str("\\{");
                    prev = Prev::Atom;
                    continue;
                }
                prev = quantifier(prev, "{")?;
                let min = if lo.is_empty() { "0" } else { lo.as_str() };
                if !hi.is_empty() {
                    let (a, b) = (min.parse::<u64>(), hi.parse::<u64>());
                    if let (Ok(a), Ok(b)) = (a, b) {
                        if b < a {
                            return Err("min repeat greater than max repeat".to_string());
                        }
                    }
                }
                if comma {
                    let _ = write!(out, "{{{min},{hi}}}");
                } else {
                    let _ = write!(out, "{{{min}}}");
                }
            }
            '*' | '+' | '?' => {
                prev = quantifier(prev, &c.to_string())?;
                out.push(c);
            }
            '$' if !multiline
                && chars[cur.pos..]
                    .iter()
                    .take_while(|&&x| x != '|')
                    .all(|&x| x == ')') =>
            {
                // Python's `$` also matches before a final newline. Where nothing but group ends
                // follows, consuming that newline is equivalent and expressible.
                out.push_str("(?:\\n?\\z)");
                prev = Prev::Anchor;
            }
            '^' | '$' => {
                out.push(c);
                prev = Prev::Anchor;
            }
            '|' => {
                out.push(c);
                prev = Prev::Nothing;
            }
            ')' => {
                out.push(c);
                prev = Prev::Atom;
            }
            '}' => {
                out.push_str("\\}");
                prev = Prev::Atom;
            }
            '(' if cur.peek() == Some('?') => {
                let rest: String = chars[cur.pos..].iter().take(4).collect();
                if rest.starts_with("?#") {
                    // Comment group: skip to the first ')'; it is not an item.
                    loop {
                        match cur.next() {
                            None => return Err("missing ), unterminated comment".to_string()),
                            Some(')') => break,
                            Some(_) => {}
                        }
                    }
                    continue;
                }
                let unsupported = [
                    ("?P=", "named backreferences (?P=...)"),
                    ("?=", "look-ahead assertions (?=...)"),
                    ("?!", "negative look-ahead assertions (?!...)"),
                    ("?<=", "look-behind assertions (?<=...)"),
                    ("?<!", "negative look-behind assertions (?<!...)"),
                    ("?>", "atomic groups (?>...)"),
                    ("?(", "conditional groups (?(...)...)"),
                ];
                if let Some((_, what)) = unsupported.iter().find(|(p, _)| rest.starts_with(p)) {
                    return Err(format!("{what} are not supported by the regex engine"));
                }
                // Copy the group opener up to and including `:`, `>` (named group) or `)`.
                out.push('(');
                let mut opener = String::new();
                while let Some(x) = cur.next() {
                    opener.push(x);
                    if x == ':' || x == ')' || (x == '>' && opener.starts_with("?P<")) {
                        break;
                    }
                }
                let flags_ok = |f: &str| f.chars().all(|x| "aiLmsux-".contains(x));
                let body = opener.strip_prefix('?').unwrap_or(&opener);
                let valid = body.starts_with("P<")
                    || body
                        .strip_suffix(':')
                        .or_else(|| body.strip_suffix(')'))
                        .is_some_and(flags_ok);
                if !valid {
                    let shown: String = opener.chars().take(3).collect();
                    return Err(format!("unknown extension {shown}"));
                }
                if is_global_flags {
                    if seen_content {
                        return Err("global flags not at the start of the expression".to_string());
                    }
                    if opener.contains('x') {
                        verbose = true;
                    }
                    if opener.contains('a') || opener.contains('L') {
                        return Err(
                            "the ASCII (?a) and LOCALE (?L) flags are not supported".to_string()
                        );
                    }
                } else {
                    prev = Prev::Nothing;
                }
                out.push_str(&opener);
            }
            '(' => {
                out.push(c);
                prev = Prev::Nothing;
            }
            c => {
                out.push(c);
                prev = Prev::Atom;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normpath_like_python() {
        for (inp, exp) in [
            ("", "."),
            (".", "."),
            ("/", "/"),
            ("//", "//"),
            ("///", "/"),
            ("//a//b/", "//a/b"),
            ("a/./b/", "a/b"),
            ("a/../b", "b"),
            ("../a", "../a"),
            ("../../a/..", "../.."),
            ("/../a", "/a"),
            ("a/b/../../..", ".."),
            ("a/..", "."),
            ("*/../x", "x"),
        ] {
            assert_eq!(normpath(inp), exp, "normpath({inp:?})");
        }
    }

    #[test]
    fn fnmatch_classes() {
        let t = |p: &str| translate_fnmatch(p).unwrap();
        assert_eq!(t("a*b"), r"^(?s:a.*b)\z");
        assert_eq!(t("a**?"), r"^(?s:a.*.)\z");
        assert_eq!(t("[z-a]"), r"^(?s:[^\x{0}-\x{10FFFF}])\z");
        assert_eq!(t("[!z-a]"), r"^(?s:.)\z");
        assert_eq!(t("[a-"), r"^(?s:\[a\-)\z");
        assert_eq!(t("[]]"), r"^(?s:[\x{5D}])\z");
        assert_eq!(t("[!]]"), r"^(?s:[^\x{5D}])\z");
        assert_eq!(t("[a-c-e]"), r"^(?s:[a-c\x{2D}e])\z");
    }

    #[test]
    fn python_regex_rewrites() {
        let t = |p: &str| translate_python_regex(p);
        assert_eq!(t(r"a\Z").unwrap(), r"a\z");
        assert_eq!(t(r"a{").unwrap(), r"a\{");
        assert_eq!(t(r"a{,2}").unwrap(), r"a{0,2}");
        assert_eq!(
            t(r"a{2,1}").unwrap_err(),
            "min repeat greater than max repeat"
        );
        assert_eq!(t(r"[[]").unwrap(), r"[\x{5B}]");
        assert_eq!(t(r"x(?#c[)y").unwrap(), r"xy");
        assert_eq!(t(r"\<").unwrap(), r"<");
        assert!(t(r"(a)\1").is_err());
        assert!(t(r"(?=a)").is_err());
        assert!(t(r"\q").is_err());
    }
}
