//! The server's stderr side channel: JSON log/progress lines (after a dict negotiate), `$LOG`
//! lines (old servers) or plain text; everything is re-emitted locally prefixed `Remote: `.

use std::io::Read;

use crate::log::{self, Level};

pub fn level_from_name(name: &str) -> Level {
    match name {
        "DEBUG" => Level::Debug,
        "INFO" => Level::Info,
        "WARNING" | "WARN" => Level::Warning,
        "ERROR" => Level::Error,
        _ => Level::Critical,
    }
}

/// What one remote stderr line turns into locally (separated from the emission for testing).
#[derive(Debug, PartialEq)]
pub enum RemoteLine {
    Log {
        level: Level,
        logger: String,
        message: String,
        msgid: Option<String>,
    },
    /// A progress JSON object (message already prefixed), re-emitted only with `--progress`.
    Progress(serde_json::Value),
    /// Unknown JSON object type: dropped with a warning.
    Dropped(String, String),
    /// Plain text of unknown priority.
    Plain(String),
}

pub fn parse_remote_line(line: &str) -> Option<RemoteLine> {
    let text = line.trim_end_matches(['\r', '\n']);
    if text.is_empty() {
        return None;
    }
    if text.starts_with('{') {
        if let Ok(serde_json::Value::Object(mut obj)) = serde_json::from_str(text) {
            let ty = obj
                .get("type")
                .and_then(|t| t.as_str())
                .unwrap_or("")
                .to_string();
            let s = |o: &serde_json::Map<String, serde_json::Value>, k: &str| {
                o.get(k).and_then(|v| v.as_str()).map(str::to_string)
            };
            return Some(match ty.as_str() {
                "log_message" => RemoteLine::Log {
                    level: level_from_name(&s(&obj, "levelname").unwrap_or_default()),
                    logger: s(&obj, "name").unwrap_or_default(),
                    message: format!("Remote: {}", s(&obj, "message").unwrap_or_default()),
                    msgid: s(&obj, "msgid"),
                },
                "progress_message" | "progress_percent" => {
                    if let Some(m) = s(&obj, "message") {
                        obj.insert("message".into(), format!("Remote: {m}").into());
                    }
                    RemoteLine::Progress(serde_json::Value::Object(obj))
                }
                _ => RemoteLine::Dropped(ty, text.to_string()),
            });
        }
    }
    if let Some(rest) = text.strip_prefix("$LOG ") {
        let (lvl, msg) = rest.split_once(' ').unwrap_or((rest, ""));
        let level = level_from_name(lvl);
        if msg.starts_with("Remote:") {
            return Some(RemoteLine::Log {
                level,
                logger: String::new(),
                message: msg.to_string(),
                msgid: None,
            });
        }
        let (logger, msg) = msg.split_once(' ').unwrap_or(("", msg));
        return Some(RemoteLine::Log {
            level,
            logger: logger.to_string(),
            message: msg.to_string(),
            msgid: None,
        });
    }
    Some(RemoteLine::Plain(format!("Remote: {text}")))
}

/// Re-emits one remote stderr line through the local logger.
pub fn handle_remote_line(line: &str) {
    match parse_remote_line(line) {
        None => {}
        Some(RemoteLine::Log {
            level,
            logger,
            message,
            msgid,
        }) => log::log_with_msgid(level, &logger, &message, msgid.as_deref()),
        Some(RemoteLine::Progress(obj)) => {
            if !log::enabled(Level::Info, log::PROGRESS) {
                return;
            }
            if log::is_json() {
                log::emit_json(&obj);
            } else if obj.get("finished").and_then(|f| f.as_bool()) == Some(true) {
                log::clear_progress();
            } else if let Some(m) = obj.get("message").and_then(|m| m.as_str()) {
                if log::stderr_is_tty() {
                    log::write_stderr_progress(m);
                } else {
                    log::write_stderr_line(m);
                }
            }
        }
        Some(RemoteLine::Dropped(ty, text)) => log::warning(
            "borg.remote",
            &format!("Dropped remote log message with unknown type {ty:?}: {text}"),
        ),
        Some(RemoteLine::Plain(text)) => {
            if log::is_json() {
                log::warning("", &text);
            } else {
                log::write_stderr_line(&text);
            }
        }
    }
}

/// Reads a child's stderr until EOF, splitting on `\n` and `\r`, handing each line to `handle`.
pub fn pump_lines(mut r: impl Read, mut handle: impl FnMut(&str)) {
    let mut buf = [0u8; 32768];
    let mut pending: Vec<u8> = Vec::new();
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        pending.extend_from_slice(&buf[..n]);
        let mut start = 0;
        while let Some(off) = pending[start..]
            .iter()
            .position(|&b| b == b'\n' || b == b'\r')
        {
            let end = start + off + 1;
            handle(&String::from_utf8_lossy(&pending[start..end]));
            start = end;
        }
        pending.drain(..start);
    }
    if !pending.is_empty() {
        handle(&String::from_utf8_lossy(&pending));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_log_line() {
        let l = r#"{"type": "log_message", "time": 1.5, "message": "hello", "levelname": "INFO", "name": "borg.repository"}"#;
        assert_eq!(
            parse_remote_line(&format!("{l}\n")),
            Some(RemoteLine::Log {
                level: Level::Info,
                logger: "borg.repository".into(),
                message: "Remote: hello".into(),
                msgid: None,
            })
        );
    }

    #[test]
    fn progress_and_unknown() {
        let p = parse_remote_line(
            r#"{"type": "progress_percent", "message": "50%", "finished": false}"#,
        );
        match p {
            Some(RemoteLine::Progress(o)) => assert_eq!(o["message"], "Remote: 50%"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_remote_line(r#"{"type": "weird"}"#),
            Some(RemoteLine::Dropped(t, _)) if t == "weird"
        ));
    }

    #[test]
    fn legacy_and_plain() {
        assert_eq!(
            parse_remote_line("$LOG WARNING borg.repository Remote: disk full\n"),
            Some(RemoteLine::Log {
                level: Level::Warning,
                logger: "borg.repository".into(),
                message: "Remote: disk full".into(),
                msgid: None,
            })
        );
        assert_eq!(
            parse_remote_line("$LOG ERROR Remote: oops\n"),
            Some(RemoteLine::Log {
                level: Level::Error,
                logger: "".into(),
                message: "Remote: oops".into(),
                msgid: None,
            })
        );
        assert_eq!(
            parse_remote_line("sh: borg: not found\n"),
            Some(RemoteLine::Plain("Remote: sh: borg: not found".into()))
        );
        assert_eq!(parse_remote_line("\n"), None);
    }

    #[test]
    fn pump_splits_on_cr_and_lf() {
        let data = b"a\nb\rc\r\nlast".to_vec();
        let mut lines = Vec::new();
        pump_lines(&data[..], |l| lines.push(l.to_string()));
        assert_eq!(lines, vec!["a\n", "b\r", "c\r", "\n", "last"]);
    }
}
