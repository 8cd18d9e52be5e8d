//! Process-wide logging to stderr in borg's two formats: bare messages (`%(message)s`) or, with
//! `--log-json`, one JSON object per line. The command layer configures it once; every layer
//! logs through it with borg's logger names (`borg.repository`, `borg.output.list`, ...).

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Level {
    Debug = 10,
    Info = 20,
    Warning = 30,
    Error = 40,
    Critical = 50,
}

impl Level {
    pub fn name(self) -> &'static str {
        match self {
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warning => "WARNING",
            Level::Error => "ERROR",
            Level::Critical => "CRITICAL",
        }
    }
    fn from_u8(v: u8) -> Level {
        match v {
            10 => Level::Debug,
            20 => Level::Info,
            30 => Level::Warning,
            40 => Level::Error,
            _ => Level::Critical,
        }
    }
}

static LEVEL: AtomicU8 = AtomicU8::new(Level::Warning as u8);
static JSON: AtomicBool = AtomicBool::new(false);
/// Output loggers forced to INFO by their options (`--list`, `--stats`, `--progress`, ...).
static FORCED: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
/// Serialises stderr writes from parallel workers and remembers a pending `\r` progress line.
static STDERR: Mutex<bool> = Mutex::new(false);

pub fn set_level(l: Level) {
    LEVEL.store(l as u8, Ordering::Relaxed);
}
pub fn level() -> Level {
    Level::from_u8(LEVEL.load(Ordering::Relaxed))
}
pub fn set_json(on: bool) {
    JSON.store(on, Ordering::Relaxed);
}
pub fn is_json() -> bool {
    JSON.load(Ordering::Relaxed)
}
/// Lets records of `logger` through at INFO even if the global level is higher.
pub fn force_info(logger: &'static str) {
    FORCED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(logger);
}

pub fn enabled(lvl: Level, logger: &str) -> bool {
    let forced = || {
        FORCED
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&logger)
    };
    // borg's output loggers have their own level: INFO when their option is given, else
    // WARNING, whatever the global level is.
    if logger.starts_with("borg.output.") {
        return lvl >= Level::Warning || (lvl >= Level::Info && forced());
    }
    lvl >= level() || (lvl >= Level::Info && forced())
}

pub fn unix_time() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Writes one line to stderr (clearing an in-place progress line first).
pub fn write_stderr_line(line: &str) {
    let mut pending_cr = STDERR.lock().unwrap_or_else(|e| e.into_inner());
    let mut err = std::io::stderr().lock();
    if *pending_cr {
        let _ = err.write_all(b"\r\x1b[K");
        *pending_cr = false;
    }
    let _ = err.write_all(line.as_bytes());
    let _ = err.write_all(b"\n");
    let _ = err.flush();
}

/// Writes an in-place (`\r`-terminated) progress line on a terminal.
pub fn write_stderr_progress(line: &str) {
    let mut pending_cr = STDERR.lock().unwrap_or_else(|e| e.into_inner());
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(b"\r\x1b[K");
    let _ = err.write_all(line.as_bytes());
    let _ = err.flush();
    *pending_cr = true;
}

/// Clears a pending in-place progress line.
pub fn clear_progress() {
    let mut pending_cr = STDERR.lock().unwrap_or_else(|e| e.into_inner());
    if *pending_cr {
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(b"\r\x1b[K");
        let _ = err.flush();
        *pending_cr = false;
    }
}

/// Emits a JSON object (already serialised) as one stderr line.
pub fn emit_json(obj: &serde_json::Value) {
    write_stderr_line(&obj.to_string());
}

pub fn log_with_msgid(lvl: Level, logger: &str, msg: &str, msgid: Option<&str>) {
    if !enabled(lvl, logger) {
        return;
    }
    if is_json() {
        let mut m = serde_json::Map::new();
        m.insert("type".into(), "log_message".into());
        m.insert("time".into(), unix_time().into());
        m.insert("message".into(), msg.into());
        m.insert("levelname".into(), lvl.name().into());
        m.insert("name".into(), logger.into());
        if let Some(id) = msgid {
            m.insert("msgid".into(), id.into());
        }
        emit_json(&serde_json::Value::Object(m));
    } else {
        write_stderr_line(msg);
    }
}

pub fn log(lvl: Level, logger: &str, msg: &str) {
    log_with_msgid(lvl, logger, msg, None)
}
pub fn debug(logger: &str, msg: &str) {
    log(Level::Debug, logger, msg)
}
pub fn info(logger: &str, msg: &str) {
    log(Level::Info, logger, msg)
}
pub fn warning(logger: &str, msg: &str) {
    log(Level::Warning, logger, msg)
}
pub fn error(logger: &str, msg: &str) {
    log(Level::Error, logger, msg)
}

/// Logger name of borg's progress output (enabled by `--progress`).
pub const PROGRESS: &str = "borg.output.progress";

static OPERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn next_operation() -> u64 {
    OPERATION.fetch_add(1, Ordering::Relaxed) + 1
}

pub fn stderr_is_tty() -> bool {
    // SAFETY: isatty has no preconditions.
    unsafe { libc::isatty(2) == 1 }
}

/// Formats a Python `%W.Pf` placeholder (and `%%`) in borg's progress message templates.
pub fn format_percent(template: &str, pct: f64) -> String {
    let mut out = String::new();
    let mut chars = template.chars().peekable();
    let mut done = false;
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'%') {
            chars.next();
            out.push('%');
            continue;
        }
        let mut spec = String::new();
        while let Some(&d) = chars.peek() {
            chars.next();
            if d == 'f' {
                break;
            }
            spec.push(d);
        }
        if done {
            continue;
        }
        let (w, p) = spec.split_once('.').unwrap_or((spec.as_str(), "6"));
        let w: usize = w.parse().unwrap_or(0);
        let p: usize = p.parse().unwrap_or(6);
        out.push_str(&format!("{pct:w$.p$}"));
        done = true;
    }
    out
}

/// borg's `ProgressIndicatorPercent`: shown only with `--progress`; text lines rewritten in
/// place on a terminal, `progress_percent` JSON objects with `--log-json`.
pub struct ProgressPercent {
    total: u64,
    template: &'static str,
    msgid: &'static str,
    op: u64,
    step: f64,
    last: Option<f64>,
    enabled: bool,
}

impl ProgressPercent {
    pub fn new(total: u64, template: &'static str, msgid: &'static str) -> ProgressPercent {
        let step = if template.contains(".1f") { 0.1 } else { 1.0 };
        ProgressPercent {
            total,
            template,
            msgid,
            op: next_operation(),
            step,
            last: None,
            enabled: enabled(Level::Info, PROGRESS),
        }
    }

    pub fn show(&mut self, current: u64) {
        self.show_with(current, None)
    }

    pub fn show_with(&mut self, current: u64, info: Option<&str>) {
        if !self.enabled {
            return;
        }
        let pct = if self.total == 0 {
            100.0
        } else {
            current as f64 * 100.0 / self.total as f64
        };
        let bucket = (pct / self.step).floor() * self.step;
        if self.last.is_some_and(|l| l >= bucket) && info.is_none() {
            return;
        }
        self.last = Some(bucket);
        let mut msg = format_percent(self.template, pct);
        if let Some(i) = info {
            msg = format!("{msg} {i}");
        }
        if is_json() {
            let mut m = serde_json::Map::new();
            m.insert("type".into(), "progress_percent".into());
            m.insert("operation".into(), self.op.into());
            m.insert("msgid".into(), self.msgid.into());
            m.insert("finished".into(), false.into());
            m.insert("message".into(), msg.into());
            m.insert("current".into(), current.into());
            m.insert("total".into(), self.total.into());
            m.insert(
                "info".into(),
                info.map_or(serde_json::Value::Null, |i| serde_json::json!([i])),
            );
            m.insert("time".into(), unix_time().into());
            emit_json(&serde_json::Value::Object(m));
        } else if stderr_is_tty() {
            write_stderr_progress(&msg);
        } else {
            write_stderr_line(&msg);
        }
    }

    pub fn finish(&mut self) {
        if !self.enabled {
            return;
        }
        if is_json() {
            emit_json(&serde_json::json!({
                "type": "progress_percent",
                "operation": self.op,
                "msgid": self.msgid,
                "finished": true,
                "time": unix_time(),
            }));
        } else {
            clear_progress();
        }
        self.enabled = false;
    }
}

/// borg's `ProgressIndicatorMessage` (`progress_message` objects).
pub struct ProgressMessage {
    msgid: &'static str,
    op: u64,
    enabled: bool,
}

impl ProgressMessage {
    pub fn new(msgid: &'static str) -> ProgressMessage {
        ProgressMessage {
            msgid,
            op: next_operation(),
            enabled: enabled(Level::Info, PROGRESS),
        }
    }
    pub fn output(&self, msg: &str) {
        if !self.enabled {
            return;
        }
        if is_json() {
            emit_json(&serde_json::json!({
                "type": "progress_message",
                "operation": self.op,
                "msgid": self.msgid,
                "finished": false,
                "message": msg,
                "time": unix_time(),
            }));
        } else if stderr_is_tty() {
            write_stderr_progress(msg);
        } else {
            write_stderr_line(msg);
        }
    }
    pub fn finish(&self) {
        if !self.enabled {
            return;
        }
        if is_json() {
            emit_json(&serde_json::json!({
                "type": "progress_message",
                "operation": self.op,
                "msgid": self.msgid,
                "finished": true,
                "time": unix_time(),
            }));
        } else {
            clear_progress();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_templates() {
        assert_eq!(
            format_percent("Checking segments %3.1f%%", 12.34),
            "Checking segments 12.3%"
        );
        assert_eq!(
            format_percent("Pruning archives %3.0f%%", 50.0),
            "Pruning archives  50%"
        );
        assert_eq!(
            format_percent("%5.1f%% Extracting: x", 4.2),
            "  4.2% Extracting: x"
        );
    }
}
