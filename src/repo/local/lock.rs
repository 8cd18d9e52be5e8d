//! borg's repository lock: `lock.exclusive/` (a directory created by atomic rename, holding one
//! empty file named after its owner) plus `lock.roster` (JSON lists of shared and exclusive
//! holders). Same names and formats as borg, so borg and rborg exclude each other.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Owner id: (host id, pid, thread).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ProcessId {
    pub host: String,
    pub pid: u32,
    pub thread: u32,
}

impl ProcessId {
    pub fn current() -> ProcessId {
        ProcessId {
            host: crate::platform::host::host_id(),
            pid: std::process::id(),
            thread: 0,
        }
    }
    fn unique_name(&self) -> String {
        format!("{}.{}-{:x}", self.host, self.pid, self.thread)
    }
    /// A holder counts as alive unless it is on our host, thread 0, and its pid is gone.
    fn alive(&self) -> bool {
        if self.host != crate::platform::host::host_id() || self.thread != 0 {
            return true;
        }
        pid_alive(self.pid)
    }
}

fn pid_alive(pid: u32) -> bool {
    if pid == 0 || pid > i32::MAX as u32 {
        return false;
    }
    // SAFETY: kill with signal 0 only checks for existence/permission.
    let rc = unsafe { libc::kill(pid as i32, 0) };
    if rc == 0 {
        return true;
    }
    std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("Failed to create/acquire the lock {0} (timeout).")]
    Timeout(String),
    #[error("Failed to create/acquire the lock {0} ({1}).")]
    Failed(String, String),
    #[error("Failed to release the lock {0} (was not locked).")]
    NotLocked(String),
    #[error("Failed to release the lock {0} (was/is locked, but not by me).")]
    NotMyLock(String),
    #[error("Failed to acquire the lock {0}.")]
    Error(String),
}

type Result<T> = std::result::Result<T, LockError>;

struct Timer {
    end: Option<Instant>,
    sleep: Duration,
}

impl Timer {
    fn new(timeout: Option<f64>, sleep: Option<f64>) -> Timer {
        let sleep = sleep.unwrap_or(match timeout {
            None => 1.0,
            Some(t) => (t / 10.0).min(60.0),
        });
        Timer {
            end: timeout.map(|t| Instant::now() + Duration::from_secs_f64(t.max(0.0))),
            sleep: Duration::from_secs_f64(sleep.max(0.0)),
        }
    }
    fn timed_out_or_sleep(&self) -> bool {
        if self.end.is_some_and(|e| Instant::now() >= e) {
            return true;
        }
        std::thread::sleep(self.sleep);
        false
    }
}

/// The mkdir/rename based exclusive lock.
pub struct ExclusiveLock {
    pub path: PathBuf,
    id: ProcessId,
    timeout: Option<f64>,
}

impl ExclusiveLock {
    pub fn new(path: PathBuf, id: ProcessId, timeout: Option<f64>) -> ExclusiveLock {
        ExclusiveLock { path, id, timeout }
    }

    fn unique_path(&self) -> PathBuf {
        self.path.join(self.id.unique_name())
    }

    fn display(&self) -> String {
        self.path.display().to_string()
    }

    pub fn acquire(&self) -> Result<()> {
        let parent = self.path.parent().unwrap_or(Path::new("."));
        let base = self
            .path
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut rnd = [0u8; 6];
        getrandom::getrandom(&mut rnd)
            .map_err(|e| LockError::Failed(self.display(), e.to_string()))?;
        let temp = parent.join(format!("{base}.{}.tmp", hex::encode(rnd)));
        let temp_file = temp.join(self.id.unique_name());
        let cleanup = || {
            let _ = fs::remove_file(&temp_file);
            let _ = fs::remove_dir(&temp);
        };
        fs::create_dir(&temp)
            .and_then(|_| fs::File::create(&temp_file).map(|_| ()))
            .map_err(|e| {
                cleanup();
                LockError::Failed(self.display(), e.to_string())
            })?;
        let timer = Timer::new(self.timeout, None);
        loop {
            match fs::rename(&temp, &self.path) {
                Ok(()) => return Ok(()),
                Err(_) => {
                    if self.by_me() {
                        cleanup();
                        return Ok(());
                    }
                    self.kill_stale_lock();
                    if timer.timed_out_or_sleep() {
                        cleanup();
                        return Err(LockError::Timeout(self.display()));
                    }
                }
            }
        }
    }

    pub fn release(&self) -> Result<()> {
        if !self.is_locked() {
            return Err(LockError::NotLocked(self.display()));
        }
        if !self.by_me() {
            return Err(LockError::NotMyLock(self.display()));
        }
        let _ = fs::remove_file(self.unique_path());
        if let Err(e) = fs::remove_dir(&self.path) {
            let code = e.raw_os_error();
            if ![
                Some(libc::ENOTEMPTY),
                Some(libc::EEXIST),
                Some(libc::ENOENT),
            ]
            .contains(&code)
            {
                return Err(LockError::Failed(self.display(), e.to_string()));
            }
        }
        Ok(())
    }

    pub fn is_locked(&self) -> bool {
        self.path.exists()
    }

    pub fn by_me(&self) -> bool {
        self.unique_path().exists()
    }

    /// Removes holder files of dead processes on this host; true if the lock dir is gone.
    fn kill_stale_lock(&self) -> bool {
        let names = match fs::read_dir(&self.path) {
            Ok(rd) => rd
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect::<Vec<_>>(),
            Err(_) => return false,
        };
        for name in names {
            let Some(holder) = parse_holder(&name) else {
                crate::log::error(
                    "borg.locking",
                    &format!(
                        "Found malformed lock {name} in {}. Please check/fix manually.",
                        self.display()
                    ),
                );
                return false;
            };
            if holder.alive() {
                return false;
            }
            match fs::remove_file(self.path.join(&name)) {
                Ok(()) => {
                    crate::log::warning("borg.locking", &format!("Killed stale lock {name}."))
                }
                Err(e) => {
                    crate::log::error(
                        "borg.locking",
                        &format!("Found stale lock {name}, but cannot delete due to {e}"),
                    );
                    return false;
                }
            }
        }
        fs::remove_dir(&self.path).is_ok()
    }

    pub fn break_lock(&self) -> io::Result<()> {
        if self.is_locked() {
            for e in fs::read_dir(&self.path)?.flatten() {
                fs::remove_file(e.path())?;
            }
            fs::remove_dir(&self.path)?;
        }
        Ok(())
    }
}

/// Parses `<host>.<pid>-<thread hex>` (split at the last `-`, then the last `.`).
fn parse_holder(name: &str) -> Option<ProcessId> {
    let (host_pid, thread) = name.rsplit_once('-')?;
    let (host, pid) = host_pid.rsplit_once('.')?;
    Some(ProcessId {
        host: host.to_string(),
        pid: pid.parse().ok()?,
        thread: u32::from_str_radix(thread, 16).ok()?,
    })
}

/// `lock.roster`: `{"shared": [[host, pid, thread], ...], "exclusive": [...]}`.
struct Roster {
    path: PathBuf,
    id: ProcessId,
}

type RosterData = Vec<(String, Vec<ProcessId>)>;

impl Roster {
    fn load(&self) -> RosterData {
        let Ok(text) = fs::read_to_string(&self.path) else {
            return Vec::new();
        };
        let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(&text)
        else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (key, v) in map {
            let mut ids = Vec::new();
            for e in v.as_array().cloned().unwrap_or_default() {
                let Some(a) = e.as_array() else { continue };
                if a.len() != 3 {
                    continue;
                }
                let (Some(h), Some(p), Some(t)) = (a[0].as_str(), a[1].as_u64(), a[2].as_u64())
                else {
                    continue;
                };
                let id = ProcessId {
                    host: h.to_string(),
                    pid: p as u32,
                    thread: t as u32,
                };
                if id.alive() {
                    if !ids.contains(&id) {
                        ids.push(id);
                    }
                } else {
                    crate::log::warning(
                        "borg.locking",
                        &format!(
                            "Removed stale {key} roster lock for host {} pid {} thread {}.",
                            id.host, id.pid, id.thread
                        ),
                    );
                }
            }
            out.push((key, ids));
        }
        out
    }

    fn save(&self, data: &RosterData) -> io::Result<()> {
        // Python's json.dump with default separators: `{"exclusive": [["h", 1, 0]]}`.
        let mut s = String::from("{");
        for (i, (k, ids)) in data.iter().enumerate() {
            if i > 0 {
                s.push_str(", ");
            }
            s.push_str(&serde_json::to_string(k).expect("str"));
            s.push_str(": [");
            for (j, id) in ids.iter().enumerate() {
                if j > 0 {
                    s.push_str(", ");
                }
                s.push_str(&format!(
                    "[{}, {}, {}]",
                    serde_json::to_string(&id.host).expect("str"),
                    id.pid,
                    id.thread
                ));
            }
            s.push(']');
        }
        s.push('}');
        fs::write(&self.path, s)
    }

    fn get(&self, key: &str) -> Vec<ProcessId> {
        self.load()
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
            .unwrap_or_default()
    }

    fn modify(&self, key: &str, add: bool) -> io::Result<()> {
        let mut data = self.load();
        let idx = match data.iter().position(|(k, _)| k == key) {
            Some(i) => i,
            None => {
                data.push((key.to_string(), Vec::new()));
                data.len() - 1
            }
        };
        let ids = &mut data[idx].1;
        if add {
            if !ids.contains(&self.id) {
                ids.push(self.id.clone());
            }
        } else {
            // 1.4 tolerates removing an absent id.
            ids.retain(|i| *i != self.id);
        }
        self.save(&data)
    }

    fn is_empty(&self) -> bool {
        self.load().iter().all(|(_, v)| v.is_empty())
    }

    fn remove(&self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// A shared/exclusive lock on a repository (borg's `Lock`).
pub struct Lock {
    base: PathBuf,
    exclusive: bool,
    timeout: Option<f64>,
    lock: ExclusiveLock,
    roster: Roster,
    held: bool,
}

impl Lock {
    /// `base` is `<repo>/lock`.
    pub fn new(base: &Path, exclusive: bool, timeout: Option<f64>) -> Lock {
        Self::with_id(base, exclusive, timeout, ProcessId::current())
    }

    pub fn with_id(base: &Path, exclusive: bool, timeout: Option<f64>, id: ProcessId) -> Lock {
        Lock {
            base: base.to_path_buf(),
            exclusive,
            timeout,
            lock: ExclusiveLock::new(
                PathBuf::from(format!("{}.exclusive", base.display())),
                id.clone(),
                timeout,
            ),
            roster: Roster {
                path: PathBuf::from(format!("{}.roster", base.display())),
                id,
            },
            held: false,
        }
    }

    fn io_err(&self, e: io::Error) -> LockError {
        LockError::Failed(self.base.display().to_string(), e.to_string())
    }

    pub fn acquire(&mut self) -> Result<()> {
        if self.exclusive {
            self.wait_for_readers(None)?;
            self.roster
                .modify("exclusive", true)
                .map_err(|e| self.io_err(e))?;
        } else {
            self.lock.acquire()?;
            let r = self.roster.modify("shared", true);
            self.lock.release()?;
            r.map_err(|e| self.io_err(e))?;
        }
        self.held = true;
        Ok(())
    }

    /// Takes the exclusive lock and keeps it once no shared holders remain.
    fn wait_for_readers(&self, remove: Option<&str>) -> Result<()> {
        let timer = Timer::new(self.timeout, Some(0.2));
        loop {
            self.lock.acquire()?;
            if let Some(k) = remove {
                self.roster.modify(k, false).map_err(|e| self.io_err(e))?;
            }
            if self.roster.get("shared").is_empty() {
                return Ok(());
            }
            if let Some(k) = remove {
                self.roster.modify(k, true).map_err(|e| self.io_err(e))?;
            }
            self.lock.release()?;
            if timer.timed_out_or_sleep() {
                return Err(LockError::Timeout(self.base.display().to_string()));
            }
        }
    }

    /// Shared → exclusive (used when a read-only open must replay the log).
    pub fn upgrade(&mut self) -> Result<()> {
        if self.exclusive {
            return Ok(());
        }
        self.wait_for_readers(Some("shared"))?;
        self.roster
            .modify("exclusive", true)
            .map_err(|e| self.io_err(e))?;
        self.exclusive = true;
        Ok(())
    }

    pub fn got_exclusive_lock(&self) -> bool {
        self.held && self.exclusive && self.lock.is_locked() && self.lock.by_me()
    }

    pub fn release(&mut self) -> Result<()> {
        if !self.held {
            return Ok(());
        }
        self.held = false;
        if self.exclusive {
            self.roster
                .modify("exclusive", false)
                .map_err(|e| self.io_err(e))?;
            if self.roster.is_empty() {
                self.roster.remove();
            }
            self.lock.release()
        } else {
            self.lock.acquire()?;
            let r = self.roster.modify("shared", false);
            if self.roster.is_empty() {
                self.roster.remove();
            }
            self.lock.release()?;
            r.map_err(|e| self.io_err(e))
        }
    }

    /// Removes every trace of any lock (`borg break-lock`).
    pub fn break_lock(base: &Path) -> io::Result<()> {
        let _ = fs::remove_file(format!("{}.roster", base.display()));
        ExclusiveLock::new(
            PathBuf::from(format!("{}.exclusive", base.display())),
            ProcessId::current(),
            None,
        )
        .break_lock()
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holder_names() {
        let id = parse_holder("vm@3281355014145.15619-0").unwrap();
        assert_eq!(
            (id.host.as_str(), id.pid, id.thread),
            ("vm@3281355014145", 15619, 0)
        );
        let id = parse_holder("host.example.com@1.2-ff").unwrap();
        assert_eq!(
            (id.host.as_str(), id.pid, id.thread),
            ("host.example.com@1", 2, 255)
        );
        assert!(parse_holder("garbage").is_none());
    }

    #[test]
    fn exclusive_excludes_and_shared_coexist() {
        let d = tempfile::tempdir().unwrap();
        let base = d.path().join("lock");
        let mut a = Lock::new(&base, false, Some(0.3));
        a.acquire().unwrap();
        let mut b = Lock::new(&base, false, Some(0.3));
        b.acquire().unwrap();
        let roster = fs::read_to_string(d.path().join("lock.roster")).unwrap();
        assert!(roster.starts_with("{\"shared\": [["), "{roster}");
        let mut c = Lock::new(&base, true, Some(0.3));
        let err = c.acquire().unwrap_err();
        assert!(matches!(err, LockError::Timeout(_)), "{err}");
        a.release().unwrap();
        b.release().unwrap();
        assert!(!d.path().join("lock.roster").exists());
        c.acquire().unwrap();
        assert!(c.got_exclusive_lock());
        let other = ProcessId {
            thread: 1,
            ..ProcessId::current()
        };
        let mut e = Lock::with_id(&base, true, Some(0.2), other);
        assert!(e.acquire().is_err());
        c.release().unwrap();
        assert!(!d.path().join("lock.exclusive").exists());
    }

    #[test]
    fn stale_lock_of_dead_pid_is_removed() {
        let d = tempfile::tempdir().unwrap();
        let ex = d.path().join("lock.exclusive");
        fs::create_dir(&ex).unwrap();
        // pid 0x7ffffffe is never a live process here
        let name = format!("{}.{}-0", crate::platform::host::host_id(), i32::MAX - 1);
        fs::write(ex.join(name), b"").unwrap();
        let mut l = Lock::new(&d.path().join("lock"), true, Some(1.0));
        l.acquire().unwrap();
        l.release().unwrap();
    }
}
