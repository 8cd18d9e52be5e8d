//! SHA-256 of many messages at once, two at a time per core.
//!
//! One SHA-256 stream is a chain of dependent round instructions: with the x86 SHA extensions
//! a core finishes a round pair long before the next one may start. Two independent messages
//! interleaved fill those gaps, so hashing two messages together costs little more than one.
//! [`Lanes`] hashes two messages side by side and takes a new one whenever one finishes;
//! [`finish_many`] drives it over a list. Every message starts from a [`Midstate`] — for HMAC
//! the state after the padded key block, so only the message is hashed per call.
//!
//! Single-stream work (one lane left, or no SHA extensions) goes to the `sha2` crate's block
//! function, which has its own SHA-NI / ARMv8 paths; the two-lane kernel here is the only new
//! arithmetic, and the tests compare everything against `sha2`'s digests.

use std::sync::OnceLock;

use sha2::digest::generic_array::GenericArray;

/// How two lanes are hashed.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Sha256Impl {
    /// One message after the other through `sha2`'s block function.
    Sequential,
    /// x86_64 SHA extensions, two messages interleaved.
    ShaNiX2,
}

impl Sha256Impl {
    pub fn is_available(self) -> bool {
        match self {
            Sha256Impl::Sequential => true,
            Sha256Impl::ShaNiX2 => has_sha_ni(),
        }
    }

    /// The two-lane kernel where the CPU has it, unless `RBORG_SIMD` asks for the plain
    /// scalar paths (`reference` or `scalar`).
    pub fn auto() -> Sha256Impl {
        static AUTO: OnceLock<Sha256Impl> = OnceLock::new();
        *AUTO.get_or_init(|| {
            let plain = matches!(
                crate::Backend::from_env(),
                Some(crate::Backend::Reference | crate::Backend::Scalar)
            );
            if !plain && has_sha_ni() {
                Sha256Impl::ShaNiX2
            } else {
                Sha256Impl::Sequential
            }
        })
    }
}

#[cfg(target_arch = "x86_64")]
fn has_sha_ni() -> bool {
    std::is_x86_feature_detected!("sha")
        && std::is_x86_feature_detected!("sse4.1")
        && std::is_x86_feature_detected!("ssse3")
}
#[cfg(not(target_arch = "x86_64"))]
fn has_sha_ni() -> bool {
    false
}

const IV: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// A SHA-256 state after a whole number of 64-byte blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Midstate {
    h: [u32; 8],
    /// Bytes absorbed so far (a multiple of 64).
    len: u64,
}

impl Default for Midstate {
    fn default() -> Self {
        Midstate { h: IV, len: 0 }
    }
}

impl Midstate {
    /// Absorbs whole blocks. Panics unless `blocks.len()` is a multiple of 64.
    pub fn absorb(&mut self, blocks: &[u8]) {
        assert!(
            blocks.len().is_multiple_of(64),
            "absorb takes whole 64-byte blocks"
        );
        compress(&mut self.h, blocks);
        self.len += blocks.len() as u64;
    }
}

/// `sha2`'s block function over `blocks` (a multiple of 64 bytes).
fn compress(h: &mut [u32; 8], blocks: &[u8]) {
    debug_assert!(blocks.len().is_multiple_of(64));
    let (arrays, rest) = blocks.as_chunks::<64>();
    debug_assert!(rest.is_empty());
    // SAFETY: GenericArray<u8, U64> is #[repr(transparent)] over [u8; 64].
    let arrays: &[GenericArray<u8, sha2::digest::consts::U64>] =
        unsafe { std::slice::from_raw_parts(arrays.as_ptr().cast(), arrays.len()) };
    sha2::compress256(h, arrays);
}

/// Two lanes of equal length (a multiple of 64 bytes each).
fn compress_x2(imp: Sha256Impl, ha: &mut [u32; 8], a: &[u8], hb: &mut [u32; 8], b: &[u8]) {
    assert_eq!(a.len(), b.len());
    match imp {
        #[cfg(target_arch = "x86_64")]
        Sha256Impl::ShaNiX2 => {
            assert!(has_sha_ni(), "SHA extensions are not available on this CPU");
            // SAFETY: features checked above; lengths equal and whole blocks.
            unsafe { x86::compress_x2(ha, a, hb, b, a.len() / 64) }
        }
        _ => {
            compress(ha, a);
            compress(hb, b);
        }
    }
}

/// One message in a lane: its whole blocks straight from the caller's buffer, then one or
/// two padded blocks of its own.
struct Lane<B> {
    tag: usize,
    buf: B,
    pos: usize,
    body_end: usize,
    tail: [u8; 128],
    tail_len: usize,
    tail_pos: usize,
    h: [u32; 8],
}

impl<B: AsRef<[u8]>> Lane<B> {
    fn new(tag: usize, start: &Midstate, buf: B, from: usize) -> Lane<B> {
        let msg = &buf.as_ref()[from..];
        let body_len = msg.len() / 64 * 64;
        let rest = &msg[body_len..];
        let mut tail = [0u8; 128];
        tail[..rest.len()].copy_from_slice(rest);
        tail[rest.len()] = 0x80;
        let tail_len = if rest.len() + 9 <= 64 { 64 } else { 128 };
        let bits = (start.len + msg.len() as u64).wrapping_mul(8);
        tail[tail_len - 8..tail_len].copy_from_slice(&bits.to_be_bytes());
        Lane {
            tag,
            buf,
            pos: from,
            body_end: from + body_len,
            tail,
            tail_len,
            tail_pos: 0,
            h: start.h,
        }
    }

    /// The blocks still to hash in the current phase, and the state they go into.
    fn pending(&mut self) -> (&mut [u32; 8], &[u8]) {
        if self.pos < self.body_end {
            (&mut self.h, &self.buf.as_ref()[self.pos..self.body_end])
        } else {
            (&mut self.h, &self.tail[self.tail_pos..self.tail_len])
        }
    }

    fn advance(&mut self, bytes: usize) {
        if self.pos < self.body_end {
            self.pos += bytes;
        } else {
            self.tail_pos += bytes;
        }
    }

    fn is_done(&self) -> bool {
        self.pos == self.body_end && self.tail_pos == self.tail_len
    }

    fn finish(self) -> Done<B> {
        Done {
            tag: self.tag,
            digest: digest_of(&self.h),
            buf: self.buf,
        }
    }
}

fn digest_of(h: &[u32; 8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (o, w) in out.chunks_exact_mut(4).zip(h) {
        o.copy_from_slice(&w.to_be_bytes());
    }
    out
}

impl Midstate {
    /// `SHA-256(prefix ‖ msg)` of one message, where `prefix` is what this state absorbed.
    pub fn finish(&self, msg: &[u8]) -> [u8; 32] {
        let mut lane = Lane::new(0, self, msg, 0);
        while !lane.is_done() {
            let (h, d) = lane.pending();
            let n = d.len();
            compress(h, d);
            lane.advance(n);
        }
        lane.finish().digest
    }
}

/// A finished message: the caller's tag, the digest and the buffer handed in.
pub struct Done<B> {
    pub tag: usize,
    pub digest: [u8; 32],
    pub buf: B,
}

/// Two hashing lanes fed one message at a time. The caller starts a message whenever a lane
/// is idle and calls [`Lanes::run`] to hash until one finishes; a message that only becomes
/// known when another finishes (a MAC verified, then the data decrypted and hashed again)
/// can start while the other lane is still busy.
pub struct Lanes<B> {
    imp: Sha256Impl,
    a: Option<Lane<B>>,
    b: Option<Lane<B>>,
}

impl<B: AsRef<[u8]>> Default for Lanes<B> {
    fn default() -> Self {
        Lanes::with(Sha256Impl::auto())
    }
}

impl<B: AsRef<[u8]>> Lanes<B> {
    /// Lanes using `imp`. Panics if it is unavailable on this CPU.
    pub fn with(imp: Sha256Impl) -> Lanes<B> {
        assert!(imp.is_available(), "{imp:?} is not available on this CPU");
        Lanes {
            imp,
            a: None,
            b: None,
        }
    }

    pub fn has_idle_lane(&self) -> bool {
        self.a.is_none() || self.b.is_none()
    }

    /// Starts hashing `prefix ‖ buf[from..]` (prefix: what `start` absorbed) under `tag`.
    /// Panics if both lanes are busy.
    pub fn start(&mut self, tag: usize, start: &Midstate, buf: B, from: usize) {
        let lane = Some(Lane::new(tag, start, buf, from));
        if self.a.is_none() {
            self.a = lane;
        } else {
            assert!(self.b.is_none(), "both lanes are busy");
            self.b = lane;
        }
    }

    /// Hashes until a message is finished and returns it; `None` when both lanes are idle.
    /// With one lane busy it runs that message to its end (nothing can join it meanwhile).
    pub fn run(&mut self) -> Option<Done<B>> {
        loop {
            for lane in [&mut self.a, &mut self.b] {
                if lane.as_ref().is_some_and(Lane::is_done) {
                    return lane.take().map(Lane::finish);
                }
            }
            match (&mut self.a, &mut self.b) {
                (Some(la), Some(lb)) => {
                    let (ha, da) = la.pending();
                    let (hb, db) = lb.pending();
                    let n = da.len().min(db.len());
                    compress_x2(self.imp, ha, &da[..n], hb, &db[..n]);
                    la.advance(n);
                    lb.advance(n);
                }
                (Some(l), None) | (None, Some(l)) => {
                    let (h, d) = l.pending();
                    let n = d.len();
                    compress(h, d);
                    l.advance(n);
                }
                (None, None) => return None,
            }
        }
    }
}

/// `SHA-256(prefix ‖ msgs[i])` into `out[i]` for every message, where `prefix` is what
/// `start` absorbed. Uses [`Sha256Impl::auto`].
pub fn finish_many(start: &Midstate, msgs: &[&[u8]], out: &mut [[u8; 32]]) {
    finish_many_with(Sha256Impl::auto(), start, msgs, out)
}

/// [`finish_many`] with an explicit implementation. Panics if it is unavailable or if
/// `out` is shorter than `msgs`.
pub fn finish_many_with(imp: Sha256Impl, start: &Midstate, msgs: &[&[u8]], out: &mut [[u8; 32]]) {
    assert!(out.len() >= msgs.len());
    let mut lanes = Lanes::with(imp);
    let mut queue = msgs.iter().enumerate();
    loop {
        while lanes.has_idle_lane() {
            match queue.next() {
                Some((i, m)) => lanes.start(i, start, *m, 0),
                None => break,
            }
        }
        match lanes.run() {
            Some(done) => out[done.tag] = done.digest,
            None => return,
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];

    /// The SHA instructions keep the state as (A,B,E,F) and (C,D,G,H) words.
    #[inline(always)]
    unsafe fn load_state(h: &[u32; 8]) -> (__m128i, __m128i) {
        let p = h.as_ptr() as *const __m128i;
        let dcba = _mm_shuffle_epi32(_mm_loadu_si128(p), 0xB1); // lanes: b a d c
        let hgfe = _mm_shuffle_epi32(_mm_loadu_si128(p.add(1)), 0x1B); // lanes: h g f e
        let abef = _mm_alignr_epi8(dcba, hgfe, 8);
        let cdgh = _mm_blend_epi16(hgfe, dcba, 0xF0);
        (abef, cdgh)
    }

    #[inline(always)]
    unsafe fn store_state(h: &mut [u32; 8], abef: __m128i, cdgh: __m128i) {
        let feba = _mm_shuffle_epi32(abef, 0x1B);
        let dchg = _mm_shuffle_epi32(cdgh, 0xB1);
        let p = h.as_mut_ptr() as *mut __m128i;
        _mm_storeu_si128(p, _mm_blend_epi16(feba, dchg, 0xF0));
        _mm_storeu_si128(p.add(1), _mm_alignr_epi8(dchg, feba, 8));
    }

    /// Four message words, big-endian in memory.
    #[inline(always)]
    unsafe fn load_words(p: *const u8) -> __m128i {
        let flip = _mm_set_epi64x(0x0c0d0e0f08090a0b, 0x0405060700010203);
        _mm_shuffle_epi8(_mm_loadu_si128(p as *const __m128i), flip)
    }

    /// W[t..t+4] from the previous sixteen words, oldest first.
    #[inline(always)]
    unsafe fn expand(w0: __m128i, w1: __m128i, w2: __m128i, w3: __m128i) -> __m128i {
        let s0 = _mm_sha256msg1_epu32(w0, w1);
        let w7 = _mm_alignr_epi8(w3, w2, 4);
        _mm_sha256msg2_epu32(_mm_add_epi32(s0, w7), w3)
    }

    /// Four rounds with message words `w` and constants K[4g..4g+4].
    #[inline(always)]
    unsafe fn four_rounds(abef: &mut __m128i, cdgh: &mut __m128i, w: __m128i, g: usize) {
        let wk = _mm_add_epi32(w, _mm_loadu_si128(K.as_ptr().add(4 * g) as *const __m128i));
        *cdgh = _mm_sha256rnds2_epu32(*cdgh, *abef, wk);
        *abef = _mm_sha256rnds2_epu32(*abef, *cdgh, _mm_shuffle_epi32(wk, 0x0E));
    }

    /// `blocks` 64-byte blocks of `a` into `ha` and of `b` into `hb`, interleaved.
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    pub(super) unsafe fn compress_x2(
        ha: &mut [u32; 8],
        a: &[u8],
        hb: &mut [u32; 8],
        b: &[u8],
        blocks: usize,
    ) {
        debug_assert!(a.len() >= blocks * 64 && b.len() >= blocks * 64);
        let (mut abef_a, mut cdgh_a) = load_state(ha);
        let (mut abef_b, mut cdgh_b) = load_state(hb);
        for i in 0..blocks {
            let (sa, sb) = ((abef_a, cdgh_a), (abef_b, cdgh_b));
            let pa = a.as_ptr().add(64 * i);
            let pb = b.as_ptr().add(64 * i);
            // a ring of the last sixteen message words per lane, four per register
            let mut wa = [
                load_words(pa),
                load_words(pa.add(16)),
                load_words(pa.add(32)),
                load_words(pa.add(48)),
            ];
            let mut wb = [
                load_words(pb),
                load_words(pb.add(16)),
                load_words(pb.add(32)),
                load_words(pb.add(48)),
            ];
            macro_rules! group {
                ($g:expr) => {{
                    const S: usize = $g % 4;
                    if $g >= 4 {
                        wa[S] = expand(wa[S], wa[(S + 1) % 4], wa[(S + 2) % 4], wa[(S + 3) % 4]);
                        wb[S] = expand(wb[S], wb[(S + 1) % 4], wb[(S + 2) % 4], wb[(S + 3) % 4]);
                    }
                    four_rounds(&mut abef_a, &mut cdgh_a, wa[S], $g);
                    four_rounds(&mut abef_b, &mut cdgh_b, wb[S], $g);
                }};
            }
            group!(0);
            group!(1);
            group!(2);
            group!(3);
            group!(4);
            group!(5);
            group!(6);
            group!(7);
            group!(8);
            group!(9);
            group!(10);
            group!(11);
            group!(12);
            group!(13);
            group!(14);
            group!(15);
            abef_a = _mm_add_epi32(abef_a, sa.0);
            cdgh_a = _mm_add_epi32(cdgh_a, sa.1);
            abef_b = _mm_add_epi32(abef_b, sb.0);
            cdgh_b = _mm_add_epi32(cdgh_b, sb.1);
        }
        store_state(ha, abef_a, cdgh_a);
        store_state(hb, abef_b, cdgh_b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use sha2::{Digest, Sha256};

    fn impls() -> Vec<Sha256Impl> {
        [Sha256Impl::Sequential, Sha256Impl::ShaNiX2]
            .into_iter()
            .filter(|i| i.is_available())
            .collect()
    }

    fn check<M: AsRef<[u8]>>(prefix_blocks: &[u8], msgs: &[M]) {
        let mut start = Midstate::default();
        start.absorb(prefix_blocks);
        let refs: Vec<&[u8]> = msgs.iter().map(|m| m.as_ref()).collect();
        for imp in impls() {
            let mut out = vec![[0u8; 32]; msgs.len()];
            finish_many_with(imp, &start, &refs, &mut out);
            for (m, got) in refs.iter().zip(&out) {
                let mut h = Sha256::new();
                h.update(prefix_blocks);
                h.update(m);
                let want: [u8; 32] = h.finalize().into();
                assert_eq!(*got, want, "{imp:?}, message of {} bytes", m.len());
            }
        }
    }

    #[test]
    fn every_tail_length_alone_and_in_pairs() {
        // 0..=200 covers empty, one and two padding blocks, and body + tail
        let msgs: Vec<Vec<u8>> = (0..=200u32)
            .map(|n| (0..n).map(|i| (i * 7 + n) as u8).collect())
            .collect();
        check(&[], &msgs);
        check(&[0x36; 64], &msgs);
        for m in &msgs {
            check(&[], std::slice::from_ref(m));
        }
    }

    #[test]
    fn no_messages() {
        check::<&[u8]>(&[], &[]);
    }

    #[test]
    fn the_empty_string() {
        let mut out = [[0u8; 32]; 1];
        finish_many(&Midstate::default(), &[b""], &mut out);
        assert_eq!(
            out[0][..4],
            [0xe3, 0xb0, 0xc4, 0x42],
            "SHA-256('') starts e3b0c442"
        );
    }

    proptest! {
        #[test]
        fn random_messages_match_sha2(
            lens in proptest::collection::vec(0usize..5000, 0..9),
            prefix in 0usize..3,
            seed in any::<u8>(),
            offset in 0usize..16,
        ) {
            // unaligned starts: every message is a slice at `offset` into its buffer
            let bufs: Vec<Vec<u8>> = lens.iter().enumerate()
                .map(|(k, &n)| (0..n + offset).map(|i| (i as u8).wrapping_mul(31) ^ seed ^ k as u8).collect())
                .collect();
            let msgs: Vec<&[u8]> = bufs.iter().map(|b| &b[offset..]).collect();
            check(&vec![seed; 64 * prefix], &msgs);
        }
    }

    /// Messages that appear only when others finish (SHA-256 of each digest), with owned
    /// buffers and a skipped prefix, give the same digests as hashing them one by one.
    #[test]
    fn dependent_messages_through_lanes() {
        for imp in impls() {
            let start = Midstate::default();
            let mut lanes: Lanes<Vec<u8>> = Lanes::with(imp);
            let mut queue: Vec<(usize, Vec<u8>)> = (0..7)
                .map(|k| (k, vec![k as u8; 1000 * k * k + 5]))
                .collect();
            let mut second = [[0u8; 32]; 7];
            loop {
                while lanes.has_idle_lane() {
                    let Some((tag, buf)) = queue.pop() else { break };
                    lanes.start(tag, &start, buf, 3);
                }
                let Some(done) = lanes.run() else { break };
                if done.tag < 100 {
                    let k = done.tag;
                    assert_eq!(done.buf.len(), 1000 * k * k + 5, "buffer handed back");
                    assert_eq!(done.digest[..], Sha256::digest(&done.buf[3..])[..]);
                    let mut next = vec![0xEE; 3];
                    next.extend_from_slice(&done.digest);
                    queue.push((100 + k, next));
                } else {
                    second[done.tag - 100] = done.digest;
                }
            }
            for (k, got) in second.iter().enumerate() {
                let first = Sha256::digest(vec![k as u8; 1000 * k * k + 2]);
                assert_eq!(got[..], Sha256::digest(first)[..], "{imp:?} message {k}");
            }
            assert_eq!(start.finish(b"abc")[..], Sha256::digest(b"abc")[..]);
        }
    }

    #[test]
    #[should_panic(expected = "whole 64-byte blocks")]
    fn absorb_rejects_partial_blocks() {
        Midstate::default().absorb(&[0; 10]);
    }
}
