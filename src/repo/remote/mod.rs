//! Remote repositories over ssh, speaking `borg serve`'s RPC protocol (client side).
//!
//! [`open`] spawns `<rsh> [-p PORT] [user@]host <remote path> serve [--debug|--info|...]`, talks
//! the dict-format protocol over the child's stdin/stdout (spec §10) and forwards the child's
//! stderr log lines as local log records prefixed `Remote: `.
//!
//! How the command layer plumbs its options in: call [`set_default_options`] once with the
//! `--rsh`, `--remote-path`, `--umask` and (optionally) log level it parsed; afterwards
//! [`crate::repo::open`] on an `ssh://` location uses them. [`open_with`] takes them explicitly.
//! Unset fields fall back to `$BORG_RSH` (default `ssh`), `$BORG_REMOTE_PATH` (default `borg`)
//! and the current [`crate::log::level`]. Placeholders in the remote path (`{hostname}` ...)
//! must already be expanded by the caller.
//!
//! Concurrency: requests are written under one writer lock (message ids ascend in send order); a
//! reader thread decodes responses and parks them by message id for whoever waits; `put` and
//! `delete` are fire-and-forget with their errors collected for [`Repository::flush`] /
//! `commit`; `get_many` keeps up to [`wire::MAX_INFLIGHT`] `get`s outstanding.

pub mod stderr;
pub mod wire;

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use self::wire::{RemoteException, StreamDecoder, Version, MAX_INFLIGHT};
use super::local::lock::LockError;
use super::{GetResult, Location, ObjectId, OpenOptions, RepoError, Repository, Result};
use crate::log::{self, Level};
use crate::msgpack::{ordered_map, Value};

#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("Connection closed by remote host.")]
    ConnectionClosed,
    #[error("Connection closed by remote host. {0}")]
    ConnectionClosedWithHint(String),
    #[error("RPC method {0} is not valid.")]
    InvalidRpcMethod(String),
    #[error("Repository path not allowed: {0}")]
    PathNotAllowed(String),
    #[error("Borg server is too old for {0}. Required version {1}")]
    ServerOutdated(String, String),
    #[error("Got unexpected RPC data format from server:\n{0}")]
    UnexpectedDataFormat(String),
    #[error("{class}: {message}")]
    Rpc { class: String, message: String },
    #[error("remote repositories (ssh://) are not supported by this build yet")]
    Unsupported,
}

/// Client-side settings that are not part of the repository location.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RemoteOptions {
    /// `--rsh`: the ssh command, split with shell rules. `None` → `$BORG_RSH`, else `ssh`.
    pub rsh: Option<String>,
    /// `--remote-path`: the borg executable on the server (placeholders already expanded).
    /// `None` → `$BORG_REMOTE_PATH`, else `borg`.
    pub remote_path: Option<String>,
    /// Log level the server should log at (`--debug`/`--info`/... on its command line).
    /// `None` → the current local level ([`crate::log::level`]).
    pub log_level: Option<Level>,
    /// `--umask` to pass to the server (`None`: not passed).
    pub umask: Option<u32>,
    /// `--debug-topic` values; only those mentioning `repository` are forwarded (as borg does).
    pub debug_topics: Vec<String>,
}

static DEFAULT_OPTIONS: Mutex<Option<RemoteOptions>> = Mutex::new(None);

/// Sets the options [`open`] (and so [`crate::repo::open`]) uses for ssh locations.
pub fn set_default_options(opts: RemoteOptions) {
    *DEFAULT_OPTIONS.lock().unwrap_or_else(|e| e.into_inner()) = Some(opts);
}

/// The options set by [`set_default_options`] (all defaults if never set).
pub fn default_options() -> RemoteOptions {
    DEFAULT_OPTIONS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .unwrap_or_default()
}

/// Opens a remote repository with the process-wide [`RemoteOptions`].
pub fn open(location: &Location, opts: &OpenOptions) -> Result<Box<dyn Repository>> {
    open_with(location, opts, &default_options())
}

/// Opens a remote repository with explicit [`RemoteOptions`].
pub fn open_with(
    location: &Location,
    opts: &OpenOptions,
    remote: &RemoteOptions,
) -> Result<Box<dyn Repository>> {
    Ok(Box::new(RemoteRepository::connect(location, opts, remote)?))
}

fn env_nonempty(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|v| !v.is_empty())
}

/// The full command line `open` spawns: rsh words, `-p PORT`, `[user@]host`, remote path,
/// `serve` and the forwarded options.
pub fn ssh_command(
    location: &Location,
    opts: &OpenOptions,
    remote: &RemoteOptions,
) -> Result<Vec<String>> {
    let rsh = remote
        .rsh
        .clone()
        .or_else(|| env_nonempty("BORG_RSH"))
        .unwrap_or_else(|| "ssh".into());
    let mut argv = shlex::split(&rsh)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| RemoteError::Rpc {
            class: "ValueError".into(),
            message: format!("invalid rsh command: {rsh}"),
        })?;
    if let Some(port) = location.port {
        argv.push("-p".into());
        argv.push(port.to_string());
    }
    let host = location.host_plain().unwrap_or_default();
    argv.push(match &location.user {
        Some(u) => format!("{u}@{host}"),
        None => host,
    });
    argv.push(
        remote
            .remote_path
            .clone()
            .or_else(|| env_nonempty("BORG_REMOTE_PATH"))
            .unwrap_or_else(|| "borg".into()),
    );
    argv.push("serve".into());
    match remote.log_level.unwrap_or_else(log::level) {
        Level::Debug => argv.push("--debug".into()),
        Level::Info => argv.push("--info".into()),
        Level::Warning => {}
        Level::Error => argv.push("--error".into()),
        Level::Critical => argv.push("--critical".into()),
    }
    for topic in &remote.debug_topics {
        let topic = if topic.contains('.') {
            topic.clone()
        } else {
            format!("borg.debug.{topic}")
        };
        if topic.contains("repository") {
            argv.push(format!("--debug-topic={topic}"));
        }
    }
    if let Some(m) = remote.umask {
        argv.push(format!("--umask={m:04o}"));
    }
    if let Some(q) = opts.storage_quota.filter(|&q| q > 0) {
        argv.push(format!("--storage-quota={q}"));
    }
    Ok(argv)
}

// ---------------------------------------------------------------------------------------------
// error reconstruction

/// Rebuilds the local error for a remote exception, like borg's client does (1.4's set of
/// reconstructed classes plus rborg's own variants); everything else becomes
/// [`RemoteError::Rpc`] carrying `exception_short`.
pub fn exception_to_error(e: &RemoteException, location: &str) -> RepoError {
    let a0 = || e.arg(0).unwrap_or_else(|| "(not available)".into());
    let a1 = || e.arg(1).unwrap_or_default();
    let loc = || location.to_string();
    match e.class.as_str() {
        "DoesNotExist" => RepoError::DoesNotExist(loc()),
        "AlreadyExists" => RepoError::AlreadyExists(loc()),
        "PathAlreadyExists" => RepoError::PathAlreadyExists(a0()),
        "ParentPathDoesNotExist" => RepoError::ParentPathDoesNotExist(a0()),
        "InvalidRepository" => RepoError::InvalidRepository(loc()),
        "InvalidRepositoryConfig" => RepoError::InvalidRepositoryConfig(loc(), a1()),
        "AtticRepository" => RepoError::AtticRepository(a0()),
        "CheckNeeded" => RepoError::CheckNeeded(loc()),
        "ObjectNotFound" => match e.arg(0).as_deref().and_then(ObjectId::from_hex) {
            Some(id) => RepoError::ObjectNotFound(id, loc()),
            None => rpc_error(e),
        },
        "IntegrityError" => RepoError::Integrity(a0()),
        "FileIntegrityError" => RepoError::FileIntegrity(a0()),
        "StorageQuotaExceeded" => RepoError::StorageQuotaExceeded(a0(), a1()),
        "InsufficientFreeSpaceError" => RepoError::InsufficientFreeSpace(a0(), a1()),
        "PathPermissionDenied" => RepoError::PathPermissionDenied(a0()),
        "PathNotAllowed" => RemoteError::PathNotAllowed(a0()).into(),
        "InvalidRPCMethod" => RemoteError::InvalidRpcMethod(a0()).into(),
        "LockTimeout" => LockError::Timeout(a0()).into(),
        "LockFailed" => LockError::Failed(a0(), a1()).into(),
        "NotLocked" => LockError::NotLocked(a0()).into(),
        "NotMyLock" => LockError::NotMyLock(a0()).into(),
        "LockError" | "LockErrorT" => LockError::Error(a0()).into(),
        "ValueError" if a0().ends_with(" is in append-only mode") => {
            RepoError::AppendOnly(a0().trim_end_matches(" is in append-only mode").to_string())
        }
        "Exception" if a0() == "nonce space reservation with mismatched previous state" => {
            RepoError::NonceMismatch
        }
        "Error" if a0().starts_with("Repository has an invalid nonce file: ") => {
            RepoError::InvalidNonce(
                a0().trim_start_matches("Repository has an invalid nonce file: ")
                    .to_string(),
            )
        }
        _ => rpc_error(e),
    }
}

fn rpc_error(e: &RemoteException) -> RepoError {
    RemoteError::Rpc {
        class: e.class.clone(),
        message: e.message(),
    }
    .into()
}

// ---------------------------------------------------------------------------------------------
// connection

enum Reply {
    Ok(Value),
    Err(RemoteException),
}

#[derive(Clone)]
enum Closed {
    Eof,
    BadData(String),
}

#[derive(Default)]
struct State {
    /// Responses received for synchronous callers, by message id.
    responses: HashMap<u64, Reply>,
    /// Fire-and-forget requests not answered yet.
    async_pending: HashSet<u64>,
    /// Errors of answered fire-and-forget requests, in arrival order.
    async_errors: Vec<RemoteException>,
    /// Requests whose responses nobody wants any more (abandoned `get_many`).
    ignored: HashSet<u64>,
    closed: Option<Closed>,
}

struct Shared {
    state: Mutex<State>,
    cond: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct Writer {
    stdin: Option<Box<dyn Write + Send>>,
    msgid: u64,
}

fn closed_error(c: &Closed) -> RepoError {
    match c {
        Closed::Eof => RemoteError::ConnectionClosed.into(),
        Closed::BadData(d) => RemoteError::UnexpectedDataFormat(d.clone()).into(),
    }
}

fn describe_bad_data(data: &[u8]) -> String {
    match std::str::from_utf8(data) {
        Ok(s) => s.chars().take(128).collect(),
        Err(_) => data
            .iter()
            .take(128)
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(" "),
    }
}

/// Decodes the server's stdout until EOF and files the responses.
fn reader_loop(mut out: impl Read, shared: Arc<Shared>) {
    let mut dec = StreamDecoder::new();
    let mut buf = vec![0u8; 1 << 20];
    let closed = 'outer: loop {
        let n = match out.read(&mut buf) {
            Ok(0) => break Closed::Eof,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break Closed::Eof,
        };
        dec.feed(&buf[..n]);
        loop {
            let v = match dec.next_value() {
                Ok(Some(v)) => v,
                Ok(None) => break,
                Err(_) => break 'outer Closed::BadData(describe_bad_data(&buf[..n])),
            };
            let Some(msgid) = v.get("i").and_then(|i| i.as_u64().ok()) else {
                break 'outer Closed::BadData(describe_bad_data(&v.to_bytes()));
            };
            let reply = match RemoteException::from_response(&v) {
                Some(e) => Reply::Err(e),
                None => Reply::Ok(
                    v.into_map()
                        .unwrap_or_default()
                        .into_iter()
                        .find(|(k, _)| k == &Value::from("r"))
                        .map(|(_, r)| r)
                        .unwrap_or(Value::Nil),
                ),
            };
            let mut st = shared.lock();
            if st.ignored.remove(&msgid) {
                continue;
            }
            if st.async_pending.remove(&msgid) {
                if let Reply::Err(e) = reply {
                    st.async_errors.push(e);
                }
            } else {
                st.responses.insert(msgid, reply);
            }
            drop(st);
            shared.cond.notify_all();
        }
    };
    shared.lock().closed = Some(closed);
    shared.cond.notify_all();
}

/// A repository behind `borg serve` (or `rborg serve`).
pub struct RemoteRepository {
    location: Location,
    display: String,
    id: ObjectId,
    server_version: Version,
    shared: Arc<Shared>,
    writer: Mutex<Writer>,
    child: Mutex<Option<Child>>,
    /// Disconnects when both reader threads have finished.
    threads_done: Mutex<Option<Receiver<()>>>,
}

impl std::fmt::Debug for RemoteRepository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "<RemoteRepository {} (server {})>",
            self.display,
            wire::format_version(&self.server_version)
        )
    }
}

impl RemoteRepository {
    /// Spawns the ssh command, negotiates and opens the repository.
    pub fn connect(
        location: &Location,
        opts: &OpenOptions,
        remote: &RemoteOptions,
    ) -> Result<RemoteRepository> {
        let argv = ssh_command(location, opts, remote)?;
        log::debug("borg.remote", &format!("SSH command line: {argv:?}"));
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        {
            use std::os::unix::process::CommandExt;
            // SAFETY: only calls the async-signal-safe signal(2) between fork and exec. The
            // child must survive Ctrl-C so the client can still roll back and close cleanly.
            unsafe {
                cmd.pre_exec(|| {
                    libc::signal(libc::SIGINT, libc::SIG_IGN);
                    Ok(())
                });
            }
        }
        let mut child = cmd.spawn().map_err(|e| RepoError::io(&argv[0], e))?;
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        Self::with_streams(
            location,
            opts,
            Box::new(stdin),
            Box::new(stdout),
            Some(Box::new(stderr)),
            Some(child),
        )
    }

    /// Runs the protocol over arbitrary byte streams (`to_server` = the server's stdin,
    /// `from_server` = its stdout, `server_log` = its stderr) — for in-process servers and
    /// tests. `child`, if given, is waited for (and killed if it lingers) on close.
    pub fn with_streams(
        location: &Location,
        opts: &OpenOptions,
        to_server: Box<dyn Write + Send>,
        from_server: Box<dyn Read + Send>,
        server_log: Option<Box<dyn Read + Send>>,
        child: Option<Child>,
    ) -> Result<RemoteRepository> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            cond: Condvar::new(),
        });
        let (done_tx, done_rx): (Sender<()>, Receiver<()>) = crossbeam_channel::bounded(0);
        let spawn_err = |e: std::io::Error| RepoError::io("<rpc thread>", e);
        {
            let shared = shared.clone();
            let done = done_tx.clone();
            std::thread::Builder::new()
                .name("rpc-reader".into())
                .spawn(move || {
                    reader_loop(from_server, shared);
                    drop(done);
                })
                .map_err(spawn_err)?;
        }
        if let Some(err) = server_log {
            std::thread::Builder::new()
                .name("rpc-stderr".into())
                .spawn(move || {
                    stderr::pump_lines(err, stderr::handle_remote_line);
                    drop(done_tx);
                })
                .map_err(spawn_err)?;
        } else {
            drop(done_tx);
        }

        let mut repo = RemoteRepository {
            location: location.without_archive(),
            display: location.canonical_path(),
            id: ObjectId::default(),
            server_version: wire::parse_version("1.0.8"),
            shared,
            writer: Mutex::new(Writer {
                stdin: Some(to_server),
                msgid: 0,
            }),
            child: Mutex::new(child),
            threads_done: Mutex::new(Some(done_rx)),
        };
        match repo.handshake(opts) {
            Ok(()) => Ok(repo),
            Err(e) => {
                let _ = repo.shutdown();
                Err(e)
            }
        }
    }

    fn handshake(&mut self, opts: &OpenOptions) -> Result<()> {
        let client_data = ordered_map(vec![(
            "client_version",
            wire::version_value(&wire::our_version()),
        )]);
        let version = match self.call("negotiate", vec![("client_data", client_data)]) {
            Err(RepoError::Remote(RemoteError::ConnectionClosed)) => {
                return Err(RemoteError::ConnectionClosedWithHint(
                    "Is borg working on the server?".into(),
                )
                .into())
            }
            r => r?,
        };
        match version
            .get("server_version")
            .and_then(wire::version_from_value)
        {
            Some(v) => self.server_version = v,
            None => {
                // `2` = borg 0.29–1.0.x tuple protocol, which rborg does not speak.
                return Err(RemoteError::ServerOutdated(
                    "the dict-based RPC protocol".into(),
                    "1.1.0".into(),
                )
                .into());
            }
        }
        if opts.append_only {
            self.require("open append_only=True", "1.0.7")?;
        }
        if opts.make_parent_dirs {
            self.require("open make_parent_dirs=True", "1.1.9")?;
        }
        let id = self.call(
            "open",
            vec![
                ("path", Value::from(self.location.path.as_str())),
                ("create", opts.create.into()),
                ("lock_wait", number(opts.lock_wait)),
                ("lock", opts.exclusive.is_some().into()),
                ("exclusive", opts.exclusive.unwrap_or(false).into()),
                ("append_only", opts.append_only.into()),
                ("make_parent_dirs", opts.make_parent_dirs.into()),
            ],
        )?;
        self.id = id
            .as_bytes()
            .ok()
            .and_then(ObjectId::from_slice)
            .ok_or_else(|| RemoteError::UnexpectedDataFormat(format!("{id:?}")))?;
        Ok(())
    }

    /// The server's version tuple as negotiated (e.g. `[1, 2, 4, -1]`).
    pub fn server_version_tuple(&self) -> &[i64] {
        &self.server_version
    }

    fn at_least(&self, v: &str) -> bool {
        self.server_version >= wire::parse_version(v)
    }

    fn require(&self, what: &str, v: &str) -> Result<()> {
        if self.at_least(v) {
            Ok(())
        } else {
            Err(RemoteError::ServerOutdated(what.into(), v.into()).into())
        }
    }

    fn writer(&self) -> MutexGuard<'_, Writer> {
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes pre-encoded requests (built by `make` from consecutive message ids); returns the
    /// ids. `asynchronous` requests are registered before they are written so their answers can
    /// never be mistaken for a synchronous caller's.
    fn send(
        &self,
        count: usize,
        asynchronous: bool,
        mut make: impl FnMut(usize, u64) -> Vec<u8>,
    ) -> Result<Vec<u64>> {
        let mut w = self.writer();
        if let Some(c) = &self.shared.lock().closed {
            return Err(closed_error(c));
        }
        let mut ids = Vec::with_capacity(count);
        let mut buf = Vec::new();
        for i in 0..count {
            w.msgid += 1;
            ids.push(w.msgid);
            buf.extend_from_slice(&make(i, w.msgid));
        }
        if asynchronous {
            self.shared.lock().async_pending.extend(ids.iter().copied());
        }
        let Some(stdin) = w.stdin.as_mut() else {
            return Err(RemoteError::ConnectionClosed.into());
        };
        if stdin.write_all(&buf).and_then(|()| stdin.flush()).is_err() {
            let mut st = self.shared.lock();
            for id in &ids {
                st.async_pending.remove(id);
            }
            return Err(match &st.closed {
                Some(c @ Closed::BadData(_)) => closed_error(c),
                _ => RemoteError::ConnectionClosed.into(),
            });
        }
        Ok(ids)
    }

    fn wait(&self, msgid: u64) -> Result<Value> {
        let mut st = self.shared.lock();
        loop {
            if let Some(r) = st.responses.remove(&msgid) {
                return match r {
                    Reply::Ok(v) => Ok(v),
                    Reply::Err(e) => Err(exception_to_error(&e, &self.display)),
                };
            }
            if let Some(c) = &st.closed {
                return Err(closed_error(c));
            }
            st = self.shared.cond.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Calls a remote method by name and waits for its result (raw access for callers that need
    /// a method the trait does not cover, e.g. `inject_exception` in tests).
    pub fn call(&self, method: &str, args: Vec<(&str, Value)>) -> Result<Value> {
        let mut args = Some(args);
        let id = self.send(1, false, |_, msgid| {
            wire::encode_request(msgid, method, args.take().unwrap_or_default())
        })?[0];
        self.wait(id)
    }

    fn call_async(&self, method: &str, args: Vec<(&str, Value)>) -> Result<()> {
        let mut args = Some(args);
        self.send(1, true, |_, msgid| {
            wire::encode_request(msgid, method, args.take().unwrap_or_default())
        })?;
        Ok(())
    }

    /// Waits until every fire-and-forget request is answered; returns their errors.
    fn drain_async(&self) -> Result<Vec<RemoteException>> {
        let mut st = self.shared.lock();
        while !st.async_pending.is_empty() {
            if let Some(c) = &st.closed {
                let err = closed_error(c);
                st.async_pending.clear();
                return Err(err);
            }
            st = self.shared.cond.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        Ok(std::mem::take(&mut st.async_errors))
    }

    fn ids_from(&self, v: Value) -> Result<Vec<ObjectId>> {
        let bad = |v: &Value| RemoteError::UnexpectedDataFormat(format!("{v:?}"));
        let arr = v
            .into_array()
            .map_err(|e| bad(&Value::from(e.to_string())))?;
        arr.into_iter()
            .map(|x| {
                x.as_bytes()
                    .ok()
                    .and_then(ObjectId::from_slice)
                    .ok_or_else(|| bad(&x).into())
            })
            .collect()
    }

    /// Closes stdin, waits for the server to exit (killing it after a grace period) and for the
    /// reader threads to drain. Idempotent.
    fn shutdown(&self) -> Result<()> {
        self.writer().stdin.take();
        let child = self.child.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(mut child) = child {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(5))
                    }
                    _ => {
                        log::warning("borg.remote", "Remote process did not exit, killing it.");
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                }
            }
        }
        let rx = self
            .threads_done
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(rx) = rx {
            // Both threads end at EOF; a stray grandchild holding the pipes must not hang us.
            let _ = matches!(
                rx.recv_timeout(Duration::from_secs(2)),
                Err(RecvTimeoutError::Disconnected)
            );
        }
        let mut st = self.shared.lock();
        if st.closed.is_none() {
            st.closed = Some(Closed::Eof);
        }
        drop(st);
        self.shared.cond.notify_all();
        Ok(())
    }
}

/// Integral lock waits go out as ints (as borg's `--lock-wait` is), others as floats.
fn number(x: f64) -> Value {
    if x.fract() == 0.0 && (0.0..1e15).contains(&x) {
        Value::from(x as u64)
    } else {
        Value::Float(x)
    }
}

fn id_value(id: &ObjectId) -> Value {
    Value::from(&id.0[..])
}

fn opt_limit(limit: Option<usize>) -> Value {
    limit.map_or(Value::Nil, Value::from)
}

fn opt_marker(marker: Option<&ObjectId>) -> Value {
    marker.map_or(Value::Nil, id_value)
}

struct GetMany<'a> {
    repo: &'a RemoteRepository,
    ids: std::vec::IntoIter<ObjectId>,
    pending: VecDeque<u64>,
    done: bool,
}

impl GetMany<'_> {
    fn refill(&mut self) -> Result<()> {
        if self.pending.len() > MAX_INFLIGHT / 2 {
            return Ok(());
        }
        let want = MAX_INFLIGHT - self.pending.len();
        let batch: Vec<ObjectId> = self.ids.by_ref().take(want).collect();
        if batch.is_empty() {
            return Ok(());
        }
        let msgids = self.repo.send(batch.len(), false, |i, msgid| {
            wire::encode_request(msgid, "get", vec![("id", id_value(&batch[i]))])
        })?;
        self.pending.extend(msgids);
        Ok(())
    }
}

impl Iterator for GetMany<'_> {
    type Item = GetResult;

    fn next(&mut self) -> Option<GetResult> {
        if self.done {
            return None;
        }
        if let Err(e) = self.refill() {
            self.done = true;
            return Some(Err(e));
        }
        let msgid = self.pending.pop_front()?;
        match self.repo.wait(msgid) {
            Ok(v) => Some(v.into_bytes().map_err(|e| {
                RemoteError::UnexpectedDataFormat(format!("get returned {e}")).into()
            })),
            Err(e) => {
                // A broken connection ends the iteration; per-object errors do not.
                self.done = self.repo.shared.lock().closed.is_some();
                Some(Err(e))
            }
        }
    }
}

impl Drop for GetMany<'_> {
    fn drop(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let mut st = self.repo.shared.lock();
        for id in self.pending.drain(..) {
            if st.responses.remove(&id).is_none() {
                st.ignored.insert(id);
            }
        }
    }
}

impl Repository for RemoteRepository {
    fn id(&self) -> ObjectId {
        self.id
    }
    fn location(&self) -> &Location {
        &self.location
    }

    fn get(&self, id: &ObjectId) -> GetResult {
        let v = self.call("get", vec![("id", id_value(id))])?;
        v.into_bytes()
            .map_err(|e| RemoteError::UnexpectedDataFormat(format!("get returned {e}")).into())
    }

    fn get_many<'a>(&'a self, ids: Vec<ObjectId>) -> Box<dyn Iterator<Item = GetResult> + 'a> {
        Box::new(GetMany {
            repo: self,
            ids: ids.into_iter(),
            pending: VecDeque::new(),
            done: false,
        })
    }

    fn put(&self, id: &ObjectId, data: &[u8]) -> Result<()> {
        self.send(1, true, |_, msgid| wire::encode_put(msgid, &id.0, data))?;
        Ok(())
    }

    fn delete(&self, id: &ObjectId) -> Result<()> {
        self.call_async("delete", vec![("id", id_value(id))])
    }

    fn flush(&self) -> Result<()> {
        match self.drain_async()?.into_iter().next() {
            Some(e) => Err(exception_to_error(&e, &self.display)),
            None => Ok(()),
        }
    }

    fn commit(&self, compact: bool, threshold: f64, cleanup_commits: bool) -> Result<()> {
        self.flush()?;
        let mut args = vec![("save_space", Value::Bool(false))];
        if self.at_least("1.2.0a0") {
            args.push(("compact", compact.into()));
        }
        if self.at_least("1.2.0a8") {
            args.push(("threshold", Value::Float(threshold)));
        }
        if self.at_least("1.2.0a0") {
            args.push(("cleanup_commits", cleanup_commits.into()));
        }
        self.call("commit", args).map(drop)
    }

    fn rollback(&self) -> Result<()> {
        // Errors of puts/deletes in the abandoned transaction no longer matter.
        let _ = self.drain_async()?;
        self.call("rollback", vec![]).map(drop)
    }

    fn list(&self, limit: Option<usize>, marker: Option<&ObjectId>) -> Result<Vec<ObjectId>> {
        let v = self.call(
            "list",
            vec![("limit", opt_limit(limit)), ("marker", opt_marker(marker))],
        )?;
        self.ids_from(v)
    }

    fn scan(&self, limit: Option<usize>, marker: Option<&ObjectId>) -> Result<Vec<ObjectId>> {
        self.require("scan", "1.1.0b3")?;
        let v = self.call(
            "scan",
            vec![("limit", opt_limit(limit)), ("marker", opt_marker(marker))],
        )?;
        self.ids_from(v)
    }

    fn len(&self) -> Result<usize> {
        let v = self.call("__len__", vec![])?;
        v.as_u64()
            .map(|n| n as usize)
            .map_err(|e| RemoteError::UnexpectedDataFormat(e.to_string()).into())
    }

    fn check(&self, repair: bool, max_duration: u64) -> Result<bool> {
        if max_duration != 0 {
            self.require(&format!("check max_duration={max_duration}"), "1.2.0a4")?;
        }
        let mut args = vec![("repair", repair.into()), ("save_space", false.into())];
        if self.at_least("1.2.0a4") {
            args.push(("max_duration", max_duration.into()));
        }
        let v = self.call("check", args)?;
        Ok(match v {
            Value::Bool(b) => b,
            Value::Int(i) => i != 0,
            _ => false,
        })
    }

    fn destroy(&self) -> Result<()> {
        let _ = self.drain_async()?;
        self.call("destroy", vec![]).map(drop)
    }

    fn save_key(&self, keydata: &[u8]) -> Result<()> {
        self.call("save_key", vec![("keydata", Value::from(keydata))])
            .map(drop)
    }

    fn load_key(&self) -> Result<Vec<u8>> {
        match self.call("load_key", vec![])? {
            Value::Nil => Ok(Vec::new()),
            v => v
                .into_bytes()
                .map_err(|e| RemoteError::UnexpectedDataFormat(e.to_string()).into()),
        }
    }

    fn break_lock(&self) -> Result<()> {
        self.call("break_lock", vec![]).map(drop)
    }

    fn get_free_nonce(&self) -> Result<Option<u64>> {
        match self.call("get_free_nonce", vec![])? {
            Value::Nil => Ok(None),
            v => v
                .as_u64()
                .map(Some)
                .map_err(|e| RemoteError::UnexpectedDataFormat(e.to_string()).into()),
        }
    }

    fn commit_nonce_reservation(
        &self,
        next_unreserved: u64,
        start_nonce: Option<u64>,
    ) -> Result<()> {
        self.call(
            "commit_nonce_reservation",
            vec![
                ("next_unreserved", next_unreserved.into()),
                ("start_nonce", start_nonce.map_or(Value::Nil, Value::from)),
            ],
        )
        .map(drop)
    }

    fn close(&self) -> Result<()> {
        self.shutdown()
    }

    fn server_version(&self) -> (u32, u32, u32) {
        let part = |i: usize| {
            self.server_version
                .get(i)
                .copied()
                .unwrap_or(0)
                .clamp(0, u32::MAX as i64) as u32
        };
        (part(0), part(1), part(2))
    }
}

impl Drop for RemoteRepository {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

#[cfg(test)]
mod tests;
