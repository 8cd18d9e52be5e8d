//! Wire format shared by the RPC client and `serve`: a stream of concatenated msgpack values in
//! borg's legacy dialect (raw str family only), dict-format requests/responses, version tuples
//! and the exception dict.

use crate::msgpack::{self, ordered_map, DecodeError, Value};

/// Most requests the client keeps outstanding when pipelining (`MAX_INFLIGHT` in borg).
pub const MAX_INFLIGHT: usize = 100;

/// Largest single message accepted from a peer (borg's unpacker buffer limit: 3 × 20 MiB).
pub const MAX_MESSAGE: usize = 3 * crate::repo::MAX_OBJECT_SIZE;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StreamError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("msgpack message too large (needs {0} bytes)")]
    TooLarge(usize),
}

/// Splits a byte stream into msgpack values without re-decoding partial input over and over:
/// a cheap non-allocating scan finds where the next value ends (or how many bytes are needed at
/// least), and only complete values are decoded. A message that would exceed `max` bytes is an
/// error instead of unbounded buffering.
pub struct StreamDecoder {
    buf: Vec<u8>,
    start: usize,
    /// Do not scan again before the buffer holds this many bytes after `start`.
    need: usize,
    max: usize,
}

impl Default for StreamDecoder {
    fn default() -> Self {
        Self::with_limit(MAX_MESSAGE)
    }
}

impl StreamDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_limit(max: usize) -> Self {
        StreamDecoder {
            buf: Vec::new(),
            start: 0,
            need: 0,
            max,
        }
    }

    pub fn feed(&mut self, data: &[u8]) {
        if self.start > 0 && self.start >= self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// Bytes received but not yet returned as values.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The next complete value, `Ok(None)` if more input is needed.
    pub fn next_value(&mut self) -> Result<Option<Value>, StreamError> {
        let avail = &self.buf[self.start..];
        if avail.is_empty() || avail.len() < self.need {
            return Ok(None);
        }
        match value_len(avail) {
            Ok(n) => {
                let v = msgpack::decode(&avail[..n])?;
                self.start += n;
                self.need = 0;
                if self.start == self.buf.len() {
                    self.buf.clear();
                    self.start = 0;
                }
                Ok(Some(v))
            }
            Err(Scan::Incomplete(need)) => {
                if need > self.max || avail.len() > self.max {
                    return Err(StreamError::TooLarge(need.max(avail.len())));
                }
                self.need = need;
                Ok(None)
            }
            Err(Scan::Bad(m)) => Err(DecodeError::BadMarker(m).into()),
        }
    }
}

enum Scan {
    /// At least this many bytes are needed.
    Incomplete(usize),
    Bad(u8),
}

/// Length of the first msgpack value in `data` (iterative, no allocation).
fn value_len(data: &[u8]) -> Result<usize, Scan> {
    let mut pos = 0usize;
    let mut todo: u64 = 1;
    let need = |pos: usize, n: usize| -> Result<(), Scan> {
        if data.len() < pos + n {
            Err(Scan::Incomplete(pos + n))
        } else {
            Ok(())
        }
    };
    let be = |pos: usize, n: usize| -> u64 {
        data[pos..pos + n]
            .iter()
            .fold(0u64, |acc, &b| (acc << 8) | b as u64)
    };
    while todo > 0 {
        todo -= 1;
        need(pos, 1)?;
        let m = data[pos];
        pos += 1;
        match m {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => {}
            0x80..=0x8f => todo += 2 * (m & 0x0f) as u64,
            0x90..=0x9f => todo += (m & 0x0f) as u64,
            0xa0..=0xbf => {
                let n = (m & 0x1f) as usize;
                need(pos, n)?;
                pos += n;
            }
            0xcc | 0xd0 => {
                need(pos, 1)?;
                pos += 1;
            }
            0xcd | 0xd1 => {
                need(pos, 2)?;
                pos += 2;
            }
            0xce | 0xd2 | 0xca => {
                need(pos, 4)?;
                pos += 4;
            }
            0xcf | 0xd3 | 0xcb => {
                need(pos, 8)?;
                pos += 8;
            }
            0xd9 | 0xc4 | 0xda | 0xc5 | 0xdb | 0xc6 => {
                let w = match m {
                    0xd9 | 0xc4 => 1,
                    0xda | 0xc5 => 2,
                    _ => 4,
                };
                need(pos, w)?;
                let n = be(pos, w) as usize;
                pos += w;
                need(pos, n)?;
                pos += n;
            }
            0xdc..=0xdf => {
                let w = if m == 0xdc || m == 0xde { 2 } else { 4 };
                need(pos, w)?;
                let n = be(pos, w);
                pos += w;
                todo += if m >= 0xde { 2 * n } else { n };
            }
            _ => return Err(Scan::Bad(m)),
        }
    }
    Ok(pos)
}

/// A borg version tuple: `[major, minor, patch, -1]` for releases, `[.., T, n]` for
/// pre-releases (T = -4 alpha, -3 beta, -2 rc). Compares lexicographically.
pub type Version = Vec<i64>;

/// Parses `1.2.4`, `1.1.0b3`, `1.2.0rc1` into a version tuple.
pub fn parse_version(s: &str) -> Version {
    let mut out = Vec::new();
    let mut rest = s;
    for _ in 0..3 {
        let end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        out.push(rest[..end].parse().unwrap_or(0));
        rest = &rest[end..];
        rest = rest.strip_prefix('.').unwrap_or(rest);
    }
    let pre = [("rc", -2), ("a", -4), ("b", -3)];
    match pre.iter().find(|(p, _)| rest.starts_with(p)) {
        Some((p, t)) => {
            out.push(*t);
            out.push(rest[p.len()..].parse().unwrap_or(0));
        }
        None => out.push(-1),
    }
    out
}

/// Formats a version tuple the way borg does (`1.1.0b3`, `1.2.4`).
pub fn format_version(v: &[i64]) -> String {
    let mut s = v
        .iter()
        .take(3)
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(".");
    if v.len() >= 5 {
        let tag = match v[3] {
            -4 => "a",
            -3 => "b",
            -2 => "rc",
            _ => "",
        };
        s.push_str(&format!("{tag}{}", v[4]));
    }
    s
}

pub fn version_value(v: &[i64]) -> Value {
    Value::Array(v.iter().map(|&x| Value::from(x)).collect())
}

pub fn version_from_value(v: &Value) -> Option<Version> {
    v.as_array().ok()?.iter().map(|x| x.as_i64().ok()).collect()
}

/// The version rborg claims on the wire (`rborg::BORG_COMPAT_VERSION`).
pub fn our_version() -> Version {
    parse_version(crate::BORG_COMPAT_VERSION)
}

/// A dict-format request `{i, m, a}`.
pub fn encode_request(msgid: u64, method: &str, args: Vec<(&str, Value)>) -> Vec<u8> {
    ordered_map(vec![
        ("i", Value::from(msgid)),
        ("m", Value::from(method)),
        ("a", ordered_map(args)),
    ])
    .to_bytes()
}

/// A `put` request packed straight into the output buffer (avoids copying the data twice).
pub fn encode_put(msgid: u64, id: &[u8], data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 64);
    msgpack::pack_map_len(&mut out, 3);
    msgpack::pack_raw(&mut out, b"i");
    msgpack::pack_int(&mut out, msgid as i128);
    msgpack::pack_raw(&mut out, b"m");
    msgpack::pack_raw(&mut out, b"put");
    msgpack::pack_raw(&mut out, b"a");
    msgpack::pack_map_len(&mut out, 2);
    msgpack::pack_raw(&mut out, b"id");
    msgpack::pack_raw(&mut out, id);
    msgpack::pack_raw(&mut out, b"data");
    msgpack::pack_raw(&mut out, data);
    out
}

/// A successful dict-format response `{i, r}`.
pub fn encode_result(msgid: &Value, result: Value) -> Vec<u8> {
    Value::Map(vec![
        (Value::from("i"), msgid.clone()),
        (Value::from("r"), result),
    ])
    .to_bytes()
}

/// The exception part of an error response (§10.6).
#[derive(Clone, Debug, PartialEq)]
pub struct RemoteException {
    pub class: String,
    pub args: Vec<Value>,
    pub full: Vec<String>,
    pub short: Vec<String>,
    pub trace: bool,
    pub sysinfo: String,
}

impl RemoteException {
    pub fn encode(&self, msgid: &Value) -> Vec<u8> {
        let strs = |v: &[String]| Value::Array(v.iter().map(|s| Value::from(s.as_str())).collect());
        Value::Map(vec![
            (Value::from("i"), msgid.clone()),
            (
                Value::from("exception_class"),
                Value::from(self.class.as_str()),
            ),
            (
                Value::from("exception_args"),
                Value::Array(self.args.clone()),
            ),
            (Value::from("exception_full"), strs(&self.full)),
            (Value::from("exception_short"), strs(&self.short)),
            (Value::from("exception_trace"), Value::Bool(self.trace)),
            (Value::from("sysinfo"), Value::from(self.sysinfo.as_str())),
        ])
        .to_bytes()
    }

    /// Reads the exception keys of a response map (missing ones as an old server would omit
    /// them).
    pub fn from_response(resp: &Value) -> Option<RemoteException> {
        let class = resp.get("exception_class")?.as_str().ok()?;
        let lines = |k: &str| -> Vec<String> {
            resp.get(k)
                .and_then(|v| v.as_array().ok())
                .map(|a| a.iter().filter_map(|x| x.as_str().ok()).collect())
                .unwrap_or_default()
        };
        Some(RemoteException {
            class,
            args: resp
                .get("exception_args")
                .and_then(|v| v.as_array().ok())
                .map(|a| a.to_vec())
                .unwrap_or_default(),
            full: lines("exception_full"),
            short: lines("exception_short"),
            trace: resp
                .get("exception_trace")
                .and_then(|v| v.as_bool().ok())
                .unwrap_or(true),
            sysinfo: resp
                .get("sysinfo")
                .and_then(|v| v.as_str().ok())
                .unwrap_or_default(),
        })
    }

    /// `exception_args[i]` as text.
    pub fn arg(&self, i: usize) -> Option<String> {
        match self.args.get(i)? {
            Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
            Value::Int(n) => Some(n.to_string()),
            _ => None,
        }
    }

    /// The message borg shows for an unreconstructed remote error (`exception_short` joined).
    pub fn message(&self) -> String {
        if self.short.is_empty() {
            self.class.clone()
        } else {
            self.short.join("\n").trim_end_matches('\n').to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s.replace([' ', '\n'], "")).unwrap()
    }

    #[test]
    fn negotiate_bytes_match_spec() {
        let req = encode_request(
            1,
            "negotiate",
            vec![(
                "client_data",
                ordered_map(vec![(
                    "client_version",
                    version_value(&parse_version("1.2.4")),
                )]),
            )],
        );
        assert_eq!(
            req,
            unhex(
                "83a16901a16da96e65676f7469617465a16181ab636c69656e745f6461746181ae636c69656e\
                 745f76657273696f6e94010204ff"
            )
        );
        let resp = encode_result(
            &Value::from(1u8),
            ordered_map(vec![(
                "server_version",
                version_value(&parse_version("1.2.4")),
            )]),
        );
        assert_eq!(
            resp,
            unhex("82a16901a17281ae7365727665725f76657273696f6e94010204ff")
        );
    }

    #[test]
    fn open_len_get_put_bytes_match_spec() {
        let open = encode_request(
            2,
            "open",
            vec![
                ("path", Value::from("/srv/repo")),
                ("create", false.into()),
                ("lock_wait", 1u8.into()),
                ("lock", true.into()),
                ("exclusive", false.into()),
                ("append_only", false.into()),
                ("make_parent_dirs", false.into()),
            ],
        );
        assert_eq!(
            open,
            unhex(
                "83a16902a16da46f70656ea16187a470617468a92f7372762f7265706fa6637265617465c2a96c6f
                 636b5f7761697401a46c6f636bc3a96578636c7573697665c2ab617070656e645f6f6e6c79c2b06d
                 616b655f706172656e745f64697273c2"
            )
        );
        let id = [0x5au8; 32];
        let mut want = unhex("82 a1 69 02 a1 72 da 00 20");
        want.extend_from_slice(&id);
        assert_eq!(encode_result(&Value::from(2u8), Value::from(&id[..])), want);

        let mut len = unhex("83 a1 69 03 a1 6d a7");
        len.extend_from_slice(b"__len__");
        len.extend_from_slice(&unhex("a1 61 80"));
        assert_eq!(encode_request(3, "__len__", vec![]), len);
        assert_eq!(
            encode_result(&Value::from(3u8), Value::from(7u8)),
            unhex("82 a1 69 03 a1 72 07")
        );

        let key: Vec<u8> = (0u8..32).collect();
        let mut get = unhex("83 a1 69 04 a1 6d a3");
        get.extend_from_slice(b"get");
        get.extend_from_slice(&unhex("a1 61 81 a2"));
        get.extend_from_slice(b"id");
        get.extend_from_slice(&unhex("da 00 20"));
        get.extend_from_slice(&key);
        assert_eq!(
            encode_request(4, "get", vec![("id", Value::from(&key[..]))]),
            get
        );
        let mut getr = unhex("82 a1 69 04 a1 72 ab");
        getr.extend_from_slice(b"hello world");
        assert_eq!(
            encode_result(&Value::from(4u8), Value::from("hello world")),
            getr
        );
        assert_eq!(
            encode_result(&Value::from(5u8), Value::Nil),
            unhex("82 a1 69 05 a1 72 c0")
        );
        // The hand-packed put equals the generic encoding and uses str16 for the id.
        let data = vec![9u8; 40];
        let put = encode_put(6, &key, &data);
        assert_eq!(
            put,
            encode_request(
                6,
                "put",
                vec![
                    ("id", Value::from(&key[..])),
                    ("data", Value::from(&data[..]))
                ]
            )
        );
        assert!(put.windows(3).any(|w| w == [0xda, 0x00, 0x28]));
        assert!(!put.iter().any(|&b| b == 0xd9 || (0xc4..=0xc6).contains(&b)));
    }

    #[test]
    fn stream_decoder_splits_and_waits() {
        let mut stream = Vec::new();
        let big = vec![1u8; 100_000];
        let values = vec![
            encode_result(&Value::from(1u8), Value::Nil),
            encode_put(2, &[3u8; 32], &big),
            encode_result(
                &Value::from(3u8),
                Value::Array(
                    (0..1000u32)
                        .map(|i| Value::from(vec![i as u8; 32]))
                        .collect(),
                ),
            ),
        ];
        for v in &values {
            stream.extend_from_slice(v);
        }
        // Feed byte-wise in odd chunk sizes; every value must come out exactly once.
        let mut d = StreamDecoder::new();
        let mut got = Vec::new();
        for chunk in stream.chunks(777) {
            d.feed(chunk);
            while let Some(v) = d.next_value().unwrap() {
                got.push(v.to_bytes());
            }
        }
        assert_eq!(got, values);
        assert_eq!(d.buffered(), 0);
        let mut d = StreamDecoder::new();
        d.feed(&[0xc1]);
        assert!(d.next_value().is_err());
        // a hostile length is refused up front, not buffered
        let mut d = StreamDecoder::new();
        d.feed(&[0xdb, 0xff, 0xff, 0xff, 0xff, 0]);
        assert_eq!(d.next_value(), Err(StreamError::TooLarge(0xffff_ffff + 5)));
        let mut d = StreamDecoder::with_limit(100);
        d.feed(&[0xdd, 0, 0, 0, 200]);
        d.feed(&[0xc0; 120]);
        assert!(matches!(d.next_value(), Err(StreamError::TooLarge(_))));
    }

    #[test]
    fn versions() {
        assert_eq!(parse_version("1.2.4"), vec![1, 2, 4, -1]);
        assert_eq!(parse_version("1.1.0b3"), vec![1, 1, 0, -3, 3]);
        assert_eq!(parse_version("1.2.0a8"), vec![1, 2, 0, -4, 8]);
        assert_eq!(parse_version("2.0.0rc1"), vec![2, 0, 0, -2, 1]);
        assert!(parse_version("1.1.0b3") < parse_version("1.1.0"));
        assert!(parse_version("1.2.0a4") < parse_version("1.2.4"));
        assert_eq!(format_version(&[1, 1, 0, -3, 3]), "1.1.0b3");
        assert_eq!(format_version(&[1, 4, 1, -1]), "1.4.1");
        assert_eq!(our_version(), vec![1, 4, 1, -1]);
    }

    #[test]
    fn exception_roundtrip() {
        let e = RemoteException {
            class: "ObjectNotFound".into(),
            args: vec![Value::from("00ff"), Value::from("/r")],
            full: vec!["x\n".into()],
            short: vec!["Object with key 00ff not found in repository /r.".into()],
            trace: true,
            sysinfo: "s".into(),
        };
        let bytes = e.encode(&Value::from(9u8));
        let v = msgpack::decode(&bytes).unwrap();
        assert_eq!(v.req("i").unwrap(), &Value::Int(9));
        assert_eq!(RemoteException::from_response(&v).unwrap(), e);
        assert_eq!(e.arg(0).as_deref(), Some("00ff"));
    }
}
