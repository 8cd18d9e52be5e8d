//! `borg serve` for rborg: the server end of borg's RPC protocol (spec §10), so a real borg
//! 1.2/1.4 client (or rborg's own remote client) can use rborg as its remote repository.
//!
//! The CLI's `rborg serve` builds a [`ServeOptions`] (see [`ServeOptions::parse_args`] for the
//! option set) and calls [`serve_stdio`]. [`serve`] applies `SSH_ORIGINAL_COMMAND` itself (forced
//! command setups, §10.1), so callers must not do that again.
//!
//! One request is handled at a time, in arrival order, over a streaming msgpack decoder; each
//! method is dispatched by name to the [`LocalRepository`] opened by the `open` request.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use super::local::lock::LockError;
use super::local::LocalRepository;
use super::location::{Location, Proto};
use super::remote::wire::{self, RemoteException, StreamDecoder};
use super::remote::RemoteError;
use super::{ObjectId, OpenOptions, RepoError, Repository};
use crate::log::{self, Level};
use crate::msgpack::{ordered_map, Value};
use crate::pyrepr::py_repr;

const LOGGER: &str = "borg.remote";

/// What `borg serve` is told on its command line.
#[derive(Clone, Debug, PartialEq)]
pub struct ServeOptions {
    /// `--restrict-to-path` (repeatable): repositories must be at or below one of these.
    pub restrict_to_paths: Vec<PathBuf>,
    /// `--restrict-to-repository` (repeatable): repositories must be exactly one of these.
    pub restrict_to_repositories: Vec<PathBuf>,
    /// `--append-only`: existing repositories are opened append-only.
    pub append_only: bool,
    /// `--storage-quota` in bytes: overrides the repository's quota, written at init.
    pub storage_quota: Option<u64>,
    /// `--lock-wait` seconds: used when a client's `open` sends no `lock_wait`.
    pub lock_wait: f64,
    /// `--umask`, applied when serving starts.
    pub umask: Option<u32>,
    /// Log level (`--debug`, `--info`, ...); `None` leaves the process-wide level alone.
    pub log_level: Option<Level>,
    /// `--debug-topic` values (accepted for compatibility).
    pub debug_topics: Vec<String>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            restrict_to_paths: Vec::new(),
            restrict_to_repositories: Vec::new(),
            append_only: false,
            storage_quota: None,
            lock_wait: 1.0,
            umask: None,
            log_level: None,
            debug_topics: Vec::new(),
        }
    }
}

/// borg's `parse_file_size`: an integer with an optional decimal K/M/G/T/P/E suffix.
fn parse_file_size(s: &str) -> Option<u64> {
    let (num, factor) = match s.chars().last()? {
        'K' => (&s[..s.len() - 1], 1e3),
        'M' => (&s[..s.len() - 1], 1e6),
        'G' => (&s[..s.len() - 1], 1e9),
        'T' => (&s[..s.len() - 1], 1e12),
        'P' => (&s[..s.len() - 1], 1e15),
        'E' => (&s[..s.len() - 1], 1e18),
        _ => (s, 1.0),
    };
    let v: f64 = num.parse().ok()?;
    (v >= 0.0).then_some((v * factor) as u64)
}

/// Options `borg serve` understands. `strict` rejects unknown options (own command line);
/// lenient parsing is for a client's `SSH_ORIGINAL_COMMAND`.
struct Parsed {
    opts: ServeOptions,
    log_level: Option<Level>,
    lock_wait: Option<f64>,
    subcommand: Option<String>,
}

fn parse(args: &[String], strict: bool) -> Result<Parsed, String> {
    let mut p = Parsed {
        opts: ServeOptions::default(),
        log_level: None,
        lock_wait: None,
        subcommand: None,
    };
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        let takes_value = matches!(
            name,
            "--restrict-to-path"
                | "--restrict-to-repository"
                | "--storage-quota"
                | "--umask"
                | "--lock-wait"
                | "--debug-topic"
                | "--remote-path"
                | "--rsh"
                | "--upload-ratelimit"
                | "--upload-buffer"
                | "--debug-profile"
        );
        let value = if takes_value {
            match inline {
                Some(v) => Some(v),
                None if i < args.len() => {
                    i += 1;
                    Some(args[i - 1].clone())
                }
                None => return Err(format!("argument {name}: expected one argument")),
            }
        } else {
            None
        };
        let value_str = value.clone().unwrap_or_default();
        match name {
            "--restrict-to-path" => p.opts.restrict_to_paths.push(value_str.into()),
            "--restrict-to-repository" => p.opts.restrict_to_repositories.push(value_str.into()),
            "--append-only" => p.opts.append_only = true,
            "--storage-quota" => {
                let q = parse_file_size(&value_str).ok_or_else(|| {
                    format!("argument --storage-quota: invalid value {value_str:?}")
                })?;
                if q < 10_000_000 {
                    return Err(format!(
                        "argument --storage-quota: quota is too small ({value_str}). At least 10M are required."
                    ));
                }
                p.opts.storage_quota = Some(q);
            }
            "--umask" => {
                p.opts.umask = Some(
                    u32::from_str_radix(&value_str, 8)
                        .map_err(|_| format!("argument --umask: invalid value {value_str:?}"))?,
                )
            }
            "--lock-wait" => {
                p.lock_wait =
                    Some(value_str.parse().map_err(|_| {
                        format!("argument --lock-wait: invalid value {value_str:?}")
                    })?)
            }
            "--debug-topic" => p.opts.debug_topics.push(value_str),
            "--debug" => p.log_level = Some(Level::Debug),
            "--info" | "-v" | "--verbose" => p.log_level = Some(Level::Info),
            "--warning" => p.log_level = Some(Level::Warning),
            "--error" => p.log_level = Some(Level::Error),
            "--critical" => p.log_level = Some(Level::Critical),
            "--remote-path" | "--rsh" | "--upload-ratelimit" | "--upload-buffer"
            | "--debug-profile" => {}
            "--log-json"
            | "--show-rc"
            | "--show-version"
            | "--progress"
            | "-p"
            | "--iec"
            | "--bypass-lock"
            | "--consider-part-files"
            | "--no-files-cache" => {}
            _ if !name.starts_with('-') && p.subcommand.is_none() => {
                p.subcommand = Some(arg.clone())
            }
            _ if strict => return Err(format!("unrecognized arguments: {arg}")),
            _ => {}
        }
    }
    Ok(p)
}

impl ServeOptions {
    /// Parses `borg serve`'s options (the words after the program name; a leading `serve`
    /// word is accepted): `--restrict-to-path P`, `--restrict-to-repository P`,
    /// `--append-only`, `--storage-quota Q`, `--umask M`, `--lock-wait N`, `--debug-topic T`,
    /// `--debug`/`--info`/`-v`/`--warning`/`--error`/`--critical`; a few other common options
    /// are accepted and ignored.
    pub fn parse_args<S: AsRef<str>>(args: &[S]) -> Result<ServeOptions, String> {
        let args: Vec<String> = args.iter().map(|a| a.as_ref().to_string()).collect();
        let p = parse(&args, true)?;
        if let Some(s) = p.subcommand.as_deref().filter(|s| *s != "serve") {
            return Err(format!("unrecognized arguments: {s}"));
        }
        let mut opts = p.opts;
        opts.log_level = p.log_level;
        if let Some(w) = p.lock_wait {
            opts.lock_wait = w;
        }
        Ok(opts)
    }

    /// Applies the client's requested command (`SSH_ORIGINAL_COMMAND`) to a forced
    /// `borg serve` command: if it also asks for `serve`, only its log level, `--lock-wait` and
    /// `--debug-topic` are taken (their absence meaning the defaults); restrictions,
    /// append-only, quota and umask always stay as forced. Leading `VAR=value` words are
    /// dropped. Returns whether the client command was a `serve` command.
    pub fn apply_client_command(&mut self, cmd: &str) -> bool {
        let Some(words) = shlex::split(cmd) else {
            return false;
        };
        let words: Vec<String> = words.into_iter().skip_while(|w| w.contains('=')).collect();
        if words.is_empty() {
            return false;
        }
        let Ok(client) = parse(&words[1..], false) else {
            return false;
        };
        if client.subcommand.as_deref() != Some("serve") {
            return false;
        }
        self.log_level = Some(client.log_level.unwrap_or(Level::Warning));
        self.lock_wait = client.lock_wait.unwrap_or(1.0);
        self.debug_topics = client.opts.debug_topics;
        true
    }
}

// ---------------------------------------------------------------------------------------------
// path resolution

/// Python's `os.path.expanduser` for a path starting with `~`.
fn expanduser(p: &[u8]) -> PathBuf {
    let rest = &p[1..];
    let (user, tail) = match rest.iter().position(|&b| b == b'/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, &b""[..]),
    };
    let home = if user.is_empty() {
        std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from)
            .or_else(crate::platform::users::home_of_current_user)
    } else {
        crate::platform::users::home_of(&String::from_utf8_lossy(user))
    };
    match home {
        Some(h) => {
            let mut out = h.as_os_str().as_bytes().to_vec();
            while out.last() == Some(&b'/') {
                out.pop();
            }
            out.extend_from_slice(tail);
            if out.is_empty() {
                out.push(b'/');
            }
            PathBuf::from(OsStr::from_bytes(&out))
        }
        None => PathBuf::from(OsStr::from_bytes(p)),
    }
}

/// Python's non-strict `os.path.realpath`: absolute, symlinks resolved where they exist,
/// `..` applied after resolution, missing components kept as they are.
pub fn realpath(p: &Path) -> PathBuf {
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .unwrap_or_else(|_| PathBuf::from("/"))
            .join(p)
    };
    let mut todo: std::collections::VecDeque<PathBuf> = abs
        .components()
        .map(|c| PathBuf::from(c.as_os_str()))
        .collect();
    let mut out = PathBuf::from("/");
    let mut links = 0;
    while let Some(c) = todo.pop_front() {
        match c.components().next() {
            None | Some(Component::RootDir) | Some(Component::CurDir) => {}
            Some(Component::Prefix(_)) => {}
            Some(Component::ParentDir) => {
                out.pop();
            }
            Some(Component::Normal(name)) => {
                let next = out.join(name);
                match std::fs::symlink_metadata(&next) {
                    Ok(m) if m.file_type().is_symlink() && links < 40 => {
                        links += 1;
                        match std::fs::read_link(&next) {
                            Ok(target) => {
                                if target.is_absolute() {
                                    out = PathBuf::from("/");
                                }
                                for (i, tc) in target.components().enumerate() {
                                    todo.insert(i, PathBuf::from(tc.as_os_str()));
                                }
                            }
                            Err(_) => out = next,
                        }
                    }
                    _ => out = next,
                }
            }
        }
    }
    out
}

/// The server's `_resolve_path`: `/~/x` and `~/x` relative to the base dir (`BORG_BASE_DIR` or
/// home), `/~user/x` and `~user/x` relative to that user's home, `/./x` relative to the cwd;
/// then `realpath`.
pub fn resolve_path(path: &[u8]) -> PathBuf {
    let p = if let Some(rest) = path.strip_prefix(b"/~/") {
        crate::dirs::base_dir().join(OsStr::from_bytes(rest))
    } else if let Some(rest) = path.strip_prefix(b"~/") {
        crate::dirs::base_dir().join(OsStr::from_bytes(rest))
    } else if path.starts_with(b"/~") {
        expanduser(&path[1..])
    } else if path.starts_with(b"~") {
        expanduser(path)
    } else if let Some(rest) = path.strip_prefix(b"/./") {
        PathBuf::from(OsStr::from_bytes(rest))
    } else {
        PathBuf::from(OsStr::from_bytes(path))
    };
    realpath(&p)
}

fn with_sep(p: &Path) -> Vec<u8> {
    let mut b = p.as_os_str().as_bytes().to_vec();
    if b.last() != Some(&b'/') {
        b.push(b'/');
    }
    b
}

/// `--restrict-to-path` / `--restrict-to-repository` checks on a resolved repository path.
pub fn path_allowed(resolved: &Path, opts: &ServeOptions) -> bool {
    let path = with_sep(resolved);
    let prefix_ok = opts.restrict_to_paths.is_empty()
        || opts
            .restrict_to_paths
            .iter()
            .any(|r| path.starts_with(&with_sep(&realpath(r))));
    let repo_ok = opts.restrict_to_repositories.is_empty()
        || opts
            .restrict_to_repositories
            .iter()
            .any(|r| path == with_sep(&realpath(r)));
    prefix_ok && repo_ok
}

// ---------------------------------------------------------------------------------------------
// errors

/// A failed call, as the Python server would describe the exception it caught.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub class: String,
    pub args: Vec<Value>,
    pub message: String,
    /// A borg `Error` subclass (short form is the bare message).
    pub borg_error: bool,
    pub trace: bool,
}

impl Failure {
    fn borg(class: &str, args: Vec<Value>, message: String, trace: bool) -> Failure {
        Failure {
            class: class.into(),
            args,
            message,
            borg_error: true,
            trace,
        }
    }
    fn python(class: &str, message: String) -> Failure {
        Failure {
            class: class.into(),
            args: vec![Value::from(message.as_str())],
            message,
            borg_error: false,
            trace: true,
        }
    }

    /// Classes the clients rebuild as local errors: no server-side traceback logging.
    fn reconstructed(&self) -> bool {
        matches!(
            self.class.as_str(),
            "DoesNotExist"
                | "AlreadyExists"
                | "PathAlreadyExists"
                | "PathNotAllowed"
                | "InvalidRepository"
                | "InvalidRepositoryConfig"
                | "InsufficientFreeSpaceError"
                | "StorageQuotaExceeded"
        )
    }

    pub fn to_exception(&self) -> RemoteException {
        let line = format!("{}: {}\n", self.class, self.message);
        RemoteException {
            class: self.class.clone(),
            args: self.args.clone(),
            full: vec![
                "Traceback (most recent call last):\n".into(),
                "  (rborg serve: no Python traceback)\n".into(),
                line.clone(),
            ],
            short: if self.borg_error {
                vec![self.message.clone()]
            } else {
                vec![line]
            },
            trace: self.trace,
            sysinfo: sysinfo(),
        }
    }
}

fn s(v: &str) -> Value {
    Value::from(v)
}

fn os_error_class(errno: i32) -> &'static str {
    match errno {
        libc::ENOENT => "FileNotFoundError",
        libc::EEXIST => "FileExistsError",
        libc::EACCES | libc::EPERM => "PermissionError",
        libc::EISDIR => "IsADirectoryError",
        libc::ENOTDIR => "NotADirectoryError",
        libc::EINTR => "InterruptedError",
        _ => "OSError",
    }
}

/// Maps a repository error to the exception borg's server would raise.
pub fn failure_from_repo(e: &RepoError) -> Failure {
    let msg = e.to_string();
    match e {
        RepoError::DoesNotExist(p) => Failure::borg("DoesNotExist", vec![s(p)], msg, false),
        RepoError::AlreadyExists(p) => Failure::borg("AlreadyExists", vec![s(p)], msg, false),
        RepoError::PathAlreadyExists(p) => {
            Failure::borg("PathAlreadyExists", vec![s(p)], msg, false)
        }
        RepoError::ParentPathDoesNotExist(p) => {
            Failure::borg("ParentPathDoesNotExist", vec![s(p)], msg, false)
        }
        RepoError::InvalidRepository(p) => {
            Failure::borg("InvalidRepository", vec![s(p)], msg, false)
        }
        RepoError::InvalidRepositoryConfig(p, m) => {
            Failure::borg("InvalidRepositoryConfig", vec![s(p), s(m)], msg, false)
        }
        RepoError::AtticRepository(p) => Failure::borg("AtticRepository", vec![s(p)], msg, false),
        RepoError::CheckNeeded(p) => Failure::borg("CheckNeeded", vec![s(p)], msg, true),
        RepoError::ObjectNotFound(id, p) => {
            Failure::borg("ObjectNotFound", vec![s(&id.hex()), s(p)], msg, true)
        }
        RepoError::Integrity(m) => Failure::borg("IntegrityError", vec![s(m)], msg, true),
        RepoError::FileIntegrity(m) => Failure::borg("FileIntegrityError", vec![s(m)], msg, true),
        RepoError::StorageQuotaExceeded(q, u) => {
            Failure::borg("StorageQuotaExceeded", vec![s(q), s(u)], msg, false)
        }
        RepoError::InsufficientFreeSpace(r, a) => {
            Failure::borg("InsufficientFreeSpaceError", vec![s(r), s(a)], msg, false)
        }
        RepoError::PathPermissionDenied(p) => {
            Failure::borg("PathPermissionDenied", vec![s(p)], msg, false)
        }
        RepoError::AppendOnly(_) => Failure::python("ValueError", msg),
        RepoError::InvalidNonce(_) => Failure::borg("Error", vec![s(&msg)], msg, false),
        RepoError::NonceMismatch => Failure::python("Exception", msg),
        RepoError::Lock(l) => match l {
            LockError::Timeout(p) => Failure::borg("LockTimeout", vec![s(p)], msg, false),
            LockError::Failed(p, m) => Failure::borg("LockFailed", vec![s(p), s(m)], msg, true),
            LockError::NotLocked(p) => Failure::borg("NotLocked", vec![s(p)], msg, true),
            LockError::NotMyLock(p) => Failure::borg("NotMyLock", vec![s(p)], msg, true),
            LockError::Error(p) => Failure::borg("LockError", vec![s(p)], msg, false),
        },
        RepoError::Io { path, source } => {
            let errno = source.raw_os_error().unwrap_or(0);
            let text = source.to_string();
            let strerror = text
                .rsplit_once(" (os error ")
                .map_or(text.as_str(), |(a, _)| a)
                .to_string();
            Failure {
                class: os_error_class(errno).into(),
                args: vec![Value::from(errno as i64), s(&strerror)],
                message: format!(
                    "[Errno {errno}] {strerror}: {}",
                    py_repr(&path.to_string_lossy())
                ),
                borg_error: false,
                trace: true,
            }
        }
        RepoError::Remote(RemoteError::PathNotAllowed(p)) => {
            Failure::borg("PathNotAllowed", vec![s(p)], msg, false)
        }
        RepoError::Remote(RemoteError::InvalidRpcMethod(m)) => {
            Failure::borg("InvalidRPCMethod", vec![s(m)], msg, false)
        }
        RepoError::Remote(_) => Failure::python("Exception", msg),
    }
}

/// borg's `sysinfo()` text, describing this server (empty with `BORG_SHOW_SYSINFO=no`).
pub fn sysinfo() -> String {
    if std::env::var("BORG_SHOW_SYSINFO")
        .map(|v| v.eq_ignore_ascii_case("no"))
        .unwrap_or(false)
    {
        return String::new();
    }
    let mut lines = Vec::new();
    // SAFETY: uname fills a caller-provided struct.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut u) } == 0 {
        let f = |a: &[libc::c_char]| {
            // SAFETY: uname NUL-terminates every field.
            unsafe { std::ffi::CStr::from_ptr(a.as_ptr()) }
                .to_string_lossy()
                .into_owned()
        };
        lines.push(format!(
            "Platform: {} {} {} {} {}",
            f(&u.sysname),
            f(&u.nodename),
            f(&u.release),
            f(&u.version),
            f(&u.machine)
        ));
    }
    if cfg!(target_os = "linux") {
        lines.push("Linux: Unknown Linux  ".into());
    }
    lines.push(format!(
        "Borg: {}  Python: rborg {} msgpack: rmp fuse: None",
        crate::BORG_COMPAT_VERSION,
        crate::RBORG_VERSION
    ));
    lines.push(format!(
        "PID: {}  CWD: {}",
        std::process::id(),
        std::env::current_dir()
            .map(|d| d.display().to_string())
            .unwrap_or_default()
    ));
    let argv: Vec<String> = std::env::args_os()
        .map(|a| py_repr(&a.to_string_lossy()))
        .collect();
    lines.push(format!("sys.argv: [{}]", argv.join(", ")));
    lines.push(format!(
        "SSH_ORIGINAL_COMMAND: {}",
        std::env::var("SSH_ORIGINAL_COMMAND").map_or("None".into(), |c| py_repr(&c))
    ));
    lines.push(String::new());
    lines.join("\n")
}

// ---------------------------------------------------------------------------------------------
// the server

/// Methods a client may call (borg's `rpc_methods`).
const RPC_METHODS: &[&str] = &[
    "__len__",
    "check",
    "commit",
    "delete",
    "destroy",
    "get",
    "list",
    "scan",
    "negotiate",
    "open",
    "put",
    "rollback",
    "save_key",
    "load_key",
    "break_lock",
    "get_free_nonce",
    "commit_nonce_reservation",
    "inject_exception",
];

/// Positional argument names of the legacy tuple format.
fn positional_names(method: &str) -> &'static [&'static str] {
    match method {
        "check" => &["repair", "save_space"],
        "commit" => &["save_space"],
        "list" => &["limit", "marker"],
        "put" => &["id", "data"],
        "get" | "delete" => &["id"],
        "save_key" => &["keydata"],
        "negotiate" => &["client_data"],
        "open" => &[
            "path",
            "create",
            "lock_wait",
            "lock",
            "exclusive",
            "append_only",
        ],
        "commit_nonce_reservation" => &["next_unreserved", "start_nonce"],
        _ => &[],
    }
}

/// Named arguments of one call.
struct Args {
    method: String,
    pairs: Vec<(Vec<u8>, Value)>,
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Nil => false,
        Value::Bool(b) => *b,
        Value::Int(i) => *i != 0,
        Value::Float(f) => *f != 0.0,
        Value::Bytes(b) => !b.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Map(m) => !m.is_empty(),
    }
}

impl Args {
    fn get(&self, name: &str) -> Option<&Value> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name.as_bytes())
            .map(|(_, v)| v)
    }
    fn required(&self, name: &str) -> Result<&Value, Failure> {
        self.get(name).ok_or_else(|| {
            Failure::python(
                "TypeError",
                format!(
                    "{}() missing 1 required positional argument: '{name}'",
                    self.method
                ),
            )
        })
    }
    fn flag(&self, name: &str, default: bool) -> bool {
        self.get(name).map_or(default, truthy)
    }
    fn id(&self, name: &str) -> Result<ObjectId, Failure> {
        let v = self.required(name)?;
        v.as_bytes()
            .ok()
            .and_then(ObjectId::from_slice)
            .ok_or_else(|| Failure::python("TypeError", format!("invalid object id: {v:?}")))
    }
    fn bytes(&self, name: &str) -> Result<&[u8], Failure> {
        let v = self.required(name)?;
        v.as_bytes()
            .map_err(|e| Failure::python("TypeError", format!("{}: {name}: {e}", self.method)))
    }
    fn number(&self, name: &str) -> Result<Option<f64>, Failure> {
        match self.get(name) {
            None | Some(Value::Nil) => Ok(None),
            Some(Value::Int(i)) => Ok(Some(*i as f64)),
            Some(Value::Float(f)) => Ok(Some(*f)),
            Some(Value::Bool(b)) => Ok(Some(*b as u8 as f64)),
            Some(v) => Err(Failure::python(
                "TypeError",
                format!(
                    "{}: {name} must be a number, not {}",
                    self.method,
                    v.type_name()
                ),
            )),
        }
    }
    fn opt_int(&self, name: &str) -> Result<Option<i128>, Failure> {
        match self.get(name) {
            None | Some(Value::Nil) => Ok(None),
            Some(Value::Int(i)) => Ok(Some(*i)),
            Some(Value::Bool(b)) => Ok(Some(*b as i128)),
            Some(v) => Err(Failure::python(
                "TypeError",
                format!(
                    "{}: {name} must be an int, not {}",
                    self.method,
                    v.type_name()
                ),
            )),
        }
    }
    fn opt_id(&self, name: &str) -> Result<Option<ObjectId>, Failure> {
        match self.get(name) {
            None | Some(Value::Nil) => Ok(None),
            Some(_) => self.id(name).map(Some),
        }
    }
    fn u64_arg(&self, name: &str) -> Result<u64, Failure> {
        let v = self.required(name)?;
        v.as_u64()
            .map_err(|e| Failure::python("TypeError", format!("{}: {name}: {e}", self.method)))
    }
}

fn ids_value(ids: Vec<ObjectId>) -> Value {
    Value::Array(ids.iter().map(|id| Value::from(&id.0[..])).collect())
}

struct Server {
    opts: ServeOptions,
    repo: Option<LocalRepository>,
}

impl Server {
    fn repo(&self, method: &str) -> Result<&LocalRepository, Failure> {
        self.repo.as_ref().ok_or_else(|| {
            Failure::python(
                "AttributeError",
                format!("'NoneType' object has no attribute '{method}'"),
            )
        })
    }

    fn dispatch(&mut self, method: &str, a: &Args) -> Result<Value, Failure> {
        if !RPC_METHODS.contains(&method) {
            return Err(failure_from_repo(
                &RemoteError::InvalidRpcMethod(method.to_string()).into(),
            ));
        }
        let r = |e: RepoError| failure_from_repo(&e);
        match method {
            "negotiate" => Ok(self.negotiate(a.required("client_data")?)),
            "open" => self.open(a),
            "inject_exception" => Err(inject_exception(
                &a.required("kind")?.as_str().unwrap_or_default(),
            )),
            "__len__" => Ok(Value::from(self.repo(method)?.len().map_err(r)?)),
            "list" | "scan" => {
                let limit = a.opt_int("limit")?;
                let marker = a.opt_id("marker")?;
                let repo = self.repo(method)?;
                if method == "scan" && limit.is_some_and(|l| l < 1) {
                    return Err(Failure::python(
                        "ValueError",
                        "please use limit > 0 or limit = None".into(),
                    ));
                }
                let limit = match limit {
                    Some(l) if l < 0 => {
                        return Err(Failure::python("ValueError", format!("invalid limit {l}")))
                    }
                    l => l.map(|l| l.min(usize::MAX as i128) as usize),
                };
                let ids = if method == "list" {
                    repo.list(limit, marker.as_ref())
                } else {
                    repo.scan(limit, marker.as_ref())
                };
                Ok(ids_value(ids.map_err(r)?))
            }
            "get" => {
                let id = a.id("id")?;
                Ok(Value::Bytes(self.repo(method)?.get(&id).map_err(r)?))
            }
            "put" => {
                let id = a.id("id")?;
                let data = a.bytes("data")?;
                self.repo(method)?.put(&id, data).map_err(r)?;
                Ok(Value::Nil)
            }
            "delete" => {
                let id = a.id("id")?;
                self.repo(method)?.delete(&id).map_err(r)?;
                Ok(Value::Nil)
            }
            "commit" => {
                let compact = a.flag("compact", true);
                let threshold = a.number("threshold")?.unwrap_or(0.1);
                let cleanup = a.flag("cleanup_commits", false);
                self.repo(method)?
                    .commit(compact, threshold, cleanup)
                    .map_err(r)?;
                Ok(Value::Nil)
            }
            "rollback" => {
                self.repo(method)?.rollback().map_err(r)?;
                Ok(Value::Nil)
            }
            "check" => {
                let repair = a.flag("repair", false);
                let max_duration = a.number("max_duration")?.unwrap_or(0.0).max(0.0) as u64;
                Ok(Value::Bool(
                    self.repo(method)?.check(repair, max_duration).map_err(r)?,
                ))
            }
            "destroy" => {
                self.repo(method)?.destroy().map_err(r)?;
                Ok(Value::Nil)
            }
            "save_key" => {
                let keydata = a.bytes("keydata")?;
                self.repo(method)?.save_key(keydata).map_err(r)?;
                Ok(Value::Nil)
            }
            "load_key" => Ok(Value::Bytes(self.repo(method)?.load_key().map_err(r)?)),
            "break_lock" => {
                self.repo(method)?.break_lock().map_err(r)?;
                Ok(Value::Nil)
            }
            "get_free_nonce" => Ok(self
                .repo(method)?
                .get_free_nonce()
                .map_err(r)?
                .map_or(Value::Nil, Value::from)),
            "commit_nonce_reservation" => {
                let next = a.u64_arg("next_unreserved")?;
                let start = match a.required("start_nonce")? {
                    Value::Nil => None,
                    _ => Some(a.u64_arg("start_nonce")?),
                };
                self.repo(method)?
                    .commit_nonce_reservation(next, start)
                    .map_err(r)?;
                Ok(Value::Nil)
            }
            _ => Err(failure_from_repo(
                &RemoteError::InvalidRpcMethod(method.to_string()).into(),
            )),
        }
    }

    fn negotiate(&mut self, client_data: &Value) -> Value {
        if client_data == &Value::Int(2) {
            return Value::Int(2);
        }
        if let Value::Map(_) = client_data {
            // A dict-speaking client reads JSON log lines from our stderr.
            log::set_json(true);
            log::debug(LOGGER, "Initialized logging system for JSON-based protocol");
        }
        ordered_map(vec![(
            "server_version",
            wire::version_value(&wire::our_version()),
        )])
    }

    fn open(&mut self, a: &Args) -> Result<Value, Failure> {
        let raw_path = a.bytes("path")?.to_vec();
        let create = a.flag("create", false);
        let lock_wait = a.number("lock_wait")?.unwrap_or(self.opts.lock_wait);
        let lock = a.flag("lock", true);
        let exclusive = a.flag("exclusive", false);
        let append_only = a.flag("append_only", false);
        let make_parent_dirs = a.flag("make_parent_dirs", false);
        log::debug(
            LOGGER,
            &format!(
                "Resolving repository path {}",
                py_repr(&String::from_utf8_lossy(&raw_path))
            ),
        );
        let path = resolve_path(&raw_path);
        let shown = path.to_string_lossy().into_owned();
        log::debug(
            LOGGER,
            &format!("Resolved repository path to {}", py_repr(&shown)),
        );
        if !path_allowed(&path, &self.opts) {
            return Err(failure_from_repo(
                &RemoteError::PathNotAllowed(shown).into(),
            ));
        }
        // `init` through an append-only server creates a normal repository unless the client
        // asked for append-only itself.
        let append_only = (!create && self.opts.append_only) || append_only;
        // A second open replaces the first; release the old one's lock before locking again.
        if let Some(old) = self.repo.take() {
            let _ = old.close();
        }
        let location = Location {
            proto: Proto::File,
            user: None,
            host: None,
            port: None,
            path: shown,
            archive: None,
        };
        let opts = OpenOptions {
            create,
            exclusive: lock.then_some(exclusive),
            lock_wait: lock_wait.clamp(0.0, 1e9),
            append_only,
            storage_quota: self.opts.storage_quota,
            make_parent_dirs,
        };
        let repo = LocalRepository::open(&location, &opts).map_err(|e| failure_from_repo(&e))?;
        let id = repo.id();
        self.repo = Some(repo);
        Ok(Value::from(&id.0[..]))
    }

    fn close_repo(&mut self) {
        if let Some(repo) = self.repo.take() {
            if let Err(e) = repo.close() {
                log::error(LOGGER, &e.to_string());
            }
        }
    }
}

/// The test hook `inject_exception`: raises the named exception like borg's server.
fn inject_exception(kind: &str) -> Failure {
    let s1 = "test string".to_string();
    let s2 = "test string2".to_string();
    let e: RepoError = match kind {
        "DoesNotExist" => RepoError::DoesNotExist(s1),
        "AlreadyExists" => RepoError::AlreadyExists(s1),
        "CheckNeeded" => RepoError::CheckNeeded(s1),
        "IntegrityError" => RepoError::Integrity(s1),
        "PathNotAllowed" => RemoteError::PathNotAllowed("foo".into()).into(),
        "ObjectNotFound" => {
            return Failure::borg(
                "ObjectNotFound",
                vec![s(&s1), s(&s2)],
                format!("Object with key {s1} not found in repository {s2}."),
                true,
            )
        }
        "InvalidRPCMethod" => RemoteError::InvalidRpcMethod(s1).into(),
        "divide" => {
            return Failure::python(
                "ZeroDivisionError",
                "integer division or modulo by zero".into(),
            )
        }
        _ => return Failure::python("Exception", format!("unknown exception kind {kind}")),
    };
    failure_from_repo(&e)
}

enum Format {
    Dict,
    Tuple,
}

/// Splits one decoded request into (format, msgid, method, named args).
fn parse_request(v: Value) -> Option<(Format, Value, String, Args)> {
    match v {
        Value::Map(_) => {
            let msgid = v.get("i")?.clone();
            let method = v.get("m")?.as_str().ok()?;
            let pairs = match v.get("a") {
                Some(Value::Map(m)) => m
                    .iter()
                    .filter_map(|(k, v)| Some((k.as_bytes().ok()?.to_vec(), v.clone())))
                    .collect(),
                _ => Vec::new(),
            };
            Some((Format::Dict, msgid, method.clone(), Args { method, pairs }))
        }
        Value::Array(a) if a.len() == 4 => {
            let mut it = a.into_iter();
            let _type = it.next();
            let msgid = it.next()?;
            let method = it.next()?.as_str().ok()?;
            let positional = it.next()?.into_array().unwrap_or_default();
            let pairs = positional_names(&method)
                .iter()
                .zip(positional)
                .map(|(n, v)| (n.as_bytes().to_vec(), v))
                .collect();
            Some((Format::Tuple, msgid, method.clone(), Args { method, pairs }))
        }
        _ => None,
    }
}

fn write_stderr(msg: &str) {
    log::write_stderr_line(msg);
}

/// Serves one client over the given streams until EOF; returns the process exit code (0 on a
/// clean EOF). Applies `$SSH_ORIGINAL_COMMAND` to `opts` first (forced-command setups).
pub fn serve<R: Read, W: Write>(mut opts: ServeOptions, mut stdin: R, stdout: W) -> i32 {
    if let Ok(cmd) = std::env::var("SSH_ORIGINAL_COMMAND") {
        opts.apply_client_command(&cmd);
    }
    if let Some(level) = opts.log_level {
        log::set_level(level);
    }
    if let Some(m) = opts.umask {
        // SAFETY: umask only swaps the process file mode creation mask.
        unsafe {
            libc::umask(m as libc::mode_t);
        }
    }
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout);
    let mut server = Server { opts, repo: None };
    let mut dec = StreamDecoder::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        loop {
            let v = match dec.next_value() {
                Ok(Some(v)) => v,
                Ok(None) => break,
                Err(e) => {
                    server.close_repo();
                    write_stderr(&format!(
                        "Borg {}: Got unexpected RPC data format from client. ({e})",
                        crate::BORG_COMPAT_VERSION
                    ));
                    return 2;
                }
            };
            let Some((format, msgid, method, args)) = parse_request(v) else {
                server.close_repo();
                write_stderr(&format!(
                    "Borg {}: Got unexpected RPC data format from client.",
                    crate::BORG_COMPAT_VERSION
                ));
                return 2;
            };
            let result = server.dispatch(&method, &args);
            let bytes = match (format, result) {
                (Format::Dict, Ok(r)) => wire::encode_result(&msgid, r),
                (Format::Dict, Err(f)) => {
                    if !f.reconstructed() {
                        log::debug(LOGGER, &format!("{}: {}", f.class, f.message));
                    }
                    f.to_exception().encode(&msgid)
                }
                (Format::Tuple, Ok(r)) => {
                    Value::Array(vec![Value::Int(1), msgid, Value::Nil, r]).to_bytes()
                }
                (Format::Tuple, Err(f)) => {
                    if !f.reconstructed() {
                        log::error(LOGGER, &format!("{}: {}", f.class, f.message));
                    }
                    Value::Array(vec![
                        Value::Int(1),
                        msgid,
                        Value::from(f.class.as_str()),
                        Value::from("Remote Exception (see remote log for the traceback)"),
                    ])
                    .to_bytes()
                }
            };
            if out.write_all(&bytes).is_err() {
                server.close_repo();
                return 2;
            }
        }
        // Everything decodable is answered: push it out before blocking on the next read.
        if out.flush().is_err() {
            server.close_repo();
            return 2;
        }
        let n = match stdin.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => 0,
        };
        if n == 0 {
            if server.repo.is_some() {
                server.close_repo();
            } else {
                write_stderr(&format!(
                    "Borg {}: Got connection close before repository was opened.",
                    crate::BORG_COMPAT_VERSION
                ));
            }
            return 0;
        }
        dec.feed(&buf[..n]);
    }
}

/// [`serve`] on the process's stdin/stdout (what `rborg serve` runs). Both descriptors are
/// switched to blocking mode and used unbuffered by std (the server buffers itself).
pub fn serve_stdio(opts: ServeOptions) -> i32 {
    use std::fs::File;
    use std::mem::ManuallyDrop;
    use std::os::fd::FromRawFd;
    for fd in [0, 1] {
        // SAFETY: fcntl on the process's own standard descriptors.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFL);
            if flags >= 0 && flags & libc::O_NONBLOCK != 0 {
                libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK);
            }
        }
    }
    // SAFETY: fds 0 and 1 stay open for the whole process; ManuallyDrop never closes them.
    let stdin = ManuallyDrop::new(unsafe { File::from_raw_fd(0) });
    let stdout = ManuallyDrop::new(unsafe { File::from_raw_fd(1) });
    serve(opts, &*stdin, &*stdout)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msgpack::Decoder;

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s.replace([' ', '\n'], "")).unwrap()
    }

    fn responses(out: &[u8]) -> Vec<Value> {
        let mut d = Decoder::new(out);
        let mut v = Vec::new();
        while let Some(x) = d.next_value().unwrap() {
            v.push(x);
        }
        v
    }

    fn run(opts: ServeOptions, input: &[u8]) -> (i32, Vec<Value>, Vec<u8>) {
        let mut out = Vec::new();
        let rc = serve(opts, input, &mut out);
        (rc, responses(&out), out)
    }

    fn req(msgid: u64, method: &str, args: Vec<(&str, Value)>) -> Vec<u8> {
        wire::encode_request(msgid, method, args)
    }

    #[test]
    fn parse_own_command_line() {
        let o = ServeOptions::parse_args(&[
            "serve",
            "--restrict-to-path",
            "/a",
            "--restrict-to-path=/b",
            "--restrict-to-repository",
            "/r",
            "--append-only",
            "--storage-quota=5G",
            "--umask",
            "0077",
            "--lock-wait",
            "7",
            "--info",
        ])
        .unwrap();
        assert_eq!(o.restrict_to_paths, vec![PathBuf::from("/a"), "/b".into()]);
        assert_eq!(o.restrict_to_repositories, vec![PathBuf::from("/r")]);
        assert!(o.append_only);
        assert_eq!(o.storage_quota, Some(5_000_000_000));
        assert_eq!(o.umask, Some(0o77));
        assert_eq!(o.lock_wait, 7.0);
        assert_eq!(o.log_level, Some(Level::Info));
        assert_eq!(
            ServeOptions::parse_args::<&str>(&[]).unwrap(),
            ServeOptions::default()
        );
        assert!(ServeOptions::parse_args(&["--bogus"]).is_err());
        assert!(ServeOptions::parse_args(&["list"]).is_err());
        assert!(ServeOptions::parse_args(&["--storage-quota", "1M"]).is_err());
        assert!(ServeOptions::parse_args(&["--restrict-to-path"]).is_err());
    }

    #[test]
    fn forced_command_takes_only_allowlisted_client_options() {
        let mut forced = ServeOptions::parse_args(&[
            "serve",
            "--restrict-to-path",
            "/srv",
            "--append-only",
            "--debug",
            "--lock-wait=9",
        ])
        .unwrap();
        let before = forced.clone();
        assert!(forced.apply_client_command(
            "BORG_X=1 borg serve --info --lock-wait 3 --restrict-to-path / --storage-quota 20G \
             --umask 000 --debug-topic repository"
        ));
        assert_eq!(forced.restrict_to_paths, before.restrict_to_paths);
        assert!(forced.append_only);
        assert_eq!(forced.storage_quota, None);
        assert_eq!(forced.umask, None);
        assert_eq!(forced.log_level, Some(Level::Info));
        assert_eq!(forced.lock_wait, 3.0);
        assert_eq!(forced.debug_topics, vec!["repository".to_string()]);
        // Absent options mean the defaults, not the forced values.
        let mut f2 = before.clone();
        assert!(f2.apply_client_command("borg serve"));
        assert_eq!(f2.log_level, Some(Level::Warning));
        assert_eq!(f2.lock_wait, 1.0);
        // A different command leaves the forced command alone.
        let mut f3 = before.clone();
        assert!(!f3.apply_client_command("borg list --debug /x"));
        assert!(!f3.apply_client_command("'unbalanced"));
        assert_eq!(f3, before);
    }

    #[test]
    fn path_resolution() {
        let base = crate::dirs::base_dir();
        assert_eq!(resolve_path(b"/~/repo"), realpath(&base.join("repo")));
        assert_eq!(resolve_path(b"~/repo"), realpath(&base.join("repo")));
        if let Some(rh) = crate::platform::users::home_of("root") {
            assert_eq!(resolve_path(b"/~root/r"), realpath(&rh.join("r")));
            assert_eq!(resolve_path(b"~root/r"), realpath(&rh.join("r")));
        }
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(resolve_path(b"/./rel/x"), realpath(&cwd.join("rel/x")));
        assert_eq!(resolve_path(b"rel"), realpath(&cwd.join("rel")));
        assert_eq!(resolve_path(b"/a/b/../c/./d/"), PathBuf::from("/a/c/d"));
        assert_eq!(
            resolve_path(b"/~nosuchuser_rborg/x"),
            realpath(&cwd.join("~nosuchuser_rborg/x"))
        );
    }

    #[test]
    fn realpath_follows_symlinks() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("real/sub")).unwrap();
        std::os::unix::fs::symlink(root.join("real"), root.join("link")).unwrap();
        std::os::unix::fs::symlink("real/sub", root.join("rel")).unwrap();
        assert_eq!(realpath(&root.join("link/sub")), root.join("real/sub"));
        assert_eq!(realpath(&root.join("link/../x")), root.join("x"));
        assert_eq!(
            realpath(&root.join("rel/missing/y")),
            root.join("real/sub/missing/y")
        );
        std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
        let _ = realpath(&root.join("loop/x")); // terminates
    }

    #[test]
    fn restrictions() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("foo")).unwrap();
        let opts = ServeOptions {
            restrict_to_paths: vec![root.join("foo")],
            ..Default::default()
        };
        assert!(path_allowed(&root.join("foo"), &opts));
        assert!(path_allowed(&root.join("foo/repo"), &opts));
        assert!(!path_allowed(&root.join("foobar"), &opts));
        assert!(!path_allowed(&root, &opts));
        let opts = ServeOptions {
            restrict_to_repositories: vec![root.join("foo/repo/")],
            ..Default::default()
        };
        assert!(path_allowed(&root.join("foo/repo"), &opts));
        assert!(!path_allowed(&root.join("foo/repo/sub"), &opts));
        assert!(!path_allowed(&root.join("foo"), &opts));
        let both = ServeOptions {
            restrict_to_paths: vec![root.join("foo")],
            restrict_to_repositories: vec![root.join("other")],
            ..Default::default()
        };
        assert!(!path_allowed(&root.join("foo/x"), &both));
        assert!(!path_allowed(&root.join("other"), &both));
    }

    #[test]
    fn error_descriptions() {
        let f = failure_from_repo(&RepoError::ObjectNotFound(
            ObjectId([0xab; 32]),
            "/r".into(),
        ));
        assert_eq!(f.class, "ObjectNotFound");
        assert_eq!(f.args, vec![s(&"ab".repeat(32)), s("/r")]);
        let e = f.to_exception();
        assert_eq!(
            e.short,
            vec![format!(
                "Object with key {} not found in repository /r.",
                "ab".repeat(32)
            )]
        );
        assert!(e.trace);
        let e = failure_from_repo(&RepoError::DoesNotExist("/x".into())).to_exception();
        assert_eq!(
            (e.class.as_str(), e.trace, e.short[0].as_str()),
            ("DoesNotExist", false, "Repository /x does not exist.")
        );
        let e = failure_from_repo(&RepoError::AppendOnly("/x".into())).to_exception();
        assert_eq!(e.class, "ValueError");
        assert_eq!(
            e.short,
            vec!["ValueError: /x is in append-only mode\n".to_string()]
        );
        let e = failure_from_repo(&LockError::Timeout("/x/lock.exclusive".into()).into());
        assert_eq!((e.class.as_str(), e.trace), ("LockTimeout", false));
        let io = RepoError::io("/nope", std::io::Error::from_raw_os_error(libc::EACCES));
        let e = failure_from_repo(&io).to_exception();
        assert_eq!(e.class, "PermissionError");
        assert_eq!(e.args, vec![Value::Int(13), s("Permission denied")]);
        assert_eq!(
            e.short,
            vec!["PermissionError: [Errno 13] Permission denied: '/nope'\n".to_string()]
        );
        let e = failure_from_repo(&RemoteError::InvalidRpcMethod("close".into()).into());
        assert_eq!((e.class.as_str(), e.borg_error), ("InvalidRPCMethod", true));
        assert_eq!(py_repr("it's"), "\"it's\"");
        assert_eq!(py_repr("a'\"b\n"), "'a\\'\"b\\n'");
    }

    #[test]
    fn wire_negotiate_open_len_get_put() {
        let t = tempfile::tempdir().unwrap();
        let repo_path = t.path().join("repo");
        LocalRepository::create(&repo_path, false, 0, false).unwrap();
        let mut input = unhex(
            "83a16901a16da96e65676f7469617465a16181ab636c69656e745f6461746181ae636c69656e\
             745f76657273696f6e94010204ff",
        );
        input.extend(req(
            2,
            "open",
            vec![
                ("path", Value::from(repo_path.to_str().unwrap())),
                ("create", false.into()),
                ("lock_wait", 1u8.into()),
                ("lock", true.into()),
                ("exclusive", true.into()),
                ("append_only", false.into()),
                ("make_parent_dirs", false.into()),
            ],
        ));
        input.extend(req(3, "__len__", vec![]));
        let key: Vec<u8> = (0u8..32).collect();
        input.extend(wire::encode_put(4, &key, b"hello world"));
        input.extend(req(5, "get", vec![("id", Value::from(&key[..]))]));
        input.extend(req(6, "commit", vec![("save_space", false.into())]));
        input.extend(req(7, "close", vec![]));
        input.extend(req(
            8,
            "list",
            vec![("limit", Value::Nil), ("marker", Value::Nil)],
        ));
        let (rc, resp, raw) = run(ServeOptions::default(), &input);
        assert_eq!(rc, 0);
        assert_eq!(resp.len(), 8);
        // negotiate answer: {i:1, r:{server_version:[1,4,1,-1]}}
        assert!(raw.starts_with(&unhex(
            "82a16901a17281ae7365727665725f76657273696f6e94010401ff"
        )));
        let mut open_prefix = unhex("82 a1 69 02 a1 72 da 00 20");
        let id = resp[1].req("r").unwrap().as_bytes().unwrap().to_vec();
        assert_eq!(id.len(), 32);
        open_prefix.extend_from_slice(&id);
        assert_eq!(resp[1].to_bytes(), open_prefix);
        assert_eq!(resp[2].to_bytes(), unhex("82 a1 69 03 a1 72 00"));
        assert_eq!(resp[3].to_bytes(), unhex("82 a1 69 04 a1 72 c0"));
        let mut get = unhex("82 a1 69 05 a1 72 ab");
        get.extend_from_slice(b"hello world");
        assert_eq!(resp[4].to_bytes(), get);
        assert_eq!(resp[5].req("r").unwrap(), &Value::Nil);
        let e = RemoteException::from_response(&resp[6]).unwrap();
        assert_eq!(e.class, "InvalidRPCMethod");
        assert_eq!(e.args, vec![s("close")]);
        assert_eq!(e.short, vec!["RPC method close is not valid.".to_string()]);
        assert!(!e.trace);
        assert!(e.sysinfo.contains("PID: "));
        // error dicts carry exactly the keys of §10.6, in borg's order
        let keys: Vec<String> = resp[6]
            .as_map()
            .unwrap()
            .iter()
            .map(|(k, _)| k.as_str().unwrap())
            .collect();
        assert_eq!(
            keys,
            [
                "i",
                "exception_class",
                "exception_args",
                "exception_full",
                "exception_short",
                "exception_trace",
                "sysinfo"
            ]
        );
        assert_eq!(
            resp[7].req("r").unwrap(),
            &Value::Array(vec![Value::from(&key[..])])
        );
        // never bin/str8 on the wire: re-encoding the (lenient) decode in the raw family
        // reproduces the stream byte for byte
        let reencoded: Vec<u8> = resp.iter().flat_map(|v| v.to_bytes()).collect();
        assert_eq!(reencoded, raw);
        // the lock was released at EOF
        let again = LocalRepository::open(
            &Location::parse(repo_path.to_str().unwrap()).unwrap(),
            &OpenOptions {
                exclusive: Some(true),
                lock_wait: 0.0,
                ..Default::default()
            },
        );
        assert!(again.is_ok());
    }

    #[test]
    fn calls_before_open_and_bad_input() {
        let mut input = req(1, "negotiate", vec![("client_data", Value::Int(2))]);
        input.extend(req(2, "get", vec![("id", Value::from(&[0u8; 32][..]))]));
        input.extend(req(3, "inject_exception", vec![("kind", s("divide"))]));
        input.extend(req(4, "scan", vec![]));
        let (rc, resp, _) = run(ServeOptions::default(), &input);
        assert_eq!(rc, 0);
        assert_eq!(resp[0].req("r").unwrap(), &Value::Int(2));
        let e = RemoteException::from_response(&resp[1]).unwrap();
        assert_eq!(e.class, "AttributeError");
        let e = RemoteException::from_response(&resp[2]).unwrap();
        assert_eq!(e.class, "ZeroDivisionError");
        assert!(e.trace);
        assert_eq!(
            e.short,
            vec!["ZeroDivisionError: integer division or modulo by zero\n".to_string()]
        );
        let e = RemoteException::from_response(&resp[3]).unwrap();
        assert_eq!(e.class, "AttributeError");
        // not a request at all
        let (rc, resp, _) = run(ServeOptions::default(), &Value::Int(5).to_bytes());
        assert_eq!((rc, resp.len()), (2, 0));
        let (rc, _, _) = run(ServeOptions::default(), &[0xc1]);
        assert_eq!(rc, 2);
        // EOF right away is a clean exit
        assert_eq!(run(ServeOptions::default(), &[]).0, 0);
    }

    #[test]
    fn legacy_tuple_format() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("r");
        let mut input = Value::Array(vec![
            Value::Int(1),
            Value::Int(1),
            s("negotiate"),
            Value::Array(vec![Value::Int(2)]),
        ])
        .to_bytes();
        input.extend(
            Value::Array(vec![
                Value::Int(1),
                Value::Int(2),
                s("open"),
                Value::Array(vec![
                    s(p.to_str().unwrap()),
                    true.into(),
                    1u8.into(),
                    true.into(),
                    true.into(),
                    false.into(),
                ]),
            ])
            .to_bytes(),
        );
        input.extend(
            Value::Array(vec![
                Value::Int(1),
                Value::Int(3),
                s("__len__"),
                Value::Array(vec![]),
            ])
            .to_bytes(),
        );
        input.extend(
            Value::Array(vec![
                Value::Int(1),
                Value::Int(4),
                s("get"),
                Value::Array(vec![Value::from(&[1u8; 32][..])]),
            ])
            .to_bytes(),
        );
        let (rc, resp, _) = run(ServeOptions::default(), &input);
        assert_eq!(rc, 0);
        assert_eq!(
            resp[0],
            Value::Array(vec![
                Value::Int(1),
                Value::Int(1),
                Value::Nil,
                Value::Int(2)
            ])
        );
        assert_eq!(resp[1].as_array().unwrap()[2], Value::Nil);
        assert_eq!(resp[2].as_array().unwrap()[3], Value::Int(0));
        assert_eq!(resp[3].as_array().unwrap()[2], s("ObjectNotFound"));
        assert!(p.join("config").exists());
    }

    #[test]
    fn open_respects_restrictions_and_append_only() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().canonicalize().unwrap();
        let allowed = root.join("allowed");
        std::fs::create_dir(&allowed).unwrap();
        let opts = ServeOptions {
            restrict_to_paths: vec![allowed.clone()],
            append_only: true,
            ..Default::default()
        };
        let open = |id: u64, p: &Path, create: bool| {
            req(
                id,
                "open",
                vec![
                    ("path", Value::from(p.to_str().unwrap())),
                    ("create", create.into()),
                    ("lock_wait", 1u8.into()),
                    ("lock", true.into()),
                    ("exclusive", true.into()),
                ],
            )
        };
        let mut input = req(1, "negotiate", vec![("client_data", ordered_map(vec![]))]);
        input.extend(open(2, &root.join("elsewhere"), true));
        input.extend(open(3, &allowed.join("repo"), true));
        input.extend(open(4, &allowed.join("repo"), false));
        input.extend(req(5, "destroy", vec![]));
        let (rc, resp, _) = run(opts, &input);
        assert_eq!(rc, 0);
        let e = RemoteException::from_response(&resp[1]).unwrap();
        assert_eq!(e.class, "PathNotAllowed");
        assert_eq!(e.arg(0).unwrap(), root.join("elsewhere").to_str().unwrap());
        assert!(!root.join("elsewhere").exists());
        assert!(resp[2].get("r").is_some());
        assert!(resp[3].get("r").is_some());
        // init through an --append-only server made a normal repo, but it is opened append-only
        let cfg = std::fs::read_to_string(allowed.join("repo/config")).unwrap();
        assert!(cfg.contains("append_only = 0"), "{cfg}");
        let e = RemoteException::from_response(&resp[4]).unwrap();
        assert_eq!(e.class, "ValueError");
        assert!(allowed.join("repo/config").exists());
    }
}
