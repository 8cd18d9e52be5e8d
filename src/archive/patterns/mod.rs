//! Include/exclude patterns (`borg help patterns`), compatible with borg 1.4.
//!
//! # Model
//!
//! * A [`Pattern`] is one compiled pattern of a [`PatternStyle`] (`fm:`, `sh:`, `re:`, `pp:`,
//!   `pf:`). It is parsed from text that may start with a two-character style prefix
//!   (`sh:home/*/junk`); without one, the *default style* of the option it came from is used.
//! * An [`Action`] says what a matching pattern does: `+` include, `-` exclude (but still
//!   recurse into an excluded directory, so later `+` patterns can pull children back in), `!`
//!   exclude and do not recurse.
//! * A [`PatternMatcher`] evaluates an ordered list of `(Pattern, Action)`: the first pattern that
//!   matches decides. `pf:` patterns live in a hash map and are looked up *before* the ordered
//!   list (so they win regardless of position; for the same path the last `pf:` added wins).
//!   When nothing matches, the matcher's fallback decides and recursion continues.
//! * [`PatternArgs`] collects the include/exclude options of one command line in the order they
//!   appear (`--pattern`, `--patterns-from`, `-e/--exclude`, `--exclude-from` interleaved
//!   exactly as given: that is what borg's argparse actions do, whatever its help text says
//!   about `--exclude-from` coming last). It returns the ordered patterns plus the recursion
//!   roots (`R` lines).
//!
//! Paths given to the matcher are archive paths (`home/user/file`, no leading `/`; a leading
//! `/` is stripped before matching, as borg does).
//!
//! # Create
//!
//! ```
//! use rborg::archive::patterns::{PatternArgs, PatternMatcher};
//!
//! let mut args = PatternArgs::new();
//! args.add_patterns_from_str("R /home\n- home/*/.cache\n! home/*/junk\n+ home/u/keep\n").unwrap();
//! args.add_exclude("*.tmp").unwrap();
//! assert_eq!(args.roots, ["/home"]);
//!
//! let m = PatternMatcher::for_create(args.patterns);
//! assert!(m.is_included("home/u/file"));
//! let d = m.evaluate("home/u/.cache");
//! assert!(!d.include && d.recurse); // `-`: status `x`, but walk into it
//! let d = m.evaluate("home/u/junk");
//! assert!(!d.include && !d.recurse); // `!`: don't even stat it
//! assert!(!m.is_included("home/u/a.tmp")); // --exclude is an `!` exclude in borg
//! ```
//!
//! # Extract / list / diff / export-tar / mount
//!
//! ```
//! use rborg::archive::patterns::{PatternArgs, PatternMatcher};
//!
//! let mut args = PatternArgs::new();
//! args.add_pattern("- home/u/.cache").unwrap();
//! let m = PatternMatcher::for_archive(args.patterns, ["home/u", "etc/nonexistent"]).unwrap();
//! for path in ["home/u/.cache/x", "home/u/doc", "var/log"] {
//!     let _keep = m.is_included(path);
//! }
//! assert_eq!(
//!     m.never_matched_warnings(),
//!     ["Include pattern 'etc/nonexistent' never matched."]
//! );
//! ```
//!
//! # Known differences from borg
//!
//! * `re:` patterns run on the `regex` crate, not Python's `re`. A rewriter keeps Python's
//!   syntax and meaning for `\Z`, literal `{`, `{,n}`, classes (a `[`, `&&`, `--`, `~~` inside a
//!   class are literals), `\s` (includes U+001C..U+001F), octal and `\x`/`\u`/`\U` escapes,
//!   escaped punctuation (`\<` is `<`), `(?#...)` comments, and Python's errors for "nothing to
//!   repeat", "multiple repeat", global flags not at the start and unknown `(?...)` extensions.
//!   Rejected with an error because the regex crate cannot express them: backreferences
//!   (`\1`, `(?P=n)`), look-around, atomic groups, conditionals, possessive quantifiers (`a*+`,
//!   new in Python 3.11), `\N{...}`, the `a`/`L` flags. Python's `$` also matches before a
//!   final `\n`: reproduced when only `)`/`|` follow the `$`; elsewhere (e.g. `a$\b`) rborg's
//!   `$` matches only at the very end (matters only for names ending in a newline). `\w`, `\b`,
//!   `\d` and `(?i)` use the regex crate's Unicode tables, which differ from Python's for rare
//!   code points. In verbose mode `(?x)` only a global flag at the start is recognised.
//! * Paths and patterns are Rust strings; borg additionally NFD-normalises both on macOS only.
//! * Errors for invalid regexes (including `sh:[z-a]`) are returned as
//!   [`PatternError::Regex`]; borg crashes with a traceback there.
//! * `--exclude`/`--exclude-from`/`add_exclude*` produce [`Action::ExcludeNoRecurse`], as borg's
//!   code does (its help text claims they equal `-`).

mod translate;

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::pyrepr::py_repr;
use regex::Regex;

/// Errors from parsing pattern texts, pattern/command lines and pattern files. The `Display`
/// texts are borg's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// `--pattern ''`.
    #[error("A pattern/command must not be empty.")]
    EmptyCommand,
    /// A pattern/command line whose first character is not one of `- ! + R r P p`.
    #[error("A pattern/command must start with any of: -, !, +, R, r, P, p")]
    BadCommand,
    /// A pattern/command line with nothing after the command character.
    #[error("A pattern/command must have a value part.")]
    MissingValue,
    /// `P xx` with an unknown style.
    #[error("Invalid pattern style: {0}")]
    InvalidStyle(String),
    /// `xx:...` with an unknown two-character style prefix.
    #[error("Unknown pattern style: {0}")]
    UnknownStyle(String),
    /// The pattern does not compile to a regular expression (bad `re:` pattern, reversed
    /// `[z-a]` range in `sh:`, unsupported Python-`re` feature).
    #[error("{message} (in pattern '{pattern}')")]
    Regex {
        /// The pattern text (without style prefix).
        pattern: String,
        /// What is wrong.
        message: String,
    },
    /// A pattern/exclude file could not be read; text like Python's `OSError`
    /// (`[Errno 2] No such file or directory: 'f'`). borg prints it as `Error: <text>`, rc 2.
    #[error("{0}")]
    File(String),
}

/// Pattern style, selected by a two-character prefix such as `sh:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PatternStyle {
    /// `fm:` fnmatch: `*` matches across `/`; default for `--exclude`/`--exclude-from`.
    Fnmatch,
    /// `sh:` shell: `*` stays within one path component, `**/` spans directories; default for
    /// `--pattern`/`--patterns-from`.
    Shell,
    /// `re:` regular expression, searched anywhere in the path.
    Regex,
    /// `pp:` path prefix: the path itself and everything below; default for PATH arguments.
    PathPrefix,
    /// `pf:` full path, exact; looked up in a hash map.
    PathFull,
}

impl PatternStyle {
    /// All styles.
    pub const ALL: [PatternStyle; 5] = [
        PatternStyle::Fnmatch,
        PatternStyle::Shell,
        PatternStyle::Regex,
        PatternStyle::PathPrefix,
        PatternStyle::PathFull,
    ];

    /// The two-character prefix (`"fm"`, `"sh"`, `"re"`, `"pp"`, `"pf"`).
    pub fn prefix(self) -> &'static str {
        match self {
            PatternStyle::Fnmatch => "fm",
            PatternStyle::Shell => "sh",
            PatternStyle::Regex => "re",
            PatternStyle::PathPrefix => "pp",
            PatternStyle::PathFull => "pf",
        }
    }

    /// Look up a style by its exact prefix (case-sensitive, no colon).
    pub fn from_prefix(prefix: &str) -> Option<PatternStyle> {
        PatternStyle::ALL.into_iter().find(|s| s.prefix() == prefix)
    }
}

impl fmt::Display for PatternStyle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.prefix())
    }
}

/// What a matching pattern does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// `+`: include.
    Include,
    /// `-`: exclude, but keep recursing into an excluded directory.
    Exclude,
    /// `!` (and `--exclude`): exclude and do not recurse.
    ExcludeNoRecurse,
}

impl Action {
    /// Whether a match means "include".
    pub fn is_include(self) -> bool {
        self == Action::Include
    }

    /// Whether the walk continues into a matched directory.
    pub fn recurses(self) -> bool {
        self != Action::ExcludeNoRecurse
    }

    /// The pattern-file command character (`+`, `-`, `!`).
    pub fn as_char(self) -> char {
        match self {
            Action::Include => '+',
            Action::Exclude => '-',
            Action::ExcludeNoRecurse => '!',
        }
    }
}

#[derive(Debug, Clone)]
enum Matcher {
    /// Regex applied with a `/` appended to the path (fm, sh).
    Anchored(Regex),
    /// Unanchored search on the path (re).
    Search(Regex),
    /// Prefix (pp), normalised to end with `/`, compared with path + `/`.
    Prefix(String),
    /// Exact path (pf).
    Full(String),
}

/// One compiled pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    style: PatternStyle,
    original: String,
    normalized: String,
    matcher: Matcher,
}

impl Pattern {
    /// Compile `text` (no style prefix is recognised) as a pattern of `style`.
    pub fn new(style: PatternStyle, text: &str) -> Result<Pattern, PatternError> {
        let regex_err = |message: String| PatternError::Regex {
            pattern: text.to_string(),
            message,
        };
        let compile = |re: &str| Regex::new(re).map_err(|e| regex_err(e.to_string()));
        let (normalized, matcher) = match style {
            PatternStyle::PathFull => {
                let n = translate::normpath(text)
                    .trim_start_matches('/')
                    .to_string();
                (n.clone(), Matcher::Full(n))
            }
            PatternStyle::PathPrefix => {
                let mut n = translate::normpath(text).trim_end_matches('/').to_string();
                n.push('/');
                let n = n.trim_start_matches('/').to_string();
                (n.clone(), Matcher::Prefix(n))
            }
            PatternStyle::Fnmatch | PatternStyle::Shell => {
                // A trailing `/` means "the contents, not the directory itself"; otherwise the
                // pattern may also match any leading part of the path up to a `/`.
                let suffix = match (style, text.ends_with('/')) {
                    (PatternStyle::Fnmatch, true) => "/*/",
                    (PatternStyle::Fnmatch, false) => "/*",
                    (_, true) => "/**/*/",
                    (_, false) => "/**/*",
                };
                let mut base = translate::normpath(text);
                if text.ends_with('/') {
                    base.truncate(base.trim_end_matches('/').len());
                }
                base.push_str(suffix);
                let n = base.trim_start_matches('/').to_string();
                let re = if style == PatternStyle::Fnmatch {
                    translate::translate_fnmatch(&n)
                } else {
                    translate::translate_shell(&n)
                }
                .map_err(regex_err)?;
                (n, Matcher::Anchored(compile(&re)?))
            }
            PatternStyle::Regex => {
                let re = translate::translate_python_regex(text).map_err(regex_err)?;
                (text.to_string(), Matcher::Search(compile(&re)?))
            }
        };
        Ok(Pattern {
            style,
            original: text.to_string(),
            normalized,
            matcher,
        })
    }

    /// Parse `text`, honouring a leading `xx:` style prefix (two alphanumeric characters and a
    /// colon); without one `default_style` applies. An unknown
    /// prefix is [`PatternError::UnknownStyle`] (so `12:00/x` is an error, as in borg).
    pub fn parse(text: &str, default_style: PatternStyle) -> Result<Pattern, PatternError> {
        let mut it = text.char_indices();
        if let (Some((_, a)), Some((_, b)), Some((colon, ':'))) = (it.next(), it.next(), it.next())
        {
            if a.is_alphanumeric() && b.is_alphanumeric() {
                let prefix = &text[..colon];
                let style = PatternStyle::from_prefix(prefix)
                    .ok_or_else(|| PatternError::UnknownStyle(prefix.to_string()))?;
                return Pattern::new(style, &text[colon + 1..]);
            }
        }
        Pattern::new(default_style, text)
    }

    /// The style.
    pub fn style(&self) -> PatternStyle {
        self.style
    }

    /// The pattern text as given, without style prefix (used in borg's messages).
    pub fn as_str(&self) -> &str {
        &self.original
    }

    /// The prepared pattern borg actually matches with (`pp:`/`pf:`: normalised path; `fm:`/
    /// `sh:`: normalised glob with the implicit `/*`, `/**/*` suffix; `re:`: unchanged).
    pub fn normalized(&self) -> &str {
        &self.normalized
    }

    /// Whether this pattern matches the archive path `path` (used as is: no leading-`/`
    /// stripping here; [`PatternMatcher`] does that).
    pub fn matches(&self, path: &str) -> bool {
        match &self.matcher {
            Matcher::Full(p) => path == p,
            Matcher::Search(re) => re.is_match(path),
            Matcher::Prefix(_) | Matcher::Anchored(_) => {
                let mut with_sep = String::with_capacity(path.len() + 1);
                with_sep.push_str(path);
                with_sep.push('/');
                self.matches_with_sep(path, &with_sep)
            }
        }
    }

    /// `path_sep` is `path` + `/`, precomputed once per matcher evaluation.
    fn matches_with_sep(&self, path: &str, path_sep: &str) -> bool {
        match &self.matcher {
            Matcher::Full(p) => path == p,
            Matcher::Search(re) => re.is_match(path),
            Matcher::Prefix(p) => path_sep.starts_with(p.as_str()),
            Matcher::Anchored(re) => re.is_match(path_sep),
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.original)
    }
}

/// One parsed pattern/command line.
#[derive(Debug, Clone)]
pub enum Command {
    /// `+ pattern`, `- pattern`, `! pattern`.
    Pattern(Pattern, Action),
    /// `R path` / `r path`: a recursion root (kept verbatim).
    Root(String),
    /// `P style` / `p style`: default style for the rest of the pattern file.
    Style(PatternStyle),
}

/// Python's `str.isspace`: Unicode White_Space plus U+001C..U+001F.
fn py_isspace(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Parse one pattern/command line (`--pattern` value or a patterns-file line). Whitespace
/// after the command character is skipped; `default_style` applies to patterns without a
/// style prefix.
pub fn parse_command(line: &str, default_style: PatternStyle) -> Result<Command, PatternError> {
    let mut chars = line.chars();
    let Some(first) = chars.next() else {
        return Err(PatternError::EmptyCommand);
    };
    if !matches!(first, '-' | '!' | '+' | 'R' | 'r' | 'P' | 'p') {
        return Err(PatternError::BadCommand);
    }
    let value = chars.as_str().trim_start_matches(py_isspace);
    if value.is_empty() {
        return Err(PatternError::MissingValue);
    }
    Ok(match first {
        'R' | 'r' => Command::Root(value.to_string()),
        'P' | 'p' => Command::Style(
            PatternStyle::from_prefix(value)
                .ok_or_else(|| PatternError::InvalidStyle(value.to_string()))?,
        ),
        c => {
            let action = match c {
                '+' => Action::Include,
                '-' => Action::Exclude,
                _ => Action::ExcludeNoRecurse,
            };
            Command::Pattern(Pattern::parse(value, default_style)?, action)
        }
    })
}

/// The significant lines of a pattern or exclude file: each line stripped of surrounding
/// whitespace; empty lines and lines starting with `#` dropped. Lines end at `\n`, `\r\n` or
/// `\r` (Python's universal newlines).
pub fn clean_lines(text: &str) -> impl Iterator<Item = &str> {
    text.split('\n')
        .flat_map(|l| l.split('\r'))
        .map(|l| l.trim_matches(py_isspace))
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

/// Read a pattern/exclude file as UTF-8 text, with borg's error text on failure.
pub fn read_pattern_file(path: &Path) -> Result<String, PatternError> {
    let bytes = std::fs::read(path).map_err(|e| PatternError::File(os_error_text(&e, path)))?;
    String::from_utf8(bytes).map_err(|e| {
        PatternError::File(format!(
            "{}: invalid UTF-8 at byte offset {}",
            py_repr(&path.to_string_lossy()),
            e.utf8_error().valid_up_to()
        ))
    })
}

/// `[Errno N] <strerror>: '<path>'` like Python's `str(OSError)`.
fn os_error_text(e: &std::io::Error, path: &Path) -> String {
    let text = e.to_string();
    match e.raw_os_error() {
        Some(code) => {
            let msg = text
                .strip_suffix(&format!(" (os error {code})"))
                .unwrap_or(&text);
            format!("[Errno {code}] {msg}: {}", py_repr(&path.to_string_lossy()))
        }
        None => format!("{text}: {}", py_repr(&path.to_string_lossy())),
    }
}

/// One include/exclude command-line option, for [`PatternArgs::add_option`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PatternOption {
    /// `--pattern LINE`.
    Pattern,
    /// `--patterns-from FILE`.
    PatternsFrom,
    /// `-e/--exclude PATTERN`.
    Exclude,
    /// `--exclude-from FILE`.
    ExcludeFrom,
}

/// The include/exclude options of one command line, collected in order of appearance (borg
/// appends each option's patterns to one list as argparse meets them, whatever their kind).
#[derive(Debug, Clone, Default)]
pub struct PatternArgs {
    /// Include/exclude patterns in evaluation order.
    pub patterns: Vec<(Pattern, Action)>,
    /// Recursion roots from `R` lines, verbatim, in order. In `create` these count as PATH
    /// arguments (merged with the positional ones in command-line order).
    pub roots: Vec<String>,
}

impl PatternArgs {
    /// Empty collection.
    pub fn new() -> Self {
        Self::default()
    }

    /// Collect one option; call in command-line order (with clap, sort the values of the four
    /// options by `ArgMatches::indices_of`). Files are read from disk.
    pub fn add_option(&mut self, option: PatternOption, value: &str) -> Result<(), PatternError> {
        match option {
            PatternOption::Pattern => self.add_pattern(value),
            PatternOption::PatternsFrom => self.add_patterns_from_file(Path::new(value)),
            PatternOption::Exclude => self.add_exclude(value),
            PatternOption::ExcludeFrom => self.add_excludes_from_file(Path::new(value)),
        }
    }

    /// `--pattern LINE`: one `+ - ! R r P p` line, default style `sh`. A `P` line is validated
    /// but has no effect on the command line (borg behaves the same).
    pub fn add_pattern(&mut self, line: &str) -> Result<(), PatternError> {
        self.add_command(parse_command(line, PatternStyle::Shell)?);
        Ok(())
    }

    fn add_command(&mut self, cmd: Command) -> Option<PatternStyle> {
        match cmd {
            Command::Pattern(p, a) => self.patterns.push((p, a)),
            Command::Root(r) => self.roots.push(r),
            Command::Style(s) => return Some(s),
        }
        None
    }

    /// `--patterns-from` with the file's content: cleaned lines, default style `sh`, switched
    /// by `P` lines until the end of this content.
    pub fn add_patterns_from_str(&mut self, content: &str) -> Result<(), PatternError> {
        let mut style = PatternStyle::Shell;
        for line in clean_lines(content) {
            if let Some(s) = self.add_command(parse_command(line, style)?) {
                style = s;
            }
        }
        Ok(())
    }

    /// `--patterns-from FILE`.
    pub fn add_patterns_from_file(&mut self, path: &Path) -> Result<(), PatternError> {
        self.add_patterns_from_str(&read_pattern_file(path)?)
    }

    /// `-e/--exclude PATTERN`: default style `fm`, action `!` (borg's actual behaviour).
    pub fn add_exclude(&mut self, pattern: &str) -> Result<(), PatternError> {
        let p = Pattern::parse(pattern, PatternStyle::Fnmatch)?;
        self.patterns.push((p, Action::ExcludeNoRecurse));
        Ok(())
    }

    /// `--exclude-from` with the file's content: every cleaned line is an exclude pattern
    /// (default style `fm`; `+`/`-` are *not* command characters here).
    pub fn add_excludes_from_str(&mut self, content: &str) -> Result<(), PatternError> {
        for line in clean_lines(content) {
            self.add_exclude(line)?;
        }
        Ok(())
    }

    /// `--exclude-from FILE`.
    pub fn add_excludes_from_file(&mut self, path: &Path) -> Result<(), PatternError> {
        self.add_excludes_from_str(&read_pattern_file(path)?)
    }
}

/// Outcome of evaluating one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Include the item (`false`: excluded, status `x`).
    pub include: bool,
    /// Recurse into it if it is a directory (only `!` / `--exclude` matches stop recursion).
    pub recurse: bool,
}

#[derive(Debug)]
struct Entry {
    pattern: Pattern,
    action: Action,
    /// Only counted for include paths (PATH arguments); counting is cheap, so all count.
    hits: AtomicU64,
}

impl Clone for Entry {
    fn clone(&self) -> Self {
        Entry {
            pattern: self.pattern.clone(),
            action: self.action,
            hits: AtomicU64::new(self.hits.load(Ordering::Relaxed)),
        }
    }
}

/// Ordered pattern list with first-match-wins evaluation; `pf:` patterns are looked up first in
/// O(1). Evaluation takes `&self` (match counters are atomic), so one matcher can be shared
/// between threads.
#[derive(Debug, Clone)]
pub struct PatternMatcher {
    fallback: bool,
    items: Vec<Entry>,
    full: HashMap<String, Action>,
    /// Indices into `items` of the patterns added by [`PatternMatcher::add_include_paths`].
    include_paths: Vec<usize>,
}

impl PatternMatcher {
    /// Empty matcher; `fallback` is the answer when no pattern matches.
    pub fn new(fallback: bool) -> Self {
        PatternMatcher {
            fallback,
            items: Vec::new(),
            full: HashMap::new(),
            include_paths: Vec::new(),
        }
    }

    /// borg `create`/`recreate` matcher: the patterns, unmatched paths are included.
    pub fn for_create(patterns: impl IntoIterator<Item = (Pattern, Action)>) -> Self {
        let mut m = PatternMatcher::new(true);
        m.add_inclexcl(patterns);
        m
    }

    /// borg's matcher for commands reading an archive (extract, list, diff, export-tar,
    /// mount): the patterns first, then the PATH arguments as include patterns (default style
    /// `pp`); with PATHs given, unmatched items are excluded, otherwise included.
    pub fn for_archive<I, S>(
        patterns: impl IntoIterator<Item = (Pattern, Action)>,
        paths: I,
    ) -> Result<Self, PatternError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut m = PatternMatcher::new(true);
        m.add_inclexcl(patterns);
        m.add_include_paths(paths)?;
        Ok(m)
    }

    /// The answer when nothing matches.
    pub fn fallback(&self) -> bool {
        self.fallback
    }

    /// Change the answer when nothing matches.
    pub fn set_fallback(&mut self, fallback: bool) {
        self.fallback = fallback;
    }

    /// No patterns at all (borg's "partial extract" test uses `!is_empty()`).
    pub fn is_empty(&self) -> bool {
        self.items.is_empty() && self.full.is_empty()
    }

    fn push(&mut self, pattern: Pattern, action: Action) -> Option<usize> {
        if let Matcher::Full(key) = &pattern.matcher {
            self.full.insert(key.clone(), action);
            None
        } else {
            self.items.push(Entry {
                pattern,
                action,
                hits: AtomicU64::new(0),
            });
            Some(self.items.len() - 1)
        }
    }

    /// Append patterns that all have the same action.
    pub fn add(&mut self, patterns: impl IntoIterator<Item = Pattern>, action: Action) {
        for p in patterns {
            self.push(p, action);
        }
    }

    /// Append `(pattern, action)` pairs, e.g. [`PatternArgs::patterns`].
    pub fn add_inclexcl(&mut self, patterns: impl IntoIterator<Item = (Pattern, Action)>) {
        for (p, a) in patterns {
            self.push(p, a);
        }
    }

    /// Append PATH arguments as include patterns (default style `pp`, prefixes allowed) and set
    /// the fallback to "include" if `paths` is empty, "exclude" otherwise. Their match counts
    /// feed [`PatternMatcher::unmatched_include_patterns`].
    pub fn add_include_paths<I, S>(&mut self, paths: I) -> Result<(), PatternError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut any = false;
        for p in paths {
            any = true;
            let pattern = Pattern::parse(p.as_ref(), PatternStyle::PathPrefix)?;
            if let Some(idx) = self.push(pattern, Action::Include) {
                self.include_paths.push(idx);
            }
        }
        self.fallback = !any;
        Ok(())
    }

    /// Evaluate `path` (a leading `/` is ignored): exact `pf:` lookup, then the ordered
    /// patterns, first match wins; no match → fallback, recurse.
    pub fn evaluate(&self, path: &str) -> Decision {
        let path = path.trim_start_matches('/');
        if let Some(&action) = self.full.get(path) {
            return Decision {
                include: action.is_include(),
                recurse: action.recurses(),
            };
        }
        let mut path_sep = String::with_capacity(path.len() + 1);
        path_sep.push_str(path);
        path_sep.push('/');
        for entry in &self.items {
            if entry.pattern.matches_with_sep(path, &path_sep) {
                entry.hits.fetch_add(1, Ordering::Relaxed);
                return Decision {
                    include: entry.action.is_include(),
                    recurse: entry.action.recurses(),
                };
            }
        }
        Decision {
            include: self.fallback,
            recurse: true,
        }
    }

    /// Whether `path` is included (see [`PatternMatcher::evaluate`]).
    pub fn is_included(&self, path: &str) -> bool {
        self.evaluate(path).include
    }

    /// Include paths (added by [`PatternMatcher::add_include_paths`]) that never decided a
    /// match, in the order given; `pf:` paths are never reported (borg 1.4).
    pub fn unmatched_include_patterns(&self) -> Vec<&Pattern> {
        self.include_paths
            .iter()
            .map(|&i| &self.items[i])
            .filter(|e| e.hits.load(Ordering::Relaxed) == 0)
            .map(|e| &e.pattern)
            .collect()
    }

    /// borg's warnings for [`PatternMatcher::unmatched_include_patterns`]:
    /// `Include pattern '<p>' never matched.` (exit code 1, or 101 in modern mode). The
    /// pattern is shown without its style prefix, as borg does.
    pub fn never_matched_warnings(&self) -> Vec<String> {
        self.unmatched_include_patterns()
            .into_iter()
            .map(|p| format!("Include pattern '{}' never matched.", p.as_str()))
            .collect()
    }

    /// Reset all match counters (e.g. before a second pass over an archive).
    pub fn reset_match_counts(&self) {
        for e in &self.items {
            e.hits.store(0, Ordering::Relaxed);
        }
    }
}

/// `--strip-components N` applied to an archive path: the path without its first `n`
/// `/`-separated elements, or `None` when nothing is left (borg then skips the item).
pub fn strip_components(path: &str, n: usize) -> Option<&str> {
    let mut rest = path;
    for _ in 0..n {
        rest = &rest[rest.find('/')? + 1..];
    }
    (!rest.is_empty()).then_some(rest)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod borg_compat;
