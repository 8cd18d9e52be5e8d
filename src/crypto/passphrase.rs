//! Where passphrases come from: `BORG_PASSPHRASE`, `BORG_PASSCOMMAND`, `BORG_PASSPHRASE_FD`,
//! `BORG_NEW_PASSPHRASE`, or the terminal.

use std::io::Read;
use std::os::unix::io::FromRawFd;

use zeroize::Zeroizing;

use super::{CryptoError, Result};
use crate::prompt::{self, Question};

pub type Passphrase = Zeroizing<String>;

fn from_env(var: &str) -> Option<Passphrase> {
    std::env::var(var).ok().map(Zeroizing::new)
}

fn from_command() -> Result<Option<Passphrase>> {
    let Ok(cmd) = std::env::var("BORG_PASSCOMMAND") else {
        return Ok(None);
    };
    let argv = shlex::split(&cmd)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| CryptoError::PasscommandFailure(format!("cannot parse {cmd:?}")))?;
    let out = std::process::Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(std::process::Stdio::inherit())
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| CryptoError::PasscommandFailure(e.to_string()))?;
    if !out.status.success() {
        return Err(CryptoError::PasscommandFailure(format!(
            "Command '{}' returned non-zero exit status {}.",
            argv.join(" "),
            out.status.code().unwrap_or(-1)
        )));
    }
    let s = String::from_utf8_lossy(&out.stdout).into_owned();
    Ok(Some(Zeroizing::new(s.trim_end_matches('\n').to_string())))
}

fn from_fd() -> Result<Option<Passphrase>> {
    let Some(fd) = std::env::var("BORG_PASSPHRASE_FD")
        .ok()
        .and_then(|v| v.trim().parse::<i32>().ok())
    else {
        return Ok(None);
    };
    if fd < 0 {
        return Ok(None);
    }
    // SAFETY: the user hands us this inherited descriptor; we take ownership and close it after
    // reading, as borg does.
    let mut f = unsafe { std::fs::File::from_raw_fd(fd) };
    let mut s = String::new();
    f.read_to_string(&mut s)
        .map_err(|e| CryptoError::NoPassphrase(format!("BORG_PASSPHRASE_FD: {e}")))?;
    Ok(Some(Zeroizing::new(s.trim_end_matches('\n').to_string())))
}

/// The passphrase given by the environment (variable, command or fd), if any.
pub fn env_passphrase() -> Result<Option<Passphrase>> {
    if let Some(p) = from_env("BORG_PASSPHRASE") {
        return Ok(Some(p));
    }
    if let Some(p) = from_command()? {
        return Ok(Some(p));
    }
    from_fd()
}

/// Asks on the terminal; end of input means no passphrase can be had.
pub fn getpass(prompt_text: &str) -> Result<Passphrase> {
    match prompt::getpass(prompt_text) {
        Some(p) => Ok(Zeroizing::new(p)),
        None => {
            let set = |v: &str| {
                if std::env::var_os(v).is_some() {
                    "set"
                } else {
                    "not set"
                }
            };
            Err(CryptoError::NoPassphrase(format!(
                "BORG_PASSPHRASE is {}. BORG_PASSCOMMAND is {}. Interactive password query failed.",
                set("BORG_PASSPHRASE"),
                set("BORG_PASSCOMMAND")
            )))
        }
    }
}

fn offer_display(p: &str) {
    let msg = "Do you want your passphrase to be displayed for verification? [yN]: ";
    if prompt::yes(&Question {
        msg: Some(msg),
        retry_msg: Some(msg),
        invalid_msg: Some("Invalid answer, try again."),
        retry: true,
        env_var_override: Some("BORG_DISPLAY_PASSPHRASE"),
        ..Default::default()
    }) {
        crate::log::write_stderr_line(&format!("Your passphrase (between double-quotes): \"{p}\""));
        crate::log::write_stderr_line(
            "Make sure the passphrase displayed above is exactly what you wanted.",
        );
        if !p.is_ascii() {
            crate::log::write_stderr_line(&format!(
                "Your passphrase (UTF-8 encoding in hex): {}",
                hex::encode(p.as_bytes())
            ));
            crate::log::write_stderr_line("As you have a non-ASCII passphrase, it is recommended to keep the UTF-8 encoding in hex together with the passphrase at a safe place.");
        }
    }
}

/// A new passphrase (init, change-passphrase): `BORG_NEW_PASSPHRASE`, then the environment,
/// then an interactive prompt with confirmation.
pub fn new_passphrase(allow_empty: bool) -> Result<Passphrase> {
    if let Some(p) = from_env("BORG_NEW_PASSPHRASE") {
        return Ok(p);
    }
    if let Some(p) = env_passphrase()? {
        return Ok(p);
    }
    for _ in 0..10 {
        let p = getpass("Enter new passphrase: ")?;
        if allow_empty || !p.is_empty() {
            let p2 = getpass("Enter same passphrase again: ")?;
            if *p == *p2 {
                offer_display(&p);
                crate::log::info(
                    "borg.crypto.key",
                    "Remember your passphrase. Your data will be inaccessible without it.",
                );
                return Ok(p);
            }
            crate::log::write_stderr_line("Passphrases do not match");
        } else {
            crate::log::write_stderr_line("Passphrase must not be blank");
        }
    }
    Err(CryptoError::PasswordRetriesExceeded)
}
