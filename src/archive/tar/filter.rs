//! External (de)compression filters, as borg runs them: the command line is split like a
//! shell would (no shell is involved) and the program sits between the tar stream and the
//! file: `us → filter → FILE` for export, `FILE → filter → us` for import.

use std::fs::File;
use std::io::{self, Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

/// borg's `get_tar_filter`: the filter for a file name suffix (`None`: plain tar).
pub fn auto_filter(fname: &str, decompress: bool) -> Option<&'static str> {
    let ends = |sfx: &[&str]| sfx.iter().any(|s| fname.ends_with(s));
    let f = if ends(&[".tar.gz", ".tgz"]) {
        ("gzip", "gzip -d")
    } else if ends(&[".tar.bz2", ".tbz"]) {
        ("bzip2", "bzip2 -d")
    } else if ends(&[".tar.xz", ".txz"]) {
        ("xz", "xz -d")
    } else if ends(&[".tar.lz4"]) {
        ("lz4", "lz4 -d")
    } else if ends(&[".tar.zstd", ".tar.zst"]) {
        ("zstd", "zstd -d")
    } else {
        return None;
    };
    Some(if decompress { f.1 } else { f.0 })
}

/// Resolves `--tar-filter` (`auto` = by suffix; an empty value = no filter).
pub fn resolve(spec: &str, fname: &str, decompress: bool) -> Option<String> {
    if spec == "auto" {
        auto_filter(fname, decompress).map(str::to_string)
    } else if spec.trim().is_empty() {
        None
    } else {
        Some(spec.to_string())
    }
}

/// A filter that failed to start or exited with an error.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error("filter {0}: process creation failed")]
    Spawn(String),
    #[error("filter {0} failed, rc={1}")]
    Failed(String, i32),
}

fn spawn(cmd: &str, stdin: Stdio, stdout: Stdio) -> Result<Child, FilterError> {
    let argv = match shlex::split(cmd) {
        Some(a) if !a.is_empty() => a,
        Some(_) => {
            crate::log::error(
                "borg.archiver",
                "filter-process: an empty command line is not permitted",
            );
            return Err(FilterError::Spawn(cmd.to_string()));
        }
        None => {
            crate::log::error("borg.archiver", "filter-process: No closing quotation");
            return Err(FilterError::Spawn(cmd.to_string()));
        }
    };
    crate::log::debug(
        "borg.archiver",
        &format!("filter-process: command line: {argv:?}"),
    );
    let mut c = Command::new(&argv[0]);
    c.args(&argv[1..]).stdin(stdin).stdout(stdout);
    // like borg: a Ctrl-C meant for us must not kill the filter before we clean up
    unsafe {
        use std::os::unix::process::CommandExt;
        // SAFETY: only an async-signal-safe call between fork and exec.
        c.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_IGN);
            Ok(())
        });
    }
    c.spawn().map_err(|e| {
        let what = match e.kind() {
            io::ErrorKind::NotFound => "executable not found",
            io::ErrorKind::PermissionDenied => "permission denied",
            _ => "cannot execute",
        };
        crate::log::error(
            "borg.archiver",
            &format!("filter-process: {what}: {}", argv[0]),
        );
        FilterError::Spawn(cmd.to_string())
    })
}

fn wait(mut child: Child, cmd: &str) -> Result<(), FilterError> {
    let status = child
        .wait()
        .map_err(|_| FilterError::Failed(cmd.to_string(), -1))?;
    if status.success() {
        Ok(())
    } else {
        use std::os::unix::process::ExitStatusExt;
        let rc = status
            .code()
            .unwrap_or_else(|| -status.signal().unwrap_or(0));
        Err(FilterError::Failed(cmd.to_string(), rc))
    }
}

/// Where the tar stream goes.
pub enum Sink {
    File(File),
    Stdout,
}

/// The export side: a writer that feeds the filter (or the destination directly).
pub struct OutStream {
    inner: Option<Box<dyn Write>>,
    child: Option<(Child, String)>,
}

impl OutStream {
    pub fn open(sink: Sink, filter: Option<&str>) -> Result<OutStream, FilterError> {
        match filter {
            None => {
                let w: Box<dyn Write> = match sink {
                    Sink::File(f) => Box::new(f),
                    Sink::Stdout => Box::new(io::stdout().lock()),
                };
                Ok(OutStream {
                    inner: Some(w),
                    child: None,
                })
            }
            Some(cmd) => {
                let out = match sink {
                    Sink::File(f) => Stdio::from(f),
                    Sink::Stdout => Stdio::inherit(),
                };
                let mut child = spawn(cmd, Stdio::piped(), out)?;
                let stdin: ChildStdin = child.stdin.take().expect("piped stdin");
                Ok(OutStream {
                    inner: Some(Box::new(stdin)),
                    child: Some((child, cmd.to_string())),
                })
            }
        }
    }

    /// Closes the stream and waits for the filter; its failure is an error.
    pub fn finish(mut self) -> anyhow::Result<()> {
        if let Some(mut w) = self.inner.take() {
            w.flush()?;
        }
        if let Some((child, cmd)) = self.child.take() {
            wait(child, &cmd)?;
        }
        Ok(())
    }
}

impl Drop for OutStream {
    /// Not finished: an error of ours; stop the filter.
    fn drop(&mut self) {
        self.inner.take();
        if let Some((mut child, _)) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Write for OutStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.as_mut().expect("open stream").write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.as_mut().expect("open stream").flush()
    }
}

/// Where the tar stream comes from.
pub enum Source {
    File(File),
    Stdin,
}

/// The import side: a reader of the (decompressed) tar stream.
pub struct InStream {
    inner: Option<Box<dyn Read>>,
    child: Option<(Child, String)>,
}

impl InStream {
    pub fn open(source: Source, filter: Option<&str>) -> Result<InStream, FilterError> {
        match filter {
            None => {
                let r: Box<dyn Read> = match source {
                    Source::File(f) => Box::new(f),
                    Source::Stdin => Box::new(io::stdin().lock()),
                };
                Ok(InStream {
                    inner: Some(r),
                    child: None,
                })
            }
            Some(cmd) => {
                let input = match source {
                    Source::File(f) => Stdio::from(f),
                    Source::Stdin => Stdio::inherit(),
                };
                let mut child = spawn(cmd, input, Stdio::piped())?;
                let stdout: ChildStdout = child.stdout.take().expect("piped stdout");
                Ok(InStream {
                    inner: Some(Box::new(stdout)),
                    child: Some((child, cmd.to_string())),
                })
            }
        }
    }

    /// Reads what is left (so the filter is not killed by a closed pipe), then waits for
    /// the filter; its failure is an error.
    pub fn finish(mut self) -> anyhow::Result<()> {
        if let Some(mut r) = self.inner.take() {
            if self.child.is_some() {
                io::copy(&mut r, &mut io::sink())?;
            }
        }
        if let Some((child, cmd)) = self.child.take() {
            wait(child, &cmd)?;
        }
        Ok(())
    }
}

impl Drop for InStream {
    fn drop(&mut self) {
        self.inner.take();
        if let Some((mut child, _)) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Read for InStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.as_mut().expect("open stream").read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes() {
        assert_eq!(auto_filter("x.tar.gz", false), Some("gzip"));
        assert_eq!(auto_filter("x.tgz", true), Some("gzip -d"));
        assert_eq!(auto_filter("x.tbz", false), Some("bzip2"));
        assert_eq!(auto_filter("x.tar.zst", true), Some("zstd -d"));
        assert_eq!(auto_filter("x.tar.zstd", false), Some("zstd"));
        assert_eq!(auto_filter("x.tar.lz4", false), Some("lz4"));
        assert_eq!(auto_filter("x.txz", false), Some("xz"));
        assert_eq!(auto_filter("x.tar", false), None);
        assert_eq!(auto_filter("-", false), None);
        assert_eq!(
            resolve("pigz -9", "x.tar", false).as_deref(),
            Some("pigz -9")
        );
    }
}
