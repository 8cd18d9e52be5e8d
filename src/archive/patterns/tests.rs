//! Hand-written expectations; every row of [`TABLE`] is also checked against real borg in
//! `borg_compat`.

use super::*;
use PatternStyle::{Fnmatch as FM, PathPrefix as PP, Shell as SH};

/// (pattern text, default style, archive path, matches?)
pub(super) const TABLE: &[(&str, PatternStyle, &str, bool)] = &[
    // ---- fm: `*` crosses `/`, leading-part matching, trailing `/` ----
    ("home/*/junk", FM, "home/a/junk", true),
    ("home/*/junk", FM, "home/a/junk/x", true),
    ("home/*/junk", FM, "home/a/b/junk", true),
    ("home/*/junk", FM, "home/a/junkx", false),
    ("home/*/junk", FM, "home/junk", false),
    ("home/*", FM, "home/a/b/c", true),
    ("home/*", FM, "home", false),
    ("*.tmp", FM, "x.tmp", true),
    ("*.tmp", FM, "a/b/x.tmp", true),
    ("*.tmp", FM, "a/x.tmp/y", true),
    ("*.tmp", FM, "a/x.tmpy", false),
    ("home/", FM, "home", false),
    ("home/", FM, "home/x", true),
    ("home/", FM, "home/x/y", true),
    ("home", FM, "home", true),
    ("home", FM, "home/x", true),
    ("home", FM, "homex", false),
    ("/home/u", FM, "home/u/f", true),
    ("//home/./u//", FM, "home/u/f", true),
    ("home/../etc", FM, "etc/passwd", true),
    ("h?me", FM, "home", true),
    ("h?me", FM, "hme", false),
    ("a?b", FM, "a/b", true),
    ("[ab]x", FM, "bx", true),
    ("[!ab]x", FM, "cx", true),
    ("[!ab]x", FM, "ax", false),
    ("[a-c]x", FM, "bx", true),
    ("[z-a]x", FM, "zx", false),
    ("[!z-a]x", FM, "qx", true),
    ("[]]x", FM, "]x", true),
    ("[a-", FM, "[a-", true),
    ("[^a]", FM, "^", true),
    ("[^a]", FM, "b", false),
    ("a\\b", FM, "a\\b", true),
    ("*", FM, "anything/at/all", true),
    ("Home", FM, "home", false),
    ("", FM, "x", false),
    // ---- sh: `*` stays in a component, `**/`, trailing `/` ----
    ("home/*/junk", SH, "home/a/junk", true),
    ("home/*/junk", SH, "home/a/junk/x", true),
    ("home/*/junk", SH, "home/a/b/junk", false),
    ("*.tmp", SH, "x.tmp", true),
    ("*.tmp", SH, "a/x.tmp", false),
    ("**/*.tmp", SH, "a/b/x.tmp", true),
    ("**/*.tmp", SH, "x.tmp", true),
    ("home/**/junk", SH, "home/junk", true),
    ("home/**/junk", SH, "home/a/b/junk/c", true),
    ("home/**", SH, "home/a/b", true),
    ("home/**", SH, "home", true), // "home/**/**/*" matches "home/",
    ("home/", SH, "home", false),
    ("home/", SH, "home/x/y", true),
    ("home", SH, "home/x/y", true),
    ("h?me", SH, "home", true),
    ("a?b", SH, "a/b", false),
    ("[/]x", SH, "a/x", false),
    ("a[/]x", SH, "a/x", true),
    ("***/x", SH, "a/b/x", true),
    ("/etc/*.conf", SH, "etc/a.conf", true),
    ("sh:**/.cache", FM, "home/u/.cache/x", true),
    ("sh:**/*x*/**", SH, "a/box/c", true),
    ("sh:**/*x*/**", SH, "a/box", true),
    ("sh:**/*x*/**", SH, "a/bo", false),
    // ---- re: unanchored search, no leading-`/` removal ----
    ("re:\\.tmp$", SH, "a/b.tmp", true),
    ("re:\\.tmp$", SH, "a/b.tmp/c", false),
    ("re:^home/[^/]+\\.tmp/", SH, "home/x.tmp/y", true),
    ("re:^home/[^/]+\\.tmp/", SH, "home/x.tmp", false),
    ("re:^/home", SH, "home/u", false),
    ("re:b", SH, "abc", true),
    ("re:a\\Z", SH, "ba", true),
    ("re:x{", SH, "ax{", true),
    ("re:[[]", SH, "a[", true),
    ("re:(?i)HOME", SH, "home", true),
    ("re:a$", SH, "x/a\n", true),
    ("re:(a$|b)", SH, "a\n", true),
    ("re:a\\Z", SH, "a\n", false),
    ("re:a\\s", SH, "a\u{1c}", true),
    ("re:\\bx\\b", SH, "a/x/b", true),
    ("re:[\\d-]{2,}", SH, "a/1-", true),
    ("a?b", FM, "a\nb", true),
    ("a*b", SH, "a\nb", true),
    // ---- pp: prefix at a component boundary ----
    ("pp:root/somedir", SH, "root/somedir", true),
    ("pp:root/somedir", SH, "root/somedir/x", true),
    ("pp:root/somedir", SH, "root/somedirx", false),
    ("pp:root/somedir/", SH, "root/somedir", true),
    ("pp:/root/somedir", SH, "root/somedir/x", true),
    ("pp:root//./somedir", SH, "root/somedir", true),
    ("root/*", PP, "root/*/x", true),
    ("root/*", PP, "root/a", false),
    ("pp:/", SH, "anything", true),
    // ---- pf: exact ----
    ("pf:root/file", SH, "root/file", true),
    ("pf:root/file", SH, "root/file/x", false),
    ("pf:/root//file", SH, "root/file", true),
    ("pf:root/file/", SH, "root/file", true),
    ("pf:root/*", SH, "root/a", false),
    // ---- style prefixes ----
    ("fm:a*", SH, "a/b/c", true),
    ("sh:a*", FM, "ab/c", true),
    ("sh:a*", FM, "a/b", true),
    // ---- error rows (see ERROR_ROWS) ----
    ("12:30", FM, "12:30", false), // unknown style "12"
    ("sh:[z-a]", FM, "a", false),  // bad character range
    ("re:\\p{L}", FM, "a", false),
    ("re:(?<n>a)", FM, "a", false),
    ("re:a(?i)", FM, "a", false),
    ("re:a**", FM, "a", false),
    ("re:^*", FM, "a", false),
];

/// Rows of `TABLE` whose pattern does not parse.
const ERROR_ROWS: &[&str] = &[
    "12:30",
    "sh:[z-a]",
    "re:\\p{L}",
    "re:(?<n>a)",
    "re:a(?i)",
    "re:a**",
    "re:^*",
];

#[test]
fn table() {
    for &(text, style, path, expected) in TABLE {
        let parsed = Pattern::parse(text, style);
        if ERROR_ROWS.contains(&text) {
            assert!(parsed.is_err(), "{text:?} should not parse");
            continue;
        }
        let p = parsed.unwrap_or_else(|e| panic!("{text:?}: {e}"));
        let mut m = PatternMatcher::new(false);
        m.add([p], Action::Include);
        assert_eq!(
            m.is_included(path),
            expected,
            "pattern {text:?} (default {style}) vs path {path:?}"
        );
    }
}

#[test]
fn leading_slash_of_path_is_ignored() {
    let mut m = PatternMatcher::new(false);
    m.add([Pattern::parse("home/u", SH).unwrap()], Action::Include);
    assert!(m.is_included("/home/u/x"));
    assert!(m.is_included("//home/u"));
}

fn args(lines: &str) -> PatternArgs {
    let mut a = PatternArgs::new();
    a.add_patterns_from_str(lines).unwrap();
    a
}

#[test]
fn first_match_wins() {
    let m = PatternMatcher::for_create(args("+ pics/2018/good\n- pics/2018\n").patterns);
    assert!(m.is_included("pics/2018/good/a.jpg"));
    assert!(!m.is_included("pics/2018/bad.jpg"));
    assert!(m.is_included("pics/2019/x.jpg")); // fallback: include
    let m = PatternMatcher::for_create(args("- pics/2018\n+ pics/2018/good\n").patterns);
    assert!(!m.is_included("pics/2018/good/a.jpg"));
}

#[test]
fn exclude_vs_exclude_norecurse() {
    let m = PatternMatcher::for_create(
        args("- home/*/junk\n! home/*/tmp\n+ home/u/junk/keep\n").patterns,
    );
    assert_eq!(
        m.evaluate("home/u/junk"),
        Decision {
            include: false,
            recurse: true
        }
    );
    assert_eq!(
        m.evaluate("home/u/tmp"),
        Decision {
            include: false,
            recurse: false
        }
    );
    assert_eq!(
        m.evaluate("home/u/x"),
        Decision {
            include: true,
            recurse: true
        }
    );
    // the `-` excluded dir's contents are still matched (first match: `- home/*/junk`)
    assert!(!m.is_included("home/u/junk/keep"));
    let m = PatternMatcher::for_create(args("+ home/u/junk/keep\n- home/*/junk\n").patterns);
    assert!(m.is_included("home/u/junk/keep"));
    assert!(m.evaluate("home/u/junk").recurse);
}

#[test]
fn pf_is_checked_first_and_last_pf_wins() {
    let m = PatternMatcher::for_create(args("- home\n+ pf:home/u/file\n").patterns);
    assert!(m.is_included("home/u/file"));
    assert!(!m.is_included("home/u/other"));
    let m = PatternMatcher::for_create(args("+ pf:a\n! pf:a\n").patterns);
    assert_eq!(
        m.evaluate("a"),
        Decision {
            include: false,
            recurse: false
        }
    );
}

#[test]
fn p_switches_style_until_end_of_file() {
    let mut a = PatternArgs::new();
    a.add_patterns_from_str("- a/*\nP fm\n- b/*\nP pf\n- c/d\n")
        .unwrap();
    a.add_patterns_from_str("- e/*\n").unwrap();
    let styles: Vec<_> = a.patterns.iter().map(|(p, _)| p.style()).collect();
    assert_eq!(
        styles,
        [
            PatternStyle::Shell,
            PatternStyle::Fnmatch,
            PatternStyle::PathFull,
            PatternStyle::Shell
        ]
    );
    // `P` on the command line is validated but has no effect
    a.add_pattern("P fm").unwrap();
    a.add_pattern("- f/*").unwrap();
    assert_eq!(a.patterns.last().unwrap().0.style(), PatternStyle::Shell);
    assert_eq!(
        a.add_pattern("P xx").unwrap_err().to_string(),
        "Invalid pattern style: xx"
    );
}

#[test]
fn roots_comments_blank_lines_and_whitespace() {
    let a = args("# comment\n\n   \n  R /home/u  \r\nr/etc\n\t+ sh:x  \n  # indented comment\nR  /with space \n");
    assert_eq!(a.roots, ["/home/u", "/etc", "/with space"]);
    assert_eq!(a.patterns.len(), 1);
    assert_eq!(a.patterns[0].0.as_str(), "x");
    assert_eq!(a.patterns[0].1, Action::Include);
    // old Mac line ends split lines too
    let a = args("R /a\r- b\r");
    assert_eq!(a.roots, ["/a"]);
    assert_eq!(a.patterns.len(), 1);
    // command-line values are not stripped on the right
    let mut a = PatternArgs::new();
    a.add_pattern("+   x ").unwrap();
    assert_eq!(a.patterns[0].0.as_str(), "x ");
}

#[test]
fn borgmatic_and_vorta_lines() {
    let a = args(
        "R /home/u\n- fm:/home/u/.cache\n! fm:/home/u/mnt\n+ pf:/home/u/.cache/keep\n- sh:**/*.pyc\nP sh\n",
    );
    assert_eq!(a.roots, ["/home/u"]);
    let m = PatternMatcher::for_create(a.patterns);
    assert!(!m.is_included("home/u/.cache/x"));
    assert!(m.is_included("home/u/.cache/keep"));
    assert!(!m.evaluate("home/u/mnt").recurse);
    assert!(!m.is_included("home/u/src/a.pyc"));
    assert!(m.is_included("home/u/src/a.py"));
    // Vorta extract
    let a = args("P pf\n+ home/u/a\n+ home/u/dir\n- fm:*\n");
    let m = PatternMatcher::for_archive(a.patterns, Vec::<String>::new()).unwrap();
    assert!(m.is_included("home/u/a"));
    assert!(m.is_included("home/u/dir"));
    assert!(!m.is_included("home/u/dir/x"));
    assert!(!m.is_included("home/u/b"));
}

#[test]
fn exclude_options() {
    let mut a = PatternArgs::new();
    a.add_exclude("/home/*/junk").unwrap();
    a.add_excludes_from_str("# c\n  *.tmp \n+ keep\nsh:**/x\n")
        .unwrap();
    let kinds: Vec<_> = a
        .patterns
        .iter()
        .map(|(p, act)| (p.style(), p.as_str(), *act))
        .collect();
    assert_eq!(
        kinds,
        [
            (FM, "/home/*/junk", Action::ExcludeNoRecurse),
            (FM, "*.tmp", Action::ExcludeNoRecurse),
            (FM, "+ keep", Action::ExcludeNoRecurse),
            (SH, "**/x", Action::ExcludeNoRecurse),
        ]
    );
    assert!(a.add_exclude("xx:foo").is_err());
}

#[test]
fn error_texts() {
    let e = |line: &str| parse_command(line, SH).unwrap_err().to_string();
    assert_eq!(e(""), "A pattern/command must not be empty.");
    assert_eq!(
        e("x"),
        "A pattern/command must start with any of: -, !, +, R, r, P, p"
    );
    assert_eq!(
        e(" + x"),
        "A pattern/command must start with any of: -, !, +, R, r, P, p"
    );
    assert_eq!(e("+"), "A pattern/command must have a value part.");
    assert_eq!(e("-  \t"), "A pattern/command must have a value part.");
    assert_eq!(e("R"), "A pattern/command must have a value part.");
    assert_eq!(e("P"), "A pattern/command must have a value part.");
    assert_eq!(e("P xx"), "Invalid pattern style: xx");
    assert_eq!(e("P SH"), "Invalid pattern style: SH");
    assert_eq!(e("+xx:foo"), "Unknown pattern style: xx");
    assert!(matches!(
        parse_command("+sh:[z-a]", SH),
        Err(PatternError::Regex { .. })
    ));
    assert!(matches!(
        parse_command("+re:(", SH),
        Err(PatternError::Regex { .. })
    ));
    assert!(matches!(
        parse_command("+re:(a)\\1", SH),
        Err(PatternError::Regex { .. })
    ));
    let mut a = PatternArgs::new();
    assert_eq!(
        a.add_patterns_from_str("+ ok\nbad\n")
            .unwrap_err()
            .to_string(),
        "A pattern/command must start with any of: -, !, +, R, r, P, p"
    );
    let missing = Path::new("/nonexistent/rborg-patterns");
    assert_eq!(
        a.add_patterns_from_file(missing).unwrap_err().to_string(),
        "[Errno 2] No such file or directory: '/nonexistent/rborg-patterns'"
    );
}

#[test]
fn pattern_files_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let pf = dir.path().join("patterns");
    std::fs::write(&pf, "R /src\nP fm\n- src/*.o\n").unwrap();
    let ef = dir.path().join("excludes");
    std::fs::write(&ef, "*.bak\n").unwrap();
    let mut a = PatternArgs::new();
    a.add_patterns_from_file(&pf).unwrap();
    a.add_excludes_from_file(&ef).unwrap();
    assert_eq!(a.roots, ["/src"]);
    let m = PatternMatcher::for_create(a.patterns);
    assert!(!m.is_included("src/a/b.o"));
    assert!(!m.is_included("src/x.bak"));
    assert!(m.is_included("src/x.c"));
}

#[test]
fn options_in_command_line_order() {
    let dir = tempfile::tempdir().unwrap();
    let ef = dir.path().join("ef");
    std::fs::write(&ef, "- ef1\n").unwrap();
    let pf = dir.path().join("pf");
    std::fs::write(&pf, "+ pf1\nR /root1\n").unwrap();
    let mut a = PatternArgs::new();
    for (opt, val) in [
        (PatternOption::ExcludeFrom, ef.to_str().unwrap()),
        (PatternOption::Pattern, "+cl1"),
        (PatternOption::PatternsFrom, pf.to_str().unwrap()),
        (PatternOption::Exclude, "ex1"),
    ] {
        a.add_option(opt, val).unwrap();
    }
    // what borg 1.2.4 and 1.4 produce for the same command line
    let got: Vec<_> = a
        .patterns
        .iter()
        .map(|(p, act)| (p.as_str(), *act))
        .collect();
    assert_eq!(
        got,
        [
            ("- ef1", Action::ExcludeNoRecurse),
            ("cl1", Action::Include),
            ("pf1", Action::Include),
            ("ex1", Action::ExcludeNoRecurse),
        ]
    );
    assert_eq!(a.roots, ["/root1"]);
}

#[test]
fn include_paths_and_never_matched() {
    let mut a = PatternArgs::new();
    a.add_pattern("- home/u/.cache").unwrap();
    let m = PatternMatcher::for_archive(
        a.patterns,
        [
            "home/u",
            "sh:etc/*.conf",
            "pf:var/x",
            "nothere",
            "/home/u/.cache",
        ],
    )
    .unwrap();
    assert!(!m.is_empty());
    assert!(m.is_included("home/u/doc"));
    assert!(!m.is_included("home/u/.cache/x")); // the `-` comes first and shadows the PATH
    assert!(!m.is_included("var/log"));
    assert!(m.is_included("var/x"));
    assert_eq!(
        m.never_matched_warnings(),
        [
            "Include pattern 'etc/*.conf' never matched.",
            "Include pattern 'nothere' never matched.",
            "Include pattern '/home/u/.cache' never matched.",
        ]
    );
    assert!(m.is_included("etc/a.conf"));
    assert_eq!(m.unmatched_include_patterns().len(), 2);
    m.reset_match_counts();
    assert_eq!(m.unmatched_include_patterns().len(), 4);

    // no PATHs: everything is included, nothing to warn about
    let m = PatternMatcher::for_archive(Vec::new(), Vec::<&str>::new()).unwrap();
    assert!(m.is_empty());
    assert!(m.is_included("anything"));
    assert!(m.never_matched_warnings().is_empty());
    assert!(PatternMatcher::for_archive(Vec::new(), ["xx:a"]).is_err());
}

#[test]
fn strip_components_like_borg() {
    assert_eq!(strip_components("a/b/c", 0), Some("a/b/c"));
    assert_eq!(strip_components("a/b/c", 1), Some("b/c"));
    assert_eq!(strip_components("a/b/c", 2), Some("c"));
    assert_eq!(strip_components("a/b/c", 3), None);
    assert_eq!(strip_components("a", 1), None);
    assert_eq!(strip_components("a/", 1), None);
}

#[test]
fn matcher_is_shareable_between_threads() {
    fn assert_sync<T: Send + Sync>() {}
    assert_sync::<PatternMatcher>();
}

#[test]
fn style_names() {
    for s in PatternStyle::ALL {
        assert_eq!(PatternStyle::from_prefix(s.prefix()), Some(s));
    }
    assert_eq!(PatternStyle::from_prefix("sh:"), None);
    assert_eq!(Action::ExcludeNoRecurse.as_char(), '!');
    let p = Pattern::parse("sh:/a//b/", FM).unwrap();
    assert_eq!((p.as_str(), p.normalized()), ("/a//b/", "a/b/**/*/"));
    assert_eq!(p.to_string(), "/a//b/");
}
