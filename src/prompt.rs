//! Questions to the user with environment-variable answers (borg's `yes()`), and passphrase
//! entry from the terminal.

use std::io::{BufRead, Write};

pub const TRUISH: &[&str] = &["Yes", "YES", "yes", "Y", "y", "1"];
pub const FALSISH: &[&str] = &["No", "NO", "no", "N", "n", "0"];
pub const DEFAULTISH: &[&str] = &["Default", "DEFAULT", "default", "D", "d", ""];

/// One yes/no question, configured like borg's `yes(...)` keyword arguments.
#[derive(Default)]
pub struct Question<'a> {
    pub msg: Option<&'a str>,
    pub false_msg: Option<&'a str>,
    pub true_msg: Option<&'a str>,
    pub default_msg: Option<&'a str>,
    pub retry_msg: Option<&'a str>,
    pub invalid_msg: Option<&'a str>,
    pub env_var_override: Option<&'a str>,
    /// Answers that count as "true" (borg's "I know what I am doing" prompts accept only YES).
    pub truish: Option<&'a [&'a str]>,
    pub falsish: Option<&'a [&'a str]>,
    pub default: bool,
    pub retry: bool,
    pub msgid: Option<&'a str>,
}

fn output(msg: &str, kind: &str, is_prompt: bool, msgid: Option<&str>, env_var: Option<&str>) {
    if crate::log::is_json() {
        let mut m = serde_json::Map::new();
        if let Some(v) = env_var {
            m.insert("env_var".into(), v.into());
        }
        m.insert("type".into(), format!("question_{kind}").into());
        m.insert(
            "msgid".into(),
            msgid.map_or(serde_json::Value::Null, |s| s.into()),
        );
        m.insert("message".into(), msg.into());
        crate::log::emit_json(&serde_json::Value::Object(m));
    } else if is_prompt {
        crate::log::clear_progress();
        let mut e = std::io::stderr().lock();
        let _ = write!(e, "{msg}");
        let _ = e.flush();
    } else {
        crate::log::write_stderr_line(msg);
    }
}

fn read_line() -> Option<String> {
    let mut s = String::new();
    match std::io::stdin().lock().read_line(&mut s) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(s.trim_end_matches(['\n', '\r']).to_string()),
    }
}

/// Asks a yes/no question (answer from the environment variable if set, else stdin).
pub fn yes(q: &Question) -> bool {
    let truish = q.truish.unwrap_or(TRUISH);
    let falsish = q.falsish.unwrap_or(FALSISH);
    let msgid = q.msgid.or(q.env_var_override);
    if let Some(m) = q.msg {
        output(m, "prompt", true, msgid, None);
    }
    let mut env_var = q.env_var_override;
    loop {
        let mut answer = None;
        if let Some(var) = env_var {
            if let Ok(a) = std::env::var(var) {
                output(
                    &format!("{a} (from {var})"),
                    "env_answer",
                    false,
                    msgid,
                    Some(var),
                );
                answer = Some(a);
            }
        }
        let answer = match answer {
            Some(a) => a,
            None => match read_line() {
                Some(a) => a,
                None => {
                    if q.default {
                        truish[0].to_string()
                    } else {
                        falsish[0].to_string()
                    }
                }
            },
        };
        if DEFAULTISH.contains(&answer.as_str()) {
            if let Some(m) = q.default_msg {
                output(m, "accepted_default", false, msgid, None);
            }
            return q.default;
        }
        if truish.contains(&answer.as_str()) {
            if let Some(m) = q.true_msg {
                output(m, "accepted_true", false, msgid, None);
            }
            return true;
        }
        if falsish.contains(&answer.as_str()) {
            if let Some(m) = q.false_msg {
                output(m, "accepted_false", false, msgid, None);
            }
            return false;
        }
        if let Some(m) = q.invalid_msg {
            output(m, "invalid_answer", false, msgid, None);
        }
        if !q.retry {
            return q.default;
        }
        if let Some(m) = q.retry_msg {
            output(m, "prompt_retry", true, msgid, None);
        }
        env_var = None;
    }
}

/// Reads a secret from the controlling terminal without echo (falls back to stdin).
/// `None` on end of input.
pub fn getpass(prompt: &str) -> Option<String> {
    use std::fs::OpenOptions;
    use std::os::unix::io::AsRawFd;
    if let Ok(tty) = OpenOptions::new().read(true).write(true).open("/dev/tty") {
        let fd = tty.as_raw_fd();
        let mut term: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: fd is a valid open terminal; term is a valid out-pointer.
        let have_term = unsafe { libc::tcgetattr(fd, &mut term) } == 0;
        let old = term;
        if have_term {
            term.c_lflag &= !libc::ECHO;
            // SAFETY: as above.
            unsafe { libc::tcsetattr(fd, libc::TCSAFLUSH, &term) };
        }
        let mut w = &tty;
        let _ = write!(w, "{prompt}");
        let _ = w.flush();
        let mut line = String::new();
        let n = std::io::BufReader::new(&tty).read_line(&mut line);
        if have_term {
            // SAFETY: restoring the saved attributes.
            unsafe { libc::tcsetattr(fd, libc::TCSAFLUSH, &old) };
        }
        let _ = writeln!(w);
        return match n {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(line.trim_end_matches(['\n', '\r']).to_string()),
        };
    }
    output(prompt, "prompt", true, None, None);
    let answer = read_line();
    if answer.is_none() && !crate::log::is_json() {
        // end the prompt's line: the error that follows stands on a line of its own
        eprintln!();
    }
    answer
}
