//! Key kinds, key material and the runtime key: id hashing and object envelopes.
//!
//! Envelope layouts (borg 1.x):
//! * unencrypted kinds: `TYPE ‖ payload`
//! * encrypted kinds: `TYPE ‖ MAC(32) ‖ IV(8, big-endian low half of the CTR block) ‖ AES-256-CTR(payload)`
//!   with MAC = HMAC-SHA256(enc_hmac_key, IV ‖ ct) or BLAKE2b-256(enc_hmac_key ‖ IV ‖ ct).
//!
//! `payload` is the compressed chunk including its 2-byte compression header.

use aes::cipher::{KeyInit, StreamCipher};
use aes::Aes256;
use blake2::digest::consts::U32;
use blake2::{Blake2b, Digest};
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

use super::lanes::HmacLanes;
use super::nonce::IvAllocator;
use super::{CryptoError, Result};
use crate::msgpack::{self, sorted_map, Value};
use crate::repo::{ObjectId, Repository};
use rborg_simd::sha256::Lanes;

type Blake2b256 = Blake2b<U32>;
type Aes256Ctr = ctr::Ctr128BE<Aes256>;

/// The encryption modes of `borg init -e`, identified on disk by their type byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyKind {
    Keyfile,
    /// Pre-1.0 "passphrase" mode; only read (as repokey) for migrated repositories.
    Passphrase,
    Plaintext,
    Repokey,
    KeyfileBlake2,
    RepokeyBlake2,
    AuthenticatedBlake2,
    Authenticated,
}

/// Where a kind keeps its key blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyStorage {
    None,
    Keyfile,
    Repo,
}

impl KeyKind {
    pub const ALL: [KeyKind; 7] = [
        KeyKind::Plaintext,
        KeyKind::Authenticated,
        KeyKind::AuthenticatedBlake2,
        KeyKind::Repokey,
        KeyKind::Keyfile,
        KeyKind::RepokeyBlake2,
        KeyKind::KeyfileBlake2,
    ];

    pub fn type_byte(self) -> u8 {
        match self {
            KeyKind::Keyfile => 0x00,
            KeyKind::Passphrase => 0x01,
            KeyKind::Plaintext => 0x02,
            KeyKind::Repokey => 0x03,
            KeyKind::KeyfileBlake2 => 0x04,
            KeyKind::RepokeyBlake2 => 0x05,
            KeyKind::AuthenticatedBlake2 => 0x06,
            KeyKind::Authenticated => 0x07,
        }
    }

    /// The kind a manifest's type byte selects (0x01 is read as repokey).
    pub fn from_type_byte(b: u8) -> Result<KeyKind> {
        Ok(match b {
            0x00 => KeyKind::Keyfile,
            0x01 | 0x03 => KeyKind::Repokey,
            0x02 => KeyKind::Plaintext,
            0x04 => KeyKind::KeyfileBlake2,
            0x05 => KeyKind::RepokeyBlake2,
            0x06 => KeyKind::AuthenticatedBlake2,
            0x07 => KeyKind::Authenticated,
            other => return Err(CryptoError::UnsupportedPayload(other)),
        })
    }

    /// `-e` argument name.
    pub fn arg_name(self) -> &'static str {
        match self {
            KeyKind::Keyfile => "keyfile",
            KeyKind::Passphrase => "passphrase",
            KeyKind::Plaintext => "none",
            KeyKind::Repokey => "repokey",
            KeyKind::KeyfileBlake2 => "keyfile-blake2",
            KeyKind::RepokeyBlake2 => "repokey-blake2",
            KeyKind::AuthenticatedBlake2 => "authenticated-blake2",
            KeyKind::Authenticated => "authenticated",
        }
    }

    pub fn from_arg_name(s: &str) -> Option<KeyKind> {
        KeyKind::ALL.into_iter().find(|k| k.arg_name() == s)
    }

    /// borg's human-readable NAME (used by `info`).
    pub fn name(self) -> &'static str {
        match self {
            KeyKind::Keyfile => "key file",
            KeyKind::Passphrase => "passphrase",
            KeyKind::Plaintext => "plaintext",
            KeyKind::Repokey => "repokey",
            KeyKind::KeyfileBlake2 => "key file BLAKE2b",
            KeyKind::RepokeyBlake2 => "repokey BLAKE2b",
            KeyKind::AuthenticatedBlake2 => "authenticated BLAKE2b",
            KeyKind::Authenticated => "authenticated",
        }
    }

    pub fn storage(self) -> KeyStorage {
        match self {
            KeyKind::Plaintext | KeyKind::Passphrase => KeyStorage::None,
            KeyKind::Keyfile | KeyKind::KeyfileBlake2 => KeyStorage::Keyfile,
            _ => KeyStorage::Repo,
        }
    }

    pub fn encrypts(self) -> bool {
        matches!(
            self,
            KeyKind::Keyfile
                | KeyKind::Passphrase
                | KeyKind::Repokey
                | KeyKind::KeyfileBlake2
                | KeyKind::RepokeyBlake2
        )
    }

    pub fn blake2(self) -> bool {
        matches!(
            self,
            KeyKind::KeyfileBlake2 | KeyKind::RepokeyBlake2 | KeyKind::AuthenticatedBlake2
        )
    }

    /// Whether type byte `b` is acceptable for an envelope read with this key.
    fn accepts(self, b: u8) -> bool {
        b == self.type_byte() || (self == KeyKind::Repokey && b == KeyKind::Passphrase.type_byte())
    }
}

/// The secret inside a key blob.
#[derive(Clone)]
pub struct KeyMaterial {
    pub repository_id: [u8; 32],
    pub enc_key: [u8; 32],
    /// 32 bytes (HMAC kinds) or 128 bytes = 64 random ‖ 64 zero (BLAKE2 kinds).
    pub enc_hmac_key: Vec<u8>,
    pub id_key: Vec<u8>,
    pub chunk_seed: i32,
    pub tam_required: bool,
}

impl Drop for KeyMaterial {
    fn drop(&mut self) {
        self.enc_key.zeroize();
        self.enc_hmac_key.zeroize();
        self.id_key.zeroize();
    }
}

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "KeyMaterial(repository {})",
            hex::encode(self.repository_id)
        )
    }
}

fn blake2_key() -> Vec<u8> {
    let mut k = super::random_bytes::<64>().to_vec();
    k.extend_from_slice(&[0u8; 64]);
    k
}

impl KeyMaterial {
    /// Fresh random key material as borg generates it for `kind`.
    pub fn generate(kind: KeyKind, repository_id: [u8; 32]) -> KeyMaterial {
        let r: [u8; 100] = super::random_bytes();
        let seed = u32::from_be_bytes(r[96..100].try_into().expect("4")) as i32;
        let mut m = KeyMaterial {
            repository_id,
            enc_key: r[0..32].try_into().expect("32"),
            enc_hmac_key: r[32..64].to_vec(),
            id_key: r[64..96].to_vec(),
            chunk_seed: seed,
            tam_required: true,
        };
        if kind.blake2() {
            m.enc_hmac_key = blake2_key();
            m.id_key = blake2_key();
        }
        m
    }

    /// msgpack of the inner key map (sorted keys).
    pub fn pack(&self) -> Vec<u8> {
        sorted_map(vec![
            ("version", Value::Int(1)),
            ("repository_id", Value::from(&self.repository_id[..])),
            ("enc_key", Value::from(&self.enc_key[..])),
            ("enc_hmac_key", Value::from(self.enc_hmac_key.clone())),
            ("id_key", Value::from(self.id_key.clone())),
            ("chunk_seed", Value::from(self.chunk_seed)),
            ("tam_required", Value::Bool(self.tam_required)),
        ])
        .to_bytes()
    }

    pub fn unpack(data: &[u8]) -> Result<KeyMaterial> {
        let bad = |m: &str| CryptoError::Other(format!("invalid key data: {m}"));
        let v = msgpack::decode(data).map_err(|e| bad(&e.to_string()))?;
        let version = v
            .req("version")
            .and_then(|x| x.as_int())
            .map_err(|e| bad(&e.to_string()))?;
        if version != 1 {
            return Err(CryptoError::Other(format!(
                "key version {version} is not supported by this borg version."
            )));
        }
        let bytes = |k: &str| -> Result<Vec<u8>> {
            Ok(v.req(k)
                .and_then(|x| x.as_bytes())
                .map_err(|e| bad(&e.to_string()))?
                .to_vec())
        };
        let arr32 = |k: &str| -> Result<[u8; 32]> {
            bytes(k)?
                .try_into()
                .map_err(|_| bad(&format!("{k} length")))
        };
        let seed = v
            .req("chunk_seed")
            .and_then(|x| x.as_int())
            .map_err(|e| bad(&e.to_string()))?;
        Ok(KeyMaterial {
            repository_id: arr32("repository_id")?,
            enc_key: arr32("enc_key")?,
            enc_hmac_key: bytes("enc_hmac_key")?,
            id_key: bytes("id_key")?,
            chunk_seed: i32::try_from(seed).map_err(|_| bad("chunk_seed"))?,
            tam_required: v
                .get("tam_required")
                .and_then(|x| x.as_bool().ok())
                .unwrap_or(true),
        })
    }
}

/// CTR mode over an already expanded AES key (no key schedule per object).
fn ctr_with(cipher: &Aes256, block: &[u8; 16]) -> Aes256Ctr {
    use ctr::cipher::{InnerIvInit, StreamCipherCoreWrapper};
    let core =
        ctr::CtrCore::<Aes256, ctr::flavors::Ctr128BE>::inner_iv_init(cipher.clone(), block.into());
    StreamCipherCoreWrapper::from_core(core)
}

/// AES-256-CTR with borg's big-endian 128-bit counter: the VAES kernel where the CPU has it
/// (four blocks per instruction), the `aes`/`ctr` crates elsewhere; the same keystream.
struct Cipher {
    aes: Aes256,
    vaes: Option<rborg_simd::aes_ctr::Aes256Ctr>,
}

impl Cipher {
    fn new(key: &[u8; 32]) -> Cipher {
        Cipher {
            aes: Aes256::new(key.into()),
            vaes: rborg_simd::aes_ctr::Aes256Ctr::new(key),
        }
    }

    /// XORs the keystream starting at counter `block` into `data`.
    fn apply(&self, block: &[u8; 16], data: &mut [u8]) {
        match &self.vaes {
            Some(v) => v.apply_keystream(u128::from_be_bytes(*block), data),
            None => ctr_with(&self.aes, block).apply_keystream(data),
        }
    }
}

/// SHA-256 based hashes (plain for unencrypted ids, HMAC otherwise) as [`HmacLanes`]: one
/// message at a time or many in two lanes.
enum IdFn {
    Lanes(HmacLanes),
    Blake2(Blake2b256),
}

enum Mac32 {
    Hmac(HmacLanes),
    Blake2(Blake2b256),
}

/// A loaded key: id function, envelope sealing/opening, TAM key material.
pub struct Key {
    pub kind: KeyKind,
    /// `None` for plaintext.
    pub material: Option<KeyMaterial>,
    id_fn: IdFn,
    mac: Option<Mac32>,
    cipher: Option<Cipher>,
    pub ivs: IvAllocator,
    /// Where the blob lives (key file path or repository location), for messages.
    pub target: Option<String>,
    /// Whether the manifest must carry a TAM.
    pub tam_required: bool,
}

/// What a payload decoder made of a payload ([`Key::open_verify_many`]).
pub enum Decoded {
    /// The plaintext, in a buffer of its own (decompressed).
    Owned(Vec<u8>),
    /// The plaintext is the payload itself from this byte on (stored uncompressed): it is
    /// used where it lies, in the envelope's buffer, without a copy.
    InPayload(usize),
}

/// An opened object's plaintext: a buffer of its own or the tail of its envelope's buffer.
#[derive(Debug)]
pub struct Plaintext {
    buf: Vec<u8>,
    start: usize,
}

impl Plaintext {
    /// The plaintext as a vector of its own (moves the bytes down if they are a tail).
    pub fn into_vec(mut self) -> Vec<u8> {
        self.buf.drain(..self.start);
        self.buf
    }
}

impl std::ops::Deref for Plaintext {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

impl Key {
    pub fn new(kind: KeyKind, material: Option<KeyMaterial>) -> Key {
        let (id_fn, mac, cipher) = match &material {
            None => (IdFn::Lanes(HmacLanes::sha256()), None, None),
            Some(m) => {
                let id_fn = if kind.blake2() {
                    let mut h = Blake2b256::new();
                    Digest::update(&mut h, &m.id_key);
                    IdFn::Blake2(h)
                } else {
                    IdFn::Lanes(HmacLanes::hmac(&m.id_key))
                };
                let (mac, cipher) = if kind.encrypts() {
                    let mac = if kind.blake2() {
                        let mut h = Blake2b256::new();
                        Digest::update(&mut h, &m.enc_hmac_key);
                        Mac32::Blake2(h)
                    } else {
                        Mac32::Hmac(HmacLanes::hmac(&m.enc_hmac_key))
                    };
                    (Some(mac), Some(Cipher::new(&m.enc_key)))
                } else {
                    (None, None)
                };
                (id_fn, mac, cipher)
            }
        };
        let tam_required = material.as_ref().is_some_and(|m| m.tam_required);
        Key {
            kind,
            id_fn,
            mac,
            cipher,
            ivs: IvAllocator::new(material.as_ref().map(|m| m.repository_id)),
            material,
            target: None,
            tam_required,
        }
    }

    pub fn plaintext() -> Key {
        Key::new(KeyKind::Plaintext, None)
    }

    pub fn chunk_seed(&self) -> i32 {
        self.material.as_ref().map_or(0, |m| m.chunk_seed)
    }

    /// The chunk id of plaintext `data`.
    pub fn id_hash(&self, data: &[u8]) -> ObjectId {
        let out: [u8; 32] = match &self.id_fn {
            IdFn::Lanes(l) => l.hash(data),
            IdFn::Blake2(h) => {
                let mut h = h.clone();
                Digest::update(&mut h, data);
                h.finalize().into()
            }
        };
        ObjectId(out)
    }

    /// Verifies that `data` hashes to `id` (constant time).
    pub fn assert_id(&self, id: &ObjectId, data: &[u8]) -> Result<()> {
        Self::id_matches(id, &self.id_hash(data))
    }

    /// Compares a computed id with the expected one (constant time).
    pub fn id_matches(id: &ObjectId, got: &ObjectId) -> Result<()> {
        if bool::from(got.0.ct_eq(&id.0)) {
            Ok(())
        } else {
            Err(CryptoError::Integrity(format!(
                "Chunk {}: id verification failed",
                id.hex()
            )))
        }
    }

    /// The envelope MAC over `IV ‖ ciphertext` (everything after the MAC field).
    fn mac32(&self, iv_ct: &[u8]) -> [u8; 32] {
        match self.mac.as_ref().expect("encrypting key") {
            Mac32::Hmac(l) => l.hash(iv_ct),
            Mac32::Blake2(h) => {
                let mut h = h.clone();
                Digest::update(&mut h, iv_ct);
                h.finalize().into()
            }
        }
    }

    /// Seals a payload with an explicit IV (counter in 16-byte blocks).
    pub fn seal_with_iv(&self, iv: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.envelope_header_len() + payload.len());
        out.resize(self.envelope_header_len(), 0);
        out.extend_from_slice(payload);
        self.seal_buf(iv, &mut out);
        out
    }

    /// Turns `[header room | payload]` into the envelope, in place.
    fn seal_buf(&self, iv: u64, buf: &mut [u8]) {
        buf[0] = self.kind.type_byte();
        let Some(cipher) = &self.cipher else {
            return;
        };
        buf[1..33].fill(0);
        buf[33..41].copy_from_slice(&iv.to_be_bytes());
        let mut block = [0u8; 16];
        block[8..].copy_from_slice(&iv.to_be_bytes());
        cipher.apply(&block, &mut buf[41..]);
        let mac = self.mac32(&buf[33..]);
        buf[1..33].copy_from_slice(&mac);
    }

    /// Bytes in front of the payload in an envelope (type byte, MAC and IV when encrypting).
    pub fn envelope_header_len(&self) -> usize {
        if self.cipher.is_some() {
            41
        } else {
            1
        }
    }

    /// Seals in place: `buf` holds [`Self::envelope_header_len`] bytes of room followed by the
    /// payload, and becomes the envelope (no copy of the payload; it stays hot in cache
    /// between compression and encryption).
    pub fn seal_in_place(&self, repo: &dyn Repository, buf: &mut [u8]) -> Result<()> {
        let iv = if self.cipher.is_some() {
            let blocks = ((buf.len() - 41) as u64).div_ceil(16);
            self.ivs.alloc(repo, blocks)?
        } else {
            0
        };
        self.seal_buf(iv, buf);
        Ok(())
    }

    /// Seals a payload, allocating a fresh IV (reserving nonce space in the repository and the
    /// security dir as needed).
    pub fn seal(&self, repo: &dyn Repository, payload: &[u8]) -> Result<Vec<u8>> {
        if self.cipher.is_none() {
            return Ok(self.seal_with_iv(0, payload));
        }
        let blocks = (payload.len() as u64).div_ceil(16);
        let iv = self.ivs.alloc(repo, blocks)?;
        Ok(self.seal_with_iv(iv, payload))
    }

    /// Opens an envelope: checks type byte and MAC, decrypts; returns the payload (still
    /// compressed). `id` is only used in messages.
    pub fn open(&self, id: Option<&ObjectId>, envelope: &[u8]) -> Result<Vec<u8>> {
        let ctr_block = self.check_envelope(id, envelope)?;
        let mut out = envelope[Self::payload_start(ctr_block.is_some())..].to_vec();
        if let (Some(cipher), Some(block)) = (&self.cipher, ctr_block) {
            cipher.apply(&block, &mut out);
        }
        Ok(out)
    }

    /// Like [`Key::open`], decrypting inside the envelope's own buffer (no copy); returns the
    /// payload as a slice of it.
    pub fn open_in_place<'e>(
        &self,
        id: Option<&ObjectId>,
        envelope: &'e mut [u8],
    ) -> Result<&'e [u8]> {
        let ctr_block = self.check_envelope(id, envelope)?;
        let out = &mut envelope[Self::payload_start(ctr_block.is_some())..];
        if let (Some(cipher), Some(block)) = (&self.cipher, ctr_block) {
            cipher.apply(&block, out);
        }
        Ok(out)
    }

    /// Opens many envelopes and verifies their ids: MAC, decryption in place, `decode` (the
    /// caller's decompression of the `i`-th object's payload), id check; `done(i, result)`
    /// gets each object as soon as it is finished (not in input order). Every SHA-256 based
    /// hash (envelope MAC, chunk id) runs in two-message lanes: one object's id hash runs
    /// beside the next object's MAC. Objects are taken from `objs` only when a lane is free,
    /// so a long source holds just a few in memory.
    pub fn open_verify_many<E: From<CryptoError>>(
        &self,
        objs: impl IntoIterator<Item = (ObjectId, Vec<u8>)>,
        mut decode: impl FnMut(usize, &ObjectId, &[u8]) -> std::result::Result<Decoded, E>,
        mut done: impl FnMut(usize, std::result::Result<Plaintext, E>),
    ) {
        let mac_lanes = match &self.mac {
            Some(Mac32::Hmac(l)) => Some(l),
            _ => None,
        };
        let id_lanes = match &self.id_fn {
            IdFn::Lanes(l) => Some(l),
            IdFn::Blake2(_) => None,
        };
        let mut ids = Vec::new();
        // where each object's plaintext starts in the buffer its id hash runs over
        let mut plain_starts = Vec::new();
        // (tag, buffer, offset): tag 2i hashes object i's envelope, 2i+1 its plaintext
        let mut ready = std::collections::VecDeque::new();
        // what follows a verified MAC: decrypt, decode, then the id hash (lane or direct)
        let mut opened = |i: usize,
                          id: &ObjectId,
                          mut env: Vec<u8>,
                          plain_starts: &mut Vec<usize>,
                          ready: &mut std::collections::VecDeque<(usize, Vec<u8>, usize)>|
         -> Option<std::result::Result<Plaintext, E>> {
            let start = Self::payload_start(self.cipher.is_some());
            if let Some(cipher) = &self.cipher {
                let block = Self::ctr_block(&env);
                cipher.apply(&block, &mut env[start..]);
            }
            let plain = match decode(i, id, &env[start..]) {
                Ok(Decoded::Owned(p)) => Plaintext { buf: p, start: 0 },
                Ok(Decoded::InPayload(at)) => Plaintext {
                    buf: env,
                    start: start + at,
                },
                Err(e) => return Some(Err(e)),
            };
            if id_lanes.is_some() {
                plain_starts[i] = plain.start;
                ready.push_front((2 * i + 1, plain.buf, plain.start));
                None
            } else {
                Some(self.assert_id(id, &plain).map(|()| plain).map_err(E::from))
            }
        };
        let mut source = objs.into_iter().enumerate();
        let mut lanes: Lanes<Vec<u8>> = Lanes::default();
        let hash_of = |tag: usize| {
            if tag.is_multiple_of(2) {
                mac_lanes.expect("MAC lanes")
            } else {
                id_lanes.expect("id lanes")
            }
        };
        loop {
            while lanes.has_idle_lane() {
                if let Some((tag, buf, from)) = ready.pop_front() {
                    lanes.start(tag, hash_of(tag).start(), buf, from);
                    continue;
                }
                // take the next object: into a lane, or handled right here
                let Some((i, (id, env))) = source.next() else {
                    break;
                };
                ids.push(id);
                plain_starts.push(0);
                if let Err(e) = self.check_header(Some(&id), &env) {
                    done(i, Err(e.into()));
                } else if mac_lanes.is_some() {
                    ready.push_back((2 * i, env, 33));
                } else if self.cipher.is_some() && self.check_envelope(Some(&id), &env).is_err() {
                    done(i, Err(Self::mac_failed(Some(&id)).into()));
                } else if let Some(r) = opened(i, &id, env, &mut plain_starts, &mut ready) {
                    done(i, r);
                }
            }
            let Some(hashed) = lanes.run() else {
                break;
            };
            let i = hashed.tag / 2;
            let got = hash_of(hashed.tag).finish(hashed.digest);
            if hashed.tag % 2 == 0 {
                let env = hashed.buf;
                if !bool::from(got.ct_eq(&env[1..33])) {
                    done(i, Err(Self::mac_failed(Some(&ids[i])).into()));
                } else if let Some(r) = opened(i, &ids[i], env, &mut plain_starts, &mut ready) {
                    done(i, r);
                }
            } else {
                let r = Self::id_matches(&ids[i], &ObjectId(got)).map(|()| Plaintext {
                    buf: hashed.buf,
                    start: plain_starts[i],
                });
                done(i, r.map_err(E::from));
            }
        }
    }

    /// Where the payload starts: after the type byte, or after type, MAC and IV.
    fn payload_start(encrypted: bool) -> usize {
        if encrypted {
            41
        } else {
            1
        }
    }

    /// Checks an envelope's type byte and (when encrypting) its length and MAC; returns the
    /// CTR starting block for an encrypted one.
    fn check_envelope(&self, id: Option<&ObjectId>, envelope: &[u8]) -> Result<Option<[u8; 16]>> {
        self.check_header(id, envelope)?;
        if self.cipher.is_none() {
            return Ok(None);
        }
        let mac = self.mac32(&envelope[33..]);
        if !bool::from(mac.ct_eq(&envelope[1..33])) {
            return Err(Self::mac_failed(id));
        }
        Ok(Some(Self::ctr_block(envelope)))
    }

    fn mac_failed(id: Option<&ObjectId>) -> CryptoError {
        CryptoError::Integrity(format!(
            "Chunk {}: Could not decrypt [MAC Authentication failed]",
            id.map_or("(unknown)".to_string(), |i| i.hex())
        ))
    }

    /// The first CTR block of an encrypted envelope (its IV in the low half).
    fn ctr_block(envelope: &[u8]) -> [u8; 16] {
        let mut block = [0u8; 16];
        block[8..].copy_from_slice(&envelope[33..41]);
        block
    }

    /// Checks an envelope's type byte and, when encrypting, that it is long enough.
    fn check_header(&self, id: Option<&ObjectId>, envelope: &[u8]) -> Result<()> {
        let id_str = || id.map_or("(unknown)".to_string(), |i| i.hex());
        let Some(&tb) = envelope.first() else {
            return Err(CryptoError::Integrity(format!(
                "Chunk {}: Invalid encryption envelope",
                id_str()
            )));
        };
        if !self.kind.accepts(tb) {
            let what = if self.kind.encrypts() {
                "Invalid encryption envelope"
            } else {
                "Invalid envelope"
            };
            return Err(CryptoError::Integrity(format!(
                "Chunk {}: {what}",
                id_str()
            )));
        }
        if self.cipher.is_some() && envelope.len() < 41 {
            return Err(CryptoError::Integrity(format!(
                "Chunk {}: Could not decrypt [envelope too short]",
                id_str()
            )));
        }
        Ok(())
    }

    /// The IV stored in an encrypted envelope.
    pub fn extract_iv(envelope: &[u8]) -> Option<u64> {
        Some(u64::from_be_bytes(envelope.get(33..41)?.try_into().ok()?))
    }

    /// Starts the IV counter after the manifest's (borg: manifest IV + its length in blocks).
    pub fn init_ivs_from_manifest(&self, manifest_envelope: Option<&[u8]>) -> Result<()> {
        let start = match manifest_envelope {
            None => 0,
            Some(m) => {
                if !self.kind.accepts(m[0]) {
                    return Err(CryptoError::Integrity(
                        "Manifest: Invalid encryption envelope".into(),
                    ));
                }
                if !self.kind.encrypts() {
                    return Ok(());
                }
                Self::extract_iv(m).unwrap_or(0) + (m.len() as u64).div_ceil(16)
            }
        };
        self.ivs.set_start(start);
        Ok(())
    }

    /// Key material for TAM: `id_key ‖ enc_key ‖ enc_hmac_key` (empty for plaintext).
    pub fn tam_ikm(&self) -> Option<Vec<u8>> {
        self.material.as_ref().map(|m| {
            let mut v = m.id_key.clone();
            v.extend_from_slice(&m.enc_key);
            v.extend_from_slice(&m.enc_hmac_key);
            v
        })
    }

    /// Everything a repokey/keyfile blob needs.
    pub fn material(&self) -> Result<&KeyMaterial> {
        self.material.as_ref().ok_or(CryptoError::UnencryptedRepo)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value as J;

    fn vectors(name: &str) -> J {
        let p = format!("{}/tests/data/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    }
    fn h(v: &J) -> Vec<u8> {
        hex::decode(v.as_str().unwrap()).unwrap()
    }
    fn sha256ctr(tag: &[u8], n: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut i = 0u64;
        while out.len() < n {
            let mut hh = sha2::Sha256::new();
            Digest::update(&mut hh, tag);
            Digest::update(&mut hh, i.to_be_bytes());
            out.extend_from_slice(&hh.finalize());
            i += 1;
        }
        out.truncate(n);
        out
    }

    fn material(enc: &[u8], hmac: &[u8], id: &[u8]) -> KeyMaterial {
        KeyMaterial {
            repository_id: [0; 32],
            enc_key: enc.try_into().unwrap(),
            enc_hmac_key: hmac.to_vec(),
            id_key: id.to_vec(),
            chunk_seed: 0,
            tam_required: true,
        }
    }

    #[test]
    fn id_vectors() {
        let v = vectors("ids.json");
        let hk = h(&v["id_key_hmac"]);
        let bk = h(&v["id_key_blake2"]);
        for case in v["vectors"].as_array().unwrap() {
            let data = match case["data_gen"].as_str() {
                Some(g) => {
                    assert!(g.starts_with("sha256ctr(\"rborg-id\""));
                    sha256ctr(b"rborg-id", case["data_len"].as_u64().unwrap() as usize)
                }
                None => h(&case["data_hex"]),
            };
            assert_eq!(
                Key::plaintext().id_hash(&data).0.to_vec(),
                h(&case["id_none_sha256"])
            );
            let k = Key::new(KeyKind::Repokey, Some(material(&[0; 32], &[0; 32], &hk)));
            assert_eq!(k.id_hash(&data).0.to_vec(), h(&case["id_hmac_sha256"]));
            let k = Key::new(KeyKind::RepokeyBlake2, Some(material(&[0; 32], &bk, &bk)));
            assert_eq!(k.id_hash(&data).0.to_vec(), h(&case["id_blake2b_256"]));
            assert_ne!(
                k.id_hash(&data).0.to_vec(),
                h(&case["NOT_the_id__standard_keyed_blake2b_with_first_64_key_bytes"])
            );
        }
    }

    #[test]
    fn envelope_vectors() {
        let v = vectors("envelope.json");
        let mut checked = 0;
        for vec in v["vectors"].as_array().unwrap() {
            let mode = vec["mode"].as_str().unwrap();
            let kind = KeyKind::from_arg_name(mode).unwrap_or_else(|| panic!("{mode}"));
            assert_eq!(kind.type_byte() as u64, vec["type_byte"].as_u64().unwrap());
            let getk = |k: &str| {
                vec.get(k)
                    .filter(|x| x.is_string())
                    .map(h)
                    .unwrap_or_else(|| vec![0; 32])
            };
            let m = material(&getk("enc_key"), &getk("enc_hmac_key"), &getk("id_key"));
            let key = if kind == KeyKind::Plaintext {
                Key::plaintext()
            } else {
                Key::new(kind, Some(m))
            };
            for s in vec["sequence"].as_array().unwrap() {
                let plain = h(&s["plaintext_hex"]);
                let env = h(&s["envelope_hex"]);
                let payload = s
                    .get("compressed_payload_hex")
                    .map(h)
                    .unwrap_or_else(|| env[1..].to_vec());
                let id = ObjectId::from_slice(&h(&s["id"])).unwrap();
                assert_eq!(key.id_hash(&plain), id, "{mode}");
                let iv = s.get("iv").and_then(|x| x.as_u64()).unwrap_or(0);
                assert_eq!(key.seal_with_iv(iv, &payload), env, "{mode}");
                assert_eq!(key.open(Some(&id), &env).unwrap(), payload);
                if let Some(next) = s.get("next_iv").and_then(|x| x.as_u64()) {
                    assert_eq!(iv + (payload.len() as u64).div_ceil(16), next);
                }
                if kind.encrypts() {
                    let mut bad = env.clone();
                    let last = bad.len() - 1;
                    bad[last] ^= 1;
                    assert!(key
                        .open(Some(&id), &bad)
                        .unwrap_err()
                        .to_string()
                        .contains("MAC Authentication failed"));
                }
                checked += 1;
            }
        }
        assert!(checked >= 7, "{checked}");
    }

    #[test]
    fn key_material_roundtrip_matches_vector() {
        let v = vectors("keyblob.json");
        let f = &v["inner_fields"];
        let m = KeyMaterial {
            repository_id: h(&f["repository_id"]).try_into().unwrap(),
            enc_key: h(&f["enc_key"]).try_into().unwrap(),
            enc_hmac_key: h(&f["enc_hmac_key"]),
            id_key: h(&f["id_key"]),
            chunk_seed: f["chunk_seed"].as_i64().unwrap() as i32,
            tam_required: true,
        };
        assert_eq!(m.pack(), h(&v["inner_packed_hex"]));
        let back = KeyMaterial::unpack(&m.pack()).unwrap();
        assert_eq!(back.chunk_seed, -1622337299);
    }

    /// Batched opening gives every object its own verdict: good ones their data, a flipped
    /// byte a MAC failure (or, without encryption, an id failure), a wrong id an id failure.
    #[test]
    fn open_verify_many_reports_each_object() {
        for kind in KeyKind::ALL {
            let material =
                (kind != KeyKind::Plaintext).then(|| KeyMaterial::generate(kind, [1; 32]));
            let key = Key::new(kind, material);
            let datas: Vec<Vec<u8>> = (0..7).map(|k| vec![k as u8; 100_000 * k + 3]).collect();
            let objs: Vec<(ObjectId, Vec<u8>)> = datas
                .iter()
                .enumerate()
                .map(|(k, d)| {
                    let mut env = key.seal_with_iv(k as u64 * 100_000, d);
                    let mut id = key.id_hash(d);
                    match k {
                        2 => *env.last_mut().unwrap() ^= 1,
                        4 => id = key.id_hash(b"something else"),
                        _ => {}
                    }
                    (id, env)
                })
                .collect();
            let mut got: Vec<Option<Result<Plaintext>>> = (0..7).map(|_| None).collect();
            // even objects (the damaged ones among them) are used in place, odd ones are
            // decoded into buffers of their own
            key.open_verify_many(
                objs,
                |i, _, p| {
                    Ok::<_, CryptoError>(if i % 2 == 0 {
                        Decoded::InPayload(0)
                    } else {
                        Decoded::Owned(p.to_vec())
                    })
                },
                |i, r| got[i] = Some(r),
            );
            for (k, r) in got.into_iter().enumerate() {
                let r = r.expect("a verdict for every object");
                let want = match k {
                    2 if kind.encrypts() => Some("MAC Authentication failed"),
                    2 | 4 => Some("id verification failed"),
                    _ => None,
                };
                match (want, r) {
                    (None, Ok(d)) => {
                        assert!(*d == datas[k], "{kind:?} object {k}");
                        assert!(d.into_vec() == datas[k], "{kind:?} object {k}");
                    }
                    (Some(w), Err(e)) => assert!(e.to_string().contains(w), "{kind:?} {k}: {e}"),
                    (w, r) => panic!(
                        "{kind:?} object {k}: wanted {w:?}, got {:?}",
                        r.map(|d| d.len())
                    ),
                }
            }
        }
    }

    #[test]
    fn wrong_type_byte_is_refused() {
        let k = Key::new(
            KeyKind::Repokey,
            Some(KeyMaterial::generate(KeyKind::Repokey, [1; 32])),
        );
        let env = k.seal_with_iv(0, b"\x00\x00abc");
        let mut other = env.clone();
        other[0] = KeyKind::Keyfile.type_byte();
        assert!(k.open(None, &other).is_err());
        other[0] = 0x01; // legacy passphrase objects are read by repokey
        assert!(k.open(None, &other).is_ok());
        assert!(Key::plaintext().open(None, &env).is_err());
        assert!(k.open(None, &[]).is_err());
    }

    #[test]
    fn generated_blake2_keys_have_zero_tail() {
        let m = KeyMaterial::generate(KeyKind::KeyfileBlake2, [0; 32]);
        assert_eq!(m.id_key.len(), 128);
        assert!(m.id_key[64..].iter().all(|b| *b == 0));
        assert_eq!(
            KeyMaterial::generate(KeyKind::Repokey, [0; 32])
                .id_key
                .len(),
            32
        );
    }
}
