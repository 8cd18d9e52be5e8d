//! Placeholders (`borg help placeholders`), borg's `format_line`, and archive-name globs.
//!
//! borg expands `{hostname}`, `{now:%Y-%m-%d}`, … with Python's `str.format_map` after checking
//! every field name against the known keys. This module reimplements the parts of Python's
//! format machinery borg exposes: the format-string grammar (`{{`/`}}`, `{key!conv:spec}`,
//! nested `{…}` inside specs), the standard format-spec mini-language for `str` and `int`
//! values (fill/align/sign/`#`/`0`/width/grouping/precision/type), and `datetime` values whose
//! spec is a `strftime` format. [`format_line`] is generic so that `list --format` can reuse it
//! with its own keys; [`replace_placeholders`] supplies borg's placeholder keys.
//!
//! Archive globs (`-a/--glob-archives`, `-P/--prefix`) are borg's `shellpattern.translate`
//! matched against the whole archive name: see [`ArchiveGlob`].

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use regex::Regex;

use crate::cli::timefmt::{self, LocalZone, PyDateTime, SystemZone};
use crate::pyrepr::py_repr;

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// borg's placeholder / format errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlaceholderError {
    /// borg `InvalidPlaceholder` (exit code 2, modern 6): unknown key or a `!conversion`.
    #[error("Invalid placeholder \"{key}\" in string: {text}")]
    InvalidPlaceholder {
        /// The offending field name.
        key: String,
        /// The whole format string.
        text: String,
    },
    /// borg `PlaceholderError` (exit code 2, modern 5): `format_map` raised. `data` is the Python
    /// repr of the data dict, `class`/`message` the Python exception.
    #[error("Formatting Error: \"{text}\".format({data}): {class}({message})")]
    Formatting {
        /// The whole format string.
        text: String,
        /// Python repr of the placeholder dict.
        data: String,
        /// Python exception class name (`ValueError`, `KeyError`, …).
        class: String,
        /// `str()` of the exception.
        message: String,
    },
    /// The format string itself is malformed (Python's bare `ValueError`, which borg does not
    /// wrap). borg reports it through argparse: for `--glob-archives`/`--prefix`/`--comment`
    /// as `invalid replace_placeholders value: '<text>'`, for locations as the bare message
    /// (see [`PlaceholderError::argparse_text`]).
    #[error("{message}")]
    Syntax {
        /// The whole format string.
        text: String,
        /// Python's message, e.g. `Single '}' encountered in format string`.
        message: String,
    },
}

impl PlaceholderError {
    /// borg's modern exit code (`BORG_EXIT_CODES=modern`); legacy is always 2.
    pub fn exit_mcode(&self) -> i32 {
        match self {
            PlaceholderError::InvalidPlaceholder { .. } => 6,
            PlaceholderError::Formatting { .. } => 5,
            PlaceholderError::Syntax { .. } => 2,
        }
    }

    /// What argparse prints after `argument X: ` for a syntax error in an option whose type
    /// is `replace_placeholders` (`-a`, `-P`, `--comment`), or `None` for the other errors
    /// (which borg prints as plain error messages).
    pub fn argparse_text(&self) -> Option<String> {
        match self {
            PlaceholderError::Syntax { text, .. } => Some(format!(
                "invalid replace_placeholders value: {}",
                py_repr(text)
            )),
            _ => None,
        }
    }
}

/// A Python exception raised while formatting: (class name, message).
#[derive(Debug, Clone, PartialEq, Eq)]
struct PyErr {
    class: &'static str,
    message: String,
}

fn value_error(message: impl Into<String>) -> PyErr {
    PyErr {
        class: "ValueError",
        message: message.into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------------

/// A value that can be substituted into a format string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormatValue {
    /// A Python `str` (default alignment left).
    Str(String),
    /// A Python `int` (default alignment right; `d b o x X c n e f g %` …).
    Int(i64),
    /// A datetime-like object: the format spec is a `strftime` format; an empty spec renders
    /// `default_format`.
    Time {
        /// The datetime value.
        dt: PyDateTime,
        /// Format used for `{key}` / `{key:}`.
        default_format: &'static str,
        /// Python class, shown in reprs (`<class object at 0x…>`).
        class_name: &'static str,
        /// Whether `str(value)` is the default rendering (`OutputTimestamp`) or the object repr
        /// (`DatetimeWrapper`).
        str_is_default: bool,
    },
}

impl FormatValue {
    /// borg's `DatetimeWrapper` (used for `{now}`/`{utcnow}`): default `%Y-%m-%dT%H:%M:%S`.
    pub fn datetime_wrapper(dt: PyDateTime) -> Self {
        FormatValue::Time {
            dt,
            default_format: timefmt::ISO_FORMAT_NO_USECS,
            class_name: "borg.helpers.parseformat.DatetimeWrapper",
            str_is_default: false,
        }
    }

    /// borg's `OutputTimestamp` (used by `list --format` time keys): naive local time, default
    /// `%a, %Y-%m-%d %H:%M:%S`.
    pub fn output_timestamp(ts: DateTime<Utc>) -> Self {
        Self::output_timestamp_in(ts, &SystemZone)
    }

    /// [`FormatValue::output_timestamp`] in an explicit zone.
    pub fn output_timestamp_in(ts: DateTime<Utc>, zone: &dyn LocalZone) -> Self {
        FormatValue::Time {
            dt: PyDateTime::naive(timefmt::to_localtime_in(ts, zone)),
            default_format: timefmt::TEXT_FORMAT,
            class_name: "borg.helpers.time.OutputTimestamp",
            str_is_default: true,
        }
    }

    fn object_repr(&self, class_name: &str) -> String {
        // Python shows id(); any stable-looking address does.
        let addr = 0x7f00_0000_0000usize | ((self as *const _ as usize) & 0xff_ffff_fff0);
        format!("<{class_name} object at {addr:#x}>")
    }

    /// Python `repr()` of the value (used in `PlaceholderError` texts and `!r`).
    pub fn py_repr(&self) -> String {
        match self {
            FormatValue::Str(s) => py_repr(s),
            FormatValue::Int(i) => i.to_string(),
            FormatValue::Time { class_name, .. } => self.object_repr(class_name),
        }
    }

    /// Python `str()` of the value (`!s`).
    pub fn py_str(&self) -> String {
        match self {
            FormatValue::Str(s) => s.clone(),
            FormatValue::Int(i) => i.to_string(),
            FormatValue::Time {
                dt,
                default_format,
                class_name,
                str_is_default,
            } => {
                if *str_is_default {
                    dt.strftime(default_format)
                } else {
                    self.object_repr(class_name)
                }
            }
        }
    }

    /// Python `format(value, spec)`.
    fn py_format(&self, spec: &str) -> Result<String, PyErr> {
        match self {
            FormatValue::Str(s) => format_str(s, spec),
            FormatValue::Int(i) => format_int(*i, spec),
            FormatValue::Time {
                dt, default_format, ..
            } => {
                if spec.is_empty() {
                    Ok(dt.strftime(default_format))
                } else {
                    Ok(dt.strftime(spec))
                }
            }
        }
    }
}

impl From<&str> for FormatValue {
    fn from(s: &str) -> Self {
        FormatValue::Str(s.to_string())
    }
}
impl From<String> for FormatValue {
    fn from(s: String) -> Self {
        FormatValue::Str(s)
    }
}
impl From<i64> for FormatValue {
    fn from(i: i64) -> Self {
        FormatValue::Int(i)
    }
}

/// An ordered key → value mapping (a Python dict: insertion order, replace in place).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FormatData {
    entries: Vec<(String, FormatValue)>,
}

impl FormatData {
    /// An empty mapping.
    pub fn new() -> Self {
        Self::default()
    }
    /// Set `key` (keeps its position if it already exists, like a dict).
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<FormatValue>) {
        let key = key.into();
        let value = value.into();
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.entries.push((key, value)),
        }
    }
    /// Look up a key.
    pub fn get(&self, key: &str) -> Option<&FormatValue> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
    /// Whether the key exists.
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }
    /// Keys in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| k.as_str())
    }
    /// Python `repr()` of the dict.
    pub fn py_repr(&self) -> String {
        let mut out = String::from("{");
        for (i, (k, v)) in self.entries.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            let _ = write!(out, "{}: {}", py_repr(k), v.py_repr());
        }
        out.push('}');
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Format string grammar (CPython's MarkupIterator)
// ---------------------------------------------------------------------------------------------

/// One replacement field `{name!conversion:spec}`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Field<'a> {
    name: &'a str,
    conversion: Option<char>,
    spec: &'a str,
    spec_needs_expanding: bool,
}

/// Iterates a format string as `(literal, Option<field>)` pairs, like `Formatter().parse`.
struct Markup<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Markup<'a> {
    fn new(s: &'a str) -> Self {
        Markup { s, pos: 0 }
    }

    fn peek(&self) -> Option<char> {
        self.s[self.pos..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    #[allow(clippy::type_complexity)]
    fn next_item(&mut self) -> Option<Result<(&'a str, Option<Field<'a>>), String>> {
        if self.pos >= self.s.len() {
            return None;
        }
        let start = self.pos;
        let mut brace = None;
        while let Some(c) = self.bump() {
            if c == '{' || c == '}' {
                brace = Some(c);
                break;
            }
        }
        let Some(c) = brace else {
            return Some(Ok((&self.s[start..self.pos], None)));
        };
        let at_end = self.pos >= self.s.len();
        if c == '}' && (at_end || self.peek() != Some('}')) {
            return Some(Err("Single '}' encountered in format string".into()));
        }
        if at_end && c == '{' {
            return Some(Err("Single '{' encountered in format string".into()));
        }
        if self.peek() == Some(c) {
            let lit = &self.s[start..self.pos];
            self.pos += 1;
            return Some(Ok((lit, None)));
        }
        let lit = &self.s[start..self.pos - 1];
        Some(self.parse_field().map(|f| (lit, Some(f))))
    }

    fn parse_field(&mut self) -> Result<Field<'a>, String> {
        let name_start = self.pos;
        let mut last = None;
        let mut terminator = None;
        while let Some(c) = self.bump() {
            last = Some(c);
            match c {
                '{' => return Err("unexpected '{' in field name".into()),
                '[' => {
                    while let Some(c2) = self.peek() {
                        if c2 == ']' {
                            break;
                        }
                        self.pos += c2.len_utf8();
                    }
                }
                '}' | ':' | '!' => {
                    terminator = Some(c);
                    break;
                }
                _ => {}
            }
        }
        let _ = last;
        let Some(mut c) = terminator else {
            return Err("expected '}' before end of string".into());
        };
        let name = &self.s[name_start..self.pos - 1];
        let mut conversion = None;
        if c == '!' {
            let Some(conv) = self.bump() else {
                return Err("end of string while looking for conversion specifier".into());
            };
            conversion = Some(conv);
            match self.bump() {
                None => return Err("unmatched '{' in format spec".into()),
                Some(c2) if c2 == ':' || c2 == '}' => c = c2,
                Some(_) => return Err("expected ':' after conversion specifier".into()),
            }
        }
        if c == '}' {
            return Ok(Field {
                name,
                conversion,
                spec: "",
                spec_needs_expanding: false,
            });
        }
        let spec_start = self.pos;
        let mut count = 1;
        let mut expand = false;
        while let Some(c) = self.bump() {
            match c {
                '{' => {
                    expand = true;
                    count += 1;
                }
                '}' => {
                    count -= 1;
                    if count == 0 {
                        return Ok(Field {
                            name,
                            conversion,
                            spec: &self.s[spec_start..self.pos - 1],
                            spec_needs_expanding: expand,
                        });
                    }
                }
                _ => {}
            }
        }
        Err("unmatched '{' in format spec".into())
    }
}

/// Python's `str.format_map(data)` with CPython's recursion limit (`depth` starts at 2).
fn format_map(s: &str, data: &FormatData, depth: u32) -> Result<String, PyErr> {
    if depth == 0 {
        return Err(value_error("Max string recursion exceeded"));
    }
    let mut out = String::new();
    let mut it = Markup::new(s);
    while let Some(item) = it.next_item() {
        let (lit, field) = item.map_err(value_error)?;
        out.push_str(lit);
        let Some(field) = field else { continue };
        // get_field_object: the part before '.'/'[' is the key; empty or numeric = positional.
        let first_end = field.name.find(['.', '[']).unwrap_or(field.name.len());
        let first = &field.name[..first_end];
        if first.is_empty() || first.chars().all(|c| timefmt::py_decimal(c).is_some()) {
            return Err(value_error("Format string contains positional fields"));
        }
        let Some(value) = data.get(first) else {
            return Err(PyErr {
                class: "KeyError",
                message: py_repr(first),
            });
        };
        if first_end != field.name.len() {
            return Err(PyErr {
                class: "NotImplementedError",
                message: "attribute/index access in format fields is not supported".into(),
            });
        }
        let converted;
        let value = match field.conversion {
            None => value,
            Some(conv) => {
                converted = FormatValue::Str(match conv {
                    'r' => value.py_repr(),
                    's' => value.py_str(),
                    'a' => py_ascii(&value.py_repr()),
                    other => {
                        return Err(value_error(
                            if (other as u32) > 32 && (other as u32) < 127 {
                                format!("Unknown conversion specifier {other}")
                            } else {
                                format!("Unknown conversion specifier \\x{:x}", other as u32)
                            },
                        ))
                    }
                });
                &converted
            }
        };
        let spec = if field.spec_needs_expanding {
            format_map(field.spec, data, depth - 1)?
        } else {
            field.spec.to_string()
        };
        out.push_str(&value.py_format(&spec)?);
    }
    Ok(out)
}

/// Python `ascii()` applied to a repr: escape every non-ASCII code point.
fn py_ascii(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        let u = c as u32;
        if u < 0x80 {
            out.push(c);
        } else if u <= 0xff {
            let _ = write!(out, "\\x{u:02x}");
        } else if u <= 0xffff {
            let _ = write!(out, "\\u{u:04x}");
        } else {
            let _ = write!(out, "\\U{u:08x}");
        }
    }
    out
}

/// borg's `format_line(format, data)`: every field must name a key of `data` and carry no
/// `!conversion` (else [`PlaceholderError::InvalidPlaceholder`]), then `format.format_map(data)`
/// (failures become [`PlaceholderError::Formatting`]). Malformed format strings give
/// [`PlaceholderError::Syntax`]. Fields are checked in order, so an invalid key before a syntax
/// error wins, as in borg.
pub fn format_line(format: &str, data: &FormatData) -> Result<String, PlaceholderError> {
    let mut it = Markup::new(format);
    while let Some(item) = it.next_item() {
        match item {
            Err(message) => {
                return Err(PlaceholderError::Syntax {
                    text: format.to_string(),
                    message,
                })
            }
            Ok((_, Some(field))) if !field.name.is_empty() => {
                if field.conversion.is_some() || !data.contains_key(field.name) {
                    return Err(PlaceholderError::InvalidPlaceholder {
                        key: field.name.to_string(),
                        text: format.to_string(),
                    });
                }
            }
            Ok(_) => {}
        }
    }
    format_map(format, data, 2).map_err(|e| PlaceholderError::Formatting {
        text: format.to_string(),
        data: data.py_repr(),
        class: e.class.to_string(),
        message: e.message,
    })
}

// ---------------------------------------------------------------------------------------------
// Standard format spec mini-language
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Spec {
    fill: char,
    align: char,
    sign: Option<char>,
    no_neg_0: bool,
    alternate: bool,
    width: i64,
    grouping: Option<char>,
    group4: bool,
    precision: i64,
    ty: char,
}

/// Refuse absurd widths/precisions instead of allocating gigabytes (Python: MemoryError).
const MAX_WIDTH: i64 = 1 << 24;

fn parse_spec(
    spec: &str,
    default_type: char,
    default_align: char,
    type_name: &str,
) -> Result<Spec, PyErr> {
    let c: Vec<char> = spec.chars().collect();
    let end = c.len();
    let mut pos = 0;
    let is_align = |ch: char| matches!(ch, '<' | '>' | '=' | '^');
    let mut sp = Spec {
        fill: ' ',
        align: default_align,
        sign: None,
        no_neg_0: false,
        alternate: false,
        width: -1,
        grouping: None,
        group4: false,
        precision: -1,
        ty: default_type,
    };
    let mut fill_specified = false;
    let mut align_specified = false;
    if end - pos >= 2 && is_align(c[pos + 1]) {
        sp.align = c[pos + 1];
        sp.fill = c[pos];
        fill_specified = true;
        align_specified = true;
        pos += 2;
    } else if end - pos >= 1 && is_align(c[pos]) {
        sp.align = c[pos];
        align_specified = true;
        pos += 1;
    }
    if pos < end && matches!(c[pos], '+' | '-' | ' ') {
        sp.sign = Some(c[pos]);
        pos += 1;
    }
    if pos < end && c[pos] == 'z' {
        sp.no_neg_0 = true;
        pos += 1;
    }
    if pos < end && c[pos] == '#' {
        sp.alternate = true;
        pos += 1;
    }
    if !fill_specified && pos < end && c[pos] == '0' {
        sp.fill = '0';
        if !align_specified && default_align == '>' {
            sp.align = '=';
        }
        pos += 1;
    }
    let get_integer = |pos: &mut usize| -> Result<Option<i64>, PyErr> {
        let mut acc: i64 = 0;
        let mut n = 0;
        while let Some(d) = c.get(*pos).and_then(|&ch| timefmt::py_decimal(ch)) {
            let d = d as i64;
            if acc > (i64::MAX - d) / 10 {
                return Err(value_error("Too many decimal digits in format string"));
            }
            acc = acc * 10 + d;
            *pos += 1;
            n += 1;
        }
        Ok(if n == 0 { None } else { Some(acc) })
    };
    if let Some(w) = get_integer(&mut pos)? {
        sp.width = w;
    }
    if pos < end && c[pos] == ',' {
        sp.grouping = Some(',');
        pos += 1;
    }
    if pos < end && c[pos] == '_' {
        if sp.grouping.is_some() {
            return Err(value_error("Cannot specify both ',' and '_'."));
        }
        sp.grouping = Some('_');
        pos += 1;
    }
    if pos < end && c[pos] == ',' && sp.grouping == Some('_') {
        return Err(value_error("Cannot specify both ',' and '_'."));
    }
    if pos < end && c[pos] == '.' {
        pos += 1;
        match get_integer(&mut pos)? {
            Some(p) => sp.precision = p,
            None => return Err(value_error("Format specifier missing precision")),
        }
    }
    if end - pos > 1 {
        return Err(value_error(format!(
            "Invalid format specifier '{spec}' for object of type '{type_name}'"
        )));
    }
    if end - pos == 1 {
        sp.ty = c[pos];
    }
    if let Some(g) = sp.grouping {
        match sp.ty {
            'd' | 'e' | 'f' | 'g' | 'E' | 'G' | '%' | 'F' => {}
            'b' | 'o' | 'x' | 'X' if g == '_' => sp.group4 = true,
            t => {
                return Err(value_error(format!(
                    "Cannot specify '{g}' with '{}'.",
                    printable_code(t)
                )))
            }
        }
    }
    if sp.width > MAX_WIDTH || sp.precision > MAX_WIDTH {
        return Err(PyErr {
            class: "MemoryError",
            message: String::new(),
        });
    }
    Ok(sp)
}

/// How CPython puts a type character into messages (`'x'`, or `'\x1f'` outside 33..127).
fn printable_code(t: char) -> String {
    if (t as u32) > 32 && (t as u32) < 128 {
        t.to_string()
    } else {
        format!("\\x{:x}", t as u32)
    }
}

fn unknown_code(t: char, type_name: &str) -> PyErr {
    value_error(format!(
        "Unknown format code '{}' for object of type '{type_name}'",
        printable_code(t)
    ))
}

/// Python `format(str, spec)`.
fn format_str(s: &str, spec: &str) -> Result<String, PyErr> {
    if spec.is_empty() {
        return Ok(s.to_string());
    }
    let sp = parse_spec(spec, 's', '<', "str")?;
    if sp.ty != 's' {
        return Err(unknown_code(sp.ty, "str"));
    }
    match sp.sign {
        Some(' ') => return Err(value_error("Space not allowed in string format specifier")),
        Some(_) => return Err(value_error("Sign not allowed in string format specifier")),
        None => {}
    }
    if sp.no_neg_0 {
        return Err(value_error(
            "Negative zero coercion (z) not allowed in string format specifier",
        ));
    }
    if sp.alternate {
        return Err(value_error(
            "Alternate form (#) not allowed in string format specifier",
        ));
    }
    if sp.align == '=' {
        return Err(value_error(
            "'=' alignment not allowed in string format specifier",
        ));
    }
    let mut body: Vec<char> = s.chars().collect();
    if sp.precision >= 0 && body.len() as i64 > sp.precision {
        body.truncate(sp.precision as usize);
    }
    let len = body.len() as i64;
    let total = if sp.width > len { sp.width } else { len };
    let left = match sp.align {
        '>' => total - len,
        '^' => (total - len) / 2,
        _ => 0,
    };
    let right = total - len - left;
    let mut out = String::new();
    out.extend(std::iter::repeat_n(sp.fill, left as usize));
    out.extend(body);
    out.extend(std::iter::repeat_n(sp.fill, right as usize));
    Ok(out)
}

/// Python `format(int, spec)`.
fn format_int(v: i64, spec: &str) -> Result<String, PyErr> {
    if spec.is_empty() {
        return Ok(v.to_string());
    }
    let sp = parse_spec(spec, 'd', '>', "int")?;
    match sp.ty {
        'b' | 'c' | 'd' | 'o' | 'x' | 'X' | 'n' => format_long(v, &sp),
        'e' | 'E' | 'f' | 'F' | 'g' | 'G' | '%' => format_float(v as f64, &sp),
        t => Err(unknown_code(t, "int")),
    }
}

fn format_long(v: i64, sp: &Spec) -> Result<String, PyErr> {
    if sp.precision != -1 {
        return Err(value_error(
            "Precision not allowed in integer format specifier",
        ));
    }
    if sp.no_neg_0 {
        return Err(value_error(
            "Negative zero coercion (z) not allowed in integer format specifier",
        ));
    }
    let negative = v < 0;
    if sp.ty == 'c' {
        if sp.sign.is_some() {
            return Err(value_error(
                "Sign not allowed with integer format specifier 'c'",
            ));
        }
        if sp.alternate {
            return Err(value_error(
                "Alternate form (#) not allowed with integer format specifier 'c'",
            ));
        }
        let ch = u32::try_from(v)
            .ok()
            .filter(|&u| u <= 0x10ffff)
            .and_then(char::from_u32);
        let Some(ch) = ch.or_else(|| {
            // Lone surrogates are valid Python code points but not Rust chars.
            (0xd800..=0xdfff).contains(&v).then_some('\u{fffd}')
        }) else {
            return Err(PyErr {
                class: "OverflowError",
                message: "%c arg not in range(0x110000)".into(),
            });
        };
        return Ok(fill_number(None, sp, "", "", &ch.to_string(), None));
    }
    let a = v.unsigned_abs();
    let (digits, prefix) = match sp.ty {
        'b' => (format!("{a:b}"), "0b"),
        'o' => (format!("{a:o}"), "0o"),
        'x' => (format!("{a:x}"), "0x"),
        'X' => (format!("{a:X}"), "0X"),
        _ => (a.to_string(), ""),
    };
    let prefix = if sp.alternate { prefix } else { "" };
    let grouping = match (sp.ty, sp.grouping) {
        ('n', _) | (_, None) => None,
        (_, Some(g)) => Some((g, if sp.group4 { 4 } else { 3 })),
    };
    Ok(fill_number(
        negative.then_some('-'),
        sp,
        prefix,
        &digits,
        "",
        grouping,
    ))
}

/// Python float formatting (`e E f F g G %`) of a finite value, as used for ints.
fn format_float(val: f64, sp: &Spec) -> Result<String, PyErr> {
    let mut ty = sp.ty;
    let mut val = val;
    let mut pct = false;
    if ty == '%' {
        ty = 'f';
        val *= 100.0;
        pct = true;
    }
    let precision = if sp.precision < 0 {
        6
    } else {
        sp.precision as usize
    };
    let upper = matches!(ty, 'E' | 'F' | 'G');
    let mut s = match ty.to_ascii_lowercase() {
        'f' => {
            let mut s = format!("{:.*}", precision, val.abs());
            if sp.alternate && precision == 0 {
                s.push('.');
            }
            s
        }
        'e' => exp_format(val.abs(), precision, sp.alternate),
        _ => {
            let p = precision.max(1);
            let e = format!("{:.*e}", p - 1, val.abs());
            let x: i64 = e[e.find('e').unwrap_or(0) + 1..].parse().unwrap_or(0);
            if x < -4 || x >= p as i64 {
                let mut s = exp_format(val.abs(), p - 1, sp.alternate);
                if !sp.alternate {
                    let epos = s.find('e').unwrap_or(s.len());
                    let (mant, exp) = s.split_at(epos);
                    let mant = strip_fraction_zeros(mant);
                    s = format!("{mant}{exp}");
                }
                s
            } else {
                let decimals = (p as i64 - 1 - x).max(0) as usize;
                let mut s = format!("{:.*}", decimals, val.abs());
                if sp.alternate {
                    if !s.contains('.') {
                        s.push('.');
                    }
                } else {
                    s = strip_fraction_zeros(&s).to_string();
                }
                s
            }
        }
    };
    if upper {
        s = s.to_ascii_uppercase();
    }
    if pct {
        s.push('%');
    }
    let negative = val < 0.0;
    let digit_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, rest) = s.split_at(digit_end);
    let grouping = sp.grouping.map(|g| (g, 3));
    Ok(fill_number(
        negative.then_some('-'),
        sp,
        "",
        digits,
        rest,
        grouping,
    ))
}

/// `d.ddde+XX` with at least two exponent digits (and `d.e+XX` in alternate form).
fn exp_format(v: f64, precision: usize, alternate: bool) -> String {
    let e = format!("{:.*e}", precision, v);
    let (mant, exp) = e.split_at(e.find('e').unwrap_or(e.len()));
    let x: i64 = exp.get(1..).unwrap_or("0").parse().unwrap_or(0);
    let mut mant = mant.to_string();
    if alternate && !mant.contains('.') {
        mant.push('.');
    }
    let sign = if x < 0 { '-' } else { '+' };
    format!("{mant}e{sign}{:02}", x.abs())
}

fn strip_fraction_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// CPython's `calc_number_widths` + `fill_number`.
fn fill_number(
    sign_char: Option<char>,
    sp: &Spec,
    prefix: &str,
    digits: &str,
    remainder: &str,
    grouping: Option<(char, usize)>,
) -> String {
    let sign = match sp.sign {
        Some('+') => Some(sign_char.unwrap_or('+')),
        Some(' ') => Some(sign_char.unwrap_or(' ')),
        _ => sign_char,
    };
    let n_sign = i64::from(sign.is_some());
    let n_prefix = prefix.chars().count() as i64;
    let n_rem = remainder.chars().count() as i64;
    let non_digit = n_sign + n_prefix + n_rem;
    let min_width = if sp.fill == '0' && sp.align == '=' {
        sp.width - non_digit
    } else {
        0
    };
    let grouped = if digits.is_empty() {
        String::new()
    } else {
        group_digits(digits, min_width, grouping)
    };
    let n_padding = sp.width - (non_digit + grouped.chars().count() as i64);
    let (mut lpad, mut spad, mut rpad) = (0, 0, 0);
    if n_padding > 0 {
        match sp.align {
            '<' => rpad = n_padding,
            '^' => {
                lpad = n_padding / 2;
                rpad = n_padding - lpad;
            }
            '=' => spad = n_padding,
            _ => lpad = n_padding,
        }
    }
    let fill = |n: i64| std::iter::repeat_n(sp.fill, n.max(0) as usize);
    let mut out = String::new();
    out.extend(fill(lpad));
    if let Some(s) = sign {
        out.push(s);
    }
    out.push_str(prefix);
    out.extend(fill(spad));
    out.push_str(&grouped);
    out.push_str(remainder);
    out.extend(fill(rpad));
    out
}

/// CPython's `_PyUnicode_InsertThousandsGrouping` (with zero padding up to `min_width`).
fn group_digits(digits: &str, min_width: i64, grouping: Option<(char, usize)>) -> String {
    let d: Vec<char> = digits.chars().collect();
    let mut remaining = d.len() as i64;
    let mut min_width = min_width;
    let Some((sep, size)) = grouping else {
        let l = remaining.max(min_width).max(1);
        let zeros = (l - remaining).max(0) as usize;
        let mut out: String = std::iter::repeat_n('0', zeros).collect();
        out.extend(d);
        return out;
    };
    let size = size as i64;
    let mut groups: Vec<String> = Vec::new();
    let mut end = d.len();
    loop {
        let l = size.min(remaining.max(min_width).max(1));
        let n_zeros = (l - remaining).max(0) as usize;
        let n_chars = remaining.min(l).max(0) as usize;
        let mut g: String = std::iter::repeat_n('0', n_zeros).collect();
        g.extend(&d[end - n_chars..end]);
        end -= n_chars;
        groups.push(g);
        remaining -= n_chars as i64;
        min_width -= l;
        if remaining <= 0 && min_width <= 0 {
            break;
        }
        min_width -= 1;
    }
    groups.reverse();
    groups.join(&sep.to_string())
}

// ---------------------------------------------------------------------------------------------
// borg's placeholders
// ---------------------------------------------------------------------------------------------

/// Overrides for [`replace_placeholders`]: `--timestamp` replaces `{now}` and `{utcnow}` (but
/// not `{unixtime}`) for the archive name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// The `--timestamp` value, if any.
    pub timestamp: Option<DateTime<Utc>>,
}

/// Everything placeholders are computed from; [`PlaceholderContext::from_environment`] reads the
/// real values, tests construct it directly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaceholderContext {
    /// The one "now" instant shared by all placeholders of a call.
    pub now: DateTime<Utc>,
    /// Short hostname (`BORG_HOSTNAME` already applied).
    pub hostname: String,
    /// Fully qualified hostname.
    pub fqdn: String,
    /// User name (`BORG_USERNAME` already applied).
    pub user: String,
    /// Process id.
    pub pid: u32,
    /// A random UUID (version 4), lower-case hyphenated.
    pub uuid4: String,
    /// The borg version we claim, e.g. `1.4.1`.
    pub version: String,
}

impl PlaceholderContext {
    /// Current time, host, user (`BORG_HOSTNAME` / `BORG_USERNAME` override when non-empty),
    /// pid, a fresh uuid4 and [`crate::BORG_COMPAT_VERSION`].
    pub fn from_environment() -> Self {
        let env_or = |name: &str, f: fn() -> String| match std::env::var(name) {
            Ok(v) if !v.is_empty() => v,
            _ => f(),
        };
        PlaceholderContext {
            now: Utc::now(),
            hostname: env_or("BORG_HOSTNAME", crate::platform::host::hostname),
            fqdn: crate::platform::host::fqdn(),
            user: env_or("BORG_USERNAME", crate::platform::users::os_username),
            pid: std::process::id(),
            uuid4: uuid4(),
            version: crate::BORG_COMPAT_VERSION.to_string(),
        }
    }

    /// The placeholder dict, in borg's key order, with local time from the system zone.
    pub fn data(&self, overrides: &Overrides) -> FormatData {
        self.data_in(overrides, &SystemZone)
    }

    /// [`PlaceholderContext::data`] with an explicit local zone.
    pub fn data_in(&self, overrides: &Overrides, zone: &dyn LocalZone) -> FormatData {
        let ts = overrides.timestamp.unwrap_or(self.now);
        let nums: Vec<u64> = self
            .version
            .split('.')
            .map(|p| {
                p.chars()
                    .take_while(|c| c.is_ascii_digit())
                    .collect::<String>()
                    .parse()
                    .unwrap_or(0)
            })
            .chain(std::iter::repeat(0))
            .take(3)
            .collect();
        let mut d = FormatData::new();
        d.insert("pid", self.pid as i64);
        d.insert("fqdn", self.fqdn.as_str());
        d.insert(
            "reverse-fqdn",
            self.fqdn.split('.').rev().collect::<Vec<_>>().join("."),
        );
        d.insert("hostname", self.hostname.as_str());
        d.insert(
            "now",
            FormatValue::datetime_wrapper(PyDateTime::local_in(ts, zone)),
        );
        d.insert("utcnow", FormatValue::datetime_wrapper(PyDateTime::utc(ts)));
        d.insert("unixtime", self.now.timestamp());
        d.insert("user", self.user.as_str());
        d.insert("uuid4", self.uuid4.as_str());
        d.insert("borgversion", self.version.as_str());
        d.insert("borgmajor", format!("{}", nums[0]));
        d.insert("borgminor", format!("{}.{}", nums[0], nums[1]));
        d.insert("borgpatch", format!("{}.{}.{}", nums[0], nums[1], nums[2]));
        d
    }
}

/// A random version-4 UUID, `xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx`.
pub fn uuid4() -> String {
    let mut b = [0u8; 16];
    getrandom::getrandom(&mut b).expect("OS random number generator failed");
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// borg's `replace_placeholders(text, overrides)`: expand `{hostname}`, `{fqdn}`,
/// `{reverse-fqdn}`, `{now}`, `{now:FMT}`, `{utcnow}`, `{utcnow:FMT}`, `{unixtime}`, `{user}`,
/// `{pid}`, `{uuid4}`, `{borgversion}`, `{borgmajor}`, `{borgminor}`, `{borgpatch}` (and `{{`/`}}`),
/// all from one "now" instant.
pub fn replace_placeholders(text: &str, overrides: &Overrides) -> Result<String, PlaceholderError> {
    format_line(
        text,
        &PlaceholderContext::from_environment().data(overrides),
    )
}

// ---------------------------------------------------------------------------------------------
// Archive globs
// ---------------------------------------------------------------------------------------------

/// A bad glob (Python's `re.error` from the translated pattern; borg itself crashes on it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad character range {lo}-{hi} in glob {glob:?}")]
pub struct GlobError {
    /// The glob as given.
    pub glob: String,
    /// Range start.
    pub lo: char,
    /// Range end (smaller than `lo`).
    pub hi: char,
}

/// An archive-name glob (`-a/--glob-archives`): borg's `shellpattern.translate` — `*` matches
/// any run of characters except `/`, `**/` any number of directory levels, `?` one character
/// except `/`, `[...]`/`[!...]` character classes (backslash is literal), everything else
/// literal — matched against the whole name.
#[derive(Debug, Clone)]
pub struct ArchiveGlob {
    glob: String,
    regex: Regex,
}

impl ArchiveGlob {
    /// Compile a glob for full-name matching; an empty glob means `*` (like `glob or '*'`).
    pub fn new(glob: &str) -> Result<Self, GlobError> {
        Self::with_match_end(glob, r"\z")
    }

    /// Compile with a custom regex (Rust syntax) that must match after the glob, like borg's
    /// `match_end` (prune uses `(\.checkpoint(\.\d+)?)?\z` so that a glob also selects the
    /// checkpoints of the archives it names).
    pub fn with_match_end(glob: &str, match_end: &str) -> Result<Self, GlobError> {
        let g = if glob.is_empty() { "*" } else { glob };
        let body = translate_glob(g)?;
        let regex = Regex::new(&format!("(?s)^(?:{body}){match_end}"))
            .expect("translated glob is a valid regex");
        Ok(ArchiveGlob {
            glob: glob.to_string(),
            regex,
        })
    }

    /// Whether `name` matches.
    pub fn is_match(&self, name: &str) -> bool {
        self.regex.is_match(name)
    }

    /// The glob as given.
    pub fn as_str(&self) -> &str {
        &self.glob
    }
}

/// `-P/--prefix PREFIX` (deprecated) is `--glob-archives 'PREFIX*'` (no escaping, like borg).
pub fn prefix_to_glob(prefix: &str) -> String {
    format!("{prefix}*")
}

fn class_char(c: char) -> String {
    format!("\\x{{{:x}}}", c as u32)
}

/// borg's `shellpattern.translate` (with `sep = '/'`) producing a Rust regex body (no anchors).
pub fn translate_glob(pat: &str) -> Result<String, GlobError> {
    let p: Vec<char> = pat.chars().collect();
    let n = p.len();
    let mut i = 0;
    let mut res = String::new();
    while i < n {
        let c = p[i];
        i += 1;
        match c {
            '*' => {
                if i + 1 < n && p[i] == '*' && p[i + 1] == '/' {
                    res.push_str("(?:[^/]*/)*");
                    i += 2;
                } else {
                    res.push_str("[^/]*");
                }
            }
            '?' => res.push_str("[^/]"),
            '[' => {
                let mut j = i;
                if j < n && p[j] == '!' {
                    j += 1;
                }
                if j < n && p[j] == ']' {
                    j += 1;
                }
                while j < n && p[j] != ']' {
                    j += 1;
                }
                if j >= n {
                    res.push_str("\\[");
                } else {
                    let mut stuff: &[char] = &p[i..j];
                    i = j + 1;
                    let negate = stuff.first() == Some(&'!');
                    if negate {
                        stuff = &stuff[1..];
                    }
                    // Python's re sees the class literally (backslashes were doubled, a leading
                    // '^' escaped); only `a-b` ranges are special. Emit every member escaped.
                    let mut class = String::from(if negate { "[^" } else { "[" });
                    let mut k = 0;
                    while k < stuff.len() {
                        let lo = stuff[k];
                        if k + 2 < stuff.len() && stuff[k + 1] == '-' {
                            let hi = stuff[k + 2];
                            if hi < lo {
                                return Err(GlobError {
                                    glob: pat.to_string(),
                                    lo,
                                    hi,
                                });
                            }
                            let _ = write!(class, "{}-{}", class_char(lo), class_char(hi));
                            k += 3;
                        } else {
                            class.push_str(&class_char(lo));
                            k += 1;
                        }
                    }
                    // (`stuff` is never empty: the scan always includes at least one member.)
                    class.push(']');
                    res.push_str(&class);
                }
            }
            c => res.push_str(&regex::escape(&c.to_string())),
        }
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::timefmt::FixedZone;
    use chrono::TimeZone;

    fn ctx() -> PlaceholderContext {
        PlaceholderContext {
            now: Utc.with_ymd_and_hms(2026, 11, 25, 16, 5, 51).unwrap()
                + chrono::Duration::microseconds(123_456),
            hostname: "myhost".into(),
            fqdn: "myhost.example.com".into(),
            user: "alice".into(),
            pid: 4242,
            uuid4: "0f8fad5b-d9cb-469f-a165-70867728950e".into(),
            version: "1.4.1".into(),
        }
    }

    fn cet() -> FixedZone {
        FixedZone {
            offset_secs: 3600,
            name: "CET".into(),
        }
    }

    fn expand(text: &str) -> Result<String, PlaceholderError> {
        format_line(text, &ctx().data_in(&Overrides::default(), &cet()))
    }

    #[test]
    fn placeholder_values() {
        let table: &[(&str, &str)] = &[
            ("{hostname}", "myhost"),
            ("{fqdn}", "myhost.example.com"),
            ("{reverse-fqdn}", "com.example.myhost"),
            ("{now}", "2026-11-25T17:05:51"),
            ("{now:%Y-%m-%dT%H:%M:%S.%f}", "2026-11-25T17:05:51.123456"),
            ("{now:%z %Z}", "+0100 CET"),
            ("{utcnow}", "2026-11-25T16:05:51"),
            ("{utcnow:%Y%m%d %z %Z}", "20261125 +0000 UTC"),
            ("{unixtime}", "1795622751"),
            ("{user}", "alice"),
            ("{pid}", "4242"),
            ("{uuid4}", "0f8fad5b-d9cb-469f-a165-70867728950e"),
            ("{borgversion}", "1.4.1"),
            ("{borgmajor}", "1"),
            ("{borgminor}", "1.4"),
            ("{borgpatch}", "1.4.1"),
            (
                "{hostname}-{now:%Y-%m-%dT%H:%M:%S.%f}",
                "myhost-2026-11-25T17:05:51.123456",
            ),
            ("{{hostname}}-{{}}", "{hostname}-{}"),
            ("a{{b}}c", "a{b}c"),
            (
                "{pid:>8}|{pid:<6}|{pid:08}|{pid:,}",
                "    4242|4242  |00004242|4,242",
            ),
            (
                "{user:>7}|{user:^9}|{user:.3}|{user:*<7}",
                "  alice|  alice  |ali|alice**",
            ),
            ("{now:}", "2026-11-25T17:05:51"),
            ("{now:>20}", ">20"),
            ("{now:{pid}}", "4242"),
            ("{user:>{pid:.1}}", ""),
            (
                "/backups/{hostname}::{user}-{now:%Y}",
                "/backups/myhost::alice-2026",
            ),
        ];
        for (fmt, want) in table {
            match expand(fmt) {
                Ok(got) => assert_eq!(got, *want, "{fmt}"),
                Err(e) if want.is_empty() => {
                    assert!(
                        matches!(e, PlaceholderError::Formatting { .. }),
                        "{fmt}: {e}"
                    )
                }
                Err(e) => panic!("{fmt}: {e}"),
            }
        }
    }

    #[test]
    fn timestamp_override_replaces_now_but_not_unixtime() {
        let o = Overrides {
            timestamp: Some(Utc.with_ymd_and_hms(2020, 5, 6, 7, 8, 9).unwrap()),
        };
        let d = ctx().data_in(&o, &cet());
        assert_eq!(
            format_line("{now} {utcnow} {unixtime}", &d).unwrap(),
            "2020-05-06T08:08:09 2020-05-06T07:08:09 1795622751"
        );
    }

    #[test]
    fn data_order_and_repr() {
        let d = ctx().data_in(&Overrides::default(), &cet());
        let keys: Vec<&str> = d.keys().collect();
        assert_eq!(
            keys,
            [
                "pid",
                "fqdn",
                "reverse-fqdn",
                "hostname",
                "now",
                "utcnow",
                "unixtime",
                "user",
                "uuid4",
                "borgversion",
                "borgmajor",
                "borgminor",
                "borgpatch"
            ]
        );
        let r = d.py_repr();
        assert!(r.starts_with("{'pid': 4242, 'fqdn': 'myhost.example.com', 'reverse-fqdn': 'com.example.myhost', 'hostname': 'myhost', 'now': <borg.helpers.parseformat.DatetimeWrapper object at 0x"), "{r}");
        assert!(
            r.ends_with("'borgmajor': '1', 'borgminor': '1.4', 'borgpatch': '1.4.1'}"),
            "{r}"
        );
    }

    #[test]
    fn errors() {
        let e = expand("{hostname}-{foo}").unwrap_err();
        assert_eq!(
            e.to_string(),
            "Invalid placeholder \"foo\" in string: {hostname}-{foo}"
        );
        assert_eq!(e.exit_mcode(), 6);
        assert!(e.argparse_text().is_none());
        for (text, key) in [
            ("{now!r}", "now"),
            ("{now.year}", "now.year"),
            ("{0}", "0"),
            ("{ pid}", " pid"),
            ("{x}}", "x"), // the invalid key is found before the syntax error
        ] {
            match expand(text).unwrap_err() {
                PlaceholderError::InvalidPlaceholder { key: k, .. } => assert_eq!(k, key, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        let e = expand("{pid:%Y}").unwrap_err();
        assert_eq!(e.exit_mcode(), 5);
        let msg = e.to_string();
        assert!(
            msg.starts_with("Formatting Error: \"{pid:%Y}\".format({'pid': 4242, "),
            "{msg}"
        );
        assert!(
            msg.ends_with("'borgpatch': '1.4.1'}): ValueError(Invalid format specifier '%Y' for object of type 'int')"),
            "{msg}"
        );
        match expand("{}").unwrap_err() {
            PlaceholderError::Formatting { class, message, .. } => {
                assert_eq!(
                    (class.as_str(), message.as_str()),
                    ("ValueError", "Format string contains positional fields")
                )
            }
            other => panic!("{other:?}"),
        }
        match expand("{now:{nope}}").unwrap_err() {
            PlaceholderError::Formatting { class, message, .. } => {
                assert_eq!((class.as_str(), message.as_str()), ("KeyError", "'nope'"))
            }
            other => panic!("{other:?}"),
        }
        let syntax: &[(&str, &str)] = &[
            ("a}b", "Single '}' encountered in format string"),
            ("a{", "Single '{' encountered in format string"),
            ("{pid", "expected '}' before end of string"),
            (
                "{now!",
                "end of string while looking for conversion specifier",
            ),
            ("{now!}", "unmatched '{' in format spec"),
            ("{now!rx}", "expected ':' after conversion specifier"),
            ("{a{b}}", "unexpected '{' in field name"),
            ("{now:{{}", "unmatched '{' in format spec"),
        ];
        for (text, msg) in syntax {
            let e = expand(text).unwrap_err();
            assert_eq!(e.to_string(), *msg, "{text}");
            assert_eq!(e.exit_mcode(), 2);
            assert_eq!(
                e.argparse_text().unwrap(),
                format!("invalid replace_placeholders value: '{text}'")
            );
        }
    }

    #[test]
    fn str_and_int_specs() {
        let s: &[(&str, Result<&str, &str>)] = &[
            ("", Ok("abc")),
            ("10", Ok("abc       ")),
            (">10", Ok("       abc")),
            ("^9", Ok("   abc   ")),
            ("*^9", Ok("***abc***")),
            (".2", Ok("ab")),
            ("05", Ok("abc00")),
            ("0>5", Ok("00abc")),
            (">>", Ok("abc")),
            ("+", Err("Sign not allowed in string format specifier")),
            (" ", Err("Space not allowed in string format specifier")),
            (
                "#",
                Err("Alternate form (#) not allowed in string format specifier"),
            ),
            (
                "=10",
                Err("'=' alignment not allowed in string format specifier"),
            ),
            (",", Err("Cannot specify ',' with 's'.")),
            ("__", Err("Cannot specify '_' with '_'.")),
            (",_", Err("Cannot specify both ',' and '_'.")),
            ("d", Err("Unknown format code 'd' for object of type 'str'")),
            (".", Err("Format specifier missing precision")),
            (
                "%Y",
                Err("Invalid format specifier '%Y' for object of type 'str'"),
            ),
            (
                "999999999999999999999",
                Err("Too many decimal digits in format string"),
            ),
        ];
        for (spec, want) in s {
            let got = format_str("abc", spec).map_err(|e| e.message);
            assert_eq!(
                got.as_deref(),
                want.map_err(|e| e.to_string()).as_deref(),
                "{spec:?}"
            );
        }
        let i: &[(i64, &str, Result<&str, &str>)] = &[
            (-5, "08", Ok("-0000005")),
            (-5, "=8", Ok("-      5")),
            (5, "*=+8", Ok("+******5")),
            (1234567, ",", Ok("1,234,567")),
            (1234567, "_", Ok("1_234_567")),
            (5, "010,", Ok("00,000,005")),
            (-5, "010,", Ok("-0,000,005")),
            (-5, "012_", Ok("-000_000_005")),
            (1234567, "_b", Ok("1_0010_1101_0110_1000_0111")),
            (-5, "#x", Ok("-0x5")),
            (255, "#X", Ok("0XFF")),
            (255, "#08x", Ok("0x0000ff")),
            (255, "c", Ok("ÿ")),
            (1234567, "g", Ok("1.23457e+06")),
            (5, "%", Ok("500.000000%")),
            (255, ".0e", Ok("3e+02")),
            (5, "#.0f", Ok("5.")),
            (0, "#g", Ok("0.00000")),
            (1234567, ",.2f", Ok("1,234,567.00")),
            (
                5,
                ".2",
                Err("Precision not allowed in integer format specifier"),
            ),
            (
                5,
                "z",
                Err("Negative zero coercion (z) not allowed in integer format specifier"),
            ),
            (5, ",n", Err("Cannot specify ',' with 'n'.")),
            (
                5,
                "s",
                Err("Unknown format code 's' for object of type 'int'"),
            ),
            (-5, "c", Err("%c arg not in range(0x110000)")),
            (
                5,
                "+c",
                Err("Sign not allowed with integer format specifier 'c'"),
            ),
        ];
        for (v, spec, want) in i {
            let got = format_int(*v, spec).map_err(|e| e.message);
            assert_eq!(
                got.as_deref(),
                want.map_err(|e| e.to_string()).as_deref(),
                "{v} {spec:?}"
            );
        }
    }

    #[test]
    fn output_timestamp_values() {
        let t = Utc.with_ymd_and_hms(2024, 1, 3, 0, 0, 0).unwrap();
        let mut d = FormatData::new();
        d.insert("time", FormatValue::output_timestamp_in(t, &cet()));
        assert_eq!(
            format_line("{time}|{time:%Y-%m-%d}|{time!s}", &d)
                .unwrap_err()
                .to_string(),
            "Invalid placeholder \"time\" in string: {time}|{time:%Y-%m-%d}|{time!s}"
        );
        assert_eq!(
            format_line("{time}|{time:%Y-%m-%d %H:%M:%S.%f}", &d).unwrap(),
            "Wed, 2024-01-03 01:00:00|2024-01-03 01:00:00.000000"
        );
    }

    #[test]
    fn uuid4_shape() {
        let u = uuid4();
        let re =
            Regex::new("^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
                .unwrap();
        assert!(re.is_match(&u), "{u}");
        assert_ne!(u, uuid4());
    }

    #[test]
    fn real_environment_context() {
        let c = PlaceholderContext::from_environment();
        assert_eq!(c.pid, std::process::id());
        assert_eq!(c.version, crate::BORG_COMPAT_VERSION);
        assert!(replace_placeholders("{hostname}{fqdn}{user}{now}", &Overrides::default()).is_ok());
    }

    #[test]
    fn globs() {
        let table: &[(&str, &str, bool)] = &[
            ("", "anything", true),
            ("*", "", true),
            ("*", "a/b", false),
            ("db-*", "db-2024", true),
            ("db-*", "xdb-2024", false),
            ("db-*", "db-2024.checkpoint", true),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("[abc]x", "bx", true),
            ("[!abc]x", "bx", false),
            ("[!abc]x", "dx", true),
            ("[a-c]x", "cx", true),
            ("[]]x", "]x", true),
            ("[!]]x", "]x", false),
            ("[!]]x", "ax", true),
            ("[", "[", true),
            ("a[b", "a[b", true),
            ("[^a]", "^", true),
            ("[^a]", "b", false),
            ("[a-]", "-", true),
            ("a\\b", "a\\b", true),
            ("[\\]x", "\\x", true),
            ("a.b", "axb", false),
            ("a+b", "a+b", true),
            ("{a,b}", "{a,b}", true),
            ("**/x", "a/b/x", true),
            ("[a&&b]", "&", true),
        ];
        for (g, name, want) in table {
            let glob = ArchiveGlob::new(g).unwrap();
            assert_eq!(glob.is_match(name), *want, "glob {g:?} name {name:?}");
        }
        let e = ArchiveGlob::new("[z-a]").unwrap_err();
        assert_eq!((e.lo, e.hi), ('z', 'a'));
        let prune = ArchiveGlob::with_match_end("db-1", r"(\.checkpoint(\.\d+)?)?\z").unwrap();
        assert!(prune.is_match("db-1.checkpoint.12"));
        assert!(prune.is_match("db-1"));
        assert!(!prune.is_match("db-1.checkpoint.x"));
        assert_eq!(prefix_to_glob("web"), "web*");
        assert_eq!(prefix_to_glob("a[1]"), "a[1]*");
        assert_eq!(ArchiveGlob::new("x*").unwrap().as_str(), "x*");
    }
}
