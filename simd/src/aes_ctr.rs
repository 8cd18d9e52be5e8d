//! AES-256 in counter mode with VAES: four blocks per 512-bit register, sixteen in flight.
//!
//! The counter is the whole 16-byte block read as a big-endian integer and incremented per
//! block (the `ctr` crate's `Ctr128BE`). AES-NI (the `aes` crate) already runs eight blocks in
//! parallel; VAES does four per instruction, which roughly halves the cost per byte on CPUs
//! with 512-bit AES units. Callers keep the `aes`/`ctr` path where [`Aes256Ctr::new`] returns
//! `None`; both give the same keystream (see the tests).

/// Expanded AES-256 encryption key for the VAES kernel.
pub struct Aes256Ctr {
    round_keys: [[u8; 16]; 15],
}

impl Clone for Aes256Ctr {
    fn clone(&self) -> Self {
        Aes256Ctr {
            round_keys: self.round_keys,
        }
    }
}

impl Drop for Aes256Ctr {
    fn drop(&mut self) {
        for k in self.round_keys.iter_mut() {
            // SAFETY: a valid, exclusively borrowed array; volatile so the wipe stays.
            unsafe { std::ptr::write_volatile(k, [0u8; 16]) };
        }
    }
}

impl std::fmt::Debug for Aes256Ctr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Aes256Ctr(..)")
    }
}

/// Does this CPU have VAES with AVX-512 (and AES-NI for the key schedule)?
#[cfg(target_arch = "x86_64")]
pub fn has_vaes() -> bool {
    std::is_x86_feature_detected!("vaes")
        && std::is_x86_feature_detected!("avx512f")
        && std::is_x86_feature_detected!("aes")
}

#[cfg(not(target_arch = "x86_64"))]
pub fn has_vaes() -> bool {
    false
}

impl Aes256Ctr {
    /// The expanded key, or `None` without VAES (use the portable path then).
    pub fn new(key: &[u8; 32]) -> Option<Aes256Ctr> {
        #[cfg(target_arch = "x86_64")]
        if has_vaes() {
            // SAFETY: AES-NI checked above.
            let round_keys = unsafe { x86::expand_key(key) };
            return Some(Aes256Ctr { round_keys });
        }
        let _ = key;
        None
    }

    /// XORs the keystream from counter block `counter` onwards into `data`.
    pub fn apply_keystream(&self, counter: u128, data: &mut [u8]) {
        #[cfg(target_arch = "x86_64")]
        {
            assert!(has_vaes(), "VAES is not available on this CPU");
            // SAFETY: features checked above (and when the key was made).
            unsafe { x86::apply(&self.round_keys, counter, data) }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (counter, data);
            unreachable!("Aes256Ctr::new returns None off x86_64");
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// Blocks per loop round: four registers of four blocks.
    const BLOCKS: usize = 16;

    macro_rules! expand_pair {
        ($k0:ident, $k1:ident, $rk:ident, $i:expr, $rcon:expr) => {{
            // even round key: from the previous odd one, rotated and substituted, with rcon
            let t = _mm_shuffle_epi32::<0xff>(_mm_aeskeygenassist_si128::<$rcon>($k1));
            $k0 = xor_prefix($k0);
            $k0 = _mm_xor_si128($k0, t);
            $rk[$i] = $k0;
            if $i + 1 < 15 {
                // odd round key: substituted without rotation or rcon
                let t = _mm_shuffle_epi32::<0xaa>(_mm_aeskeygenassist_si128::<0>($k0));
                $k1 = xor_prefix($k1);
                $k1 = _mm_xor_si128($k1, t);
                $rk[$i + 1] = $k1;
            }
        }};
    }

    /// Each 32-bit word XORed with all words before it (the key schedule's running XOR).
    #[inline(always)]
    unsafe fn xor_prefix(mut k: __m128i) -> __m128i {
        let mut t = _mm_slli_si128::<4>(k);
        k = _mm_xor_si128(k, t);
        t = _mm_slli_si128::<4>(t);
        k = _mm_xor_si128(k, t);
        t = _mm_slli_si128::<4>(t);
        _mm_xor_si128(k, t)
    }

    /// The AES-256 key schedule (FIPS-197 §5.2) with AESKEYGENASSIST.
    #[target_feature(enable = "aes,sse2")]
    pub(super) unsafe fn expand_key(key: &[u8; 32]) -> [[u8; 16]; 15] {
        let mut rk = [_mm_setzero_si128(); 15];
        let mut k0 = _mm_loadu_si128(key.as_ptr().cast());
        let mut k1 = _mm_loadu_si128(key.as_ptr().add(16).cast());
        rk[0] = k0;
        rk[1] = k1;
        expand_pair!(k0, k1, rk, 2, 0x01);
        expand_pair!(k0, k1, rk, 4, 0x02);
        expand_pair!(k0, k1, rk, 6, 0x04);
        expand_pair!(k0, k1, rk, 8, 0x08);
        expand_pair!(k0, k1, rk, 10, 0x10);
        expand_pair!(k0, k1, rk, 12, 0x20);
        expand_pair!(k0, k1, rk, 14, 0x40);
        let mut out = [[0u8; 16]; 15];
        for (o, k) in out.iter_mut().zip(rk.iter()) {
            _mm_storeu_si128(o.as_mut_ptr().cast(), *k);
        }
        out
    }

    /// Sixteen keystream blocks for counters `counter..counter + 16`.
    #[inline(always)]
    unsafe fn keystream(rk: &[__m512i; 15], counter: u128, out: &mut [u8; BLOCKS * 16]) {
        for (j, block) in out.chunks_exact_mut(16).enumerate() {
            block.copy_from_slice(&counter.wrapping_add(j as u128).to_be_bytes());
        }
        let p = out.as_mut_ptr();
        let mut x = [
            _mm512_loadu_si512(p.cast()),
            _mm512_loadu_si512(p.add(64).cast()),
            _mm512_loadu_si512(p.add(128).cast()),
            _mm512_loadu_si512(p.add(192).cast()),
        ];
        for v in x.iter_mut() {
            *v = _mm512_xor_si512(*v, rk[0]);
        }
        for k in &rk[1..14] {
            for v in x.iter_mut() {
                *v = _mm512_aesenc_epi128(*v, *k);
            }
        }
        for v in x.iter_mut() {
            *v = _mm512_aesenclast_epi128(*v, rk[14]);
        }
        for (i, v) in x.iter().enumerate() {
            _mm512_storeu_si512(p.add(64 * i).cast(), *v);
        }
    }

    #[target_feature(enable = "vaes,avx512f,aes")]
    pub(super) unsafe fn apply(round_keys: &[[u8; 16]; 15], counter: u128, data: &mut [u8]) {
        let mut rk = [_mm512_setzero_si512(); 15];
        for (r, k) in rk.iter_mut().zip(round_keys.iter()) {
            *r = _mm512_broadcast_i32x4(_mm_loadu_si128(k.as_ptr().cast()));
        }
        let mut ks = [0u8; BLOCKS * 16];
        let mut counter = counter;
        let mut chunks = data.chunks_exact_mut(BLOCKS * 16);
        for chunk in &mut chunks {
            keystream(&rk, counter, &mut ks);
            let (d, k) = (chunk.as_mut_ptr(), ks.as_ptr());
            for i in 0..4 {
                let v = _mm512_xor_si512(
                    _mm512_loadu_si512(d.add(64 * i).cast()),
                    _mm512_loadu_si512(k.add(64 * i).cast()),
                );
                _mm512_storeu_si512(d.add(64 * i).cast(), v);
            }
            counter = counter.wrapping_add(BLOCKS as u128);
        }
        let rest = chunks.into_remainder();
        if !rest.is_empty() {
            keystream(&rk, counter, &mut ks);
            for (b, k) in rest.iter_mut().zip(ks.iter()) {
                *b ^= k;
            }
        }
        // the keystream buffer held key-derived bytes
        std::ptr::write_volatile(&mut ks, [0u8; BLOCKS * 16]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aes::cipher::{KeyIvInit, StreamCipher};
    use proptest::prelude::*;

    type Reference = ctr::Ctr128BE<aes::Aes256>;

    fn reference(key: &[u8; 32], counter: u128, data: &mut [u8]) {
        Reference::new(key.into(), &counter.to_be_bytes().into()).apply_keystream(data);
    }

    /// The kernel exists exactly where the CPU has VAES (the suite's machine has it: AMD EPYC
    /// with AVX-512).
    #[test]
    fn available_where_the_cpu_has_vaes() {
        assert_eq!(Aes256Ctr::new(&[7; 32]).is_some(), has_vaes());
    }

    /// FIPS-197 appendix C.3: AES-256 of one block (a keystream block is the encrypted counter).
    #[test]
    fn fips197_vector() {
        let key: [u8; 32] = std::array::from_fn(|i| i as u8);
        let plain = u128::from_be_bytes(std::array::from_fn(|i| (i as u8) * 0x11));
        let want = [
            0x8e, 0xa2, 0xb7, 0xca, 0x51, 0x67, 0x45, 0xbf, 0xea, 0xfc, 0x49, 0x90, 0x4b, 0x49,
            0x60, 0x89,
        ];
        let mut block = [0u8; 16];
        reference(&key, plain, &mut block);
        assert_eq!(block, want, "reference");
        if let Some(c) = Aes256Ctr::new(&key) {
            let mut block = [0u8; 16];
            c.apply_keystream(plain, &mut block);
            assert_eq!(block, want, "VAES");
        }
    }

    /// Counters that carry across the 64-bit boundary and wrap at 2^128.
    #[test]
    fn counter_carries_and_wraps() {
        let key = [0x5a; 32];
        let Some(c) = Aes256Ctr::new(&key) else {
            return;
        };
        for counter in [u64::MAX as u128 - 3, u128::MAX - 5, 0] {
            let mut a = vec![0x33u8; 1000];
            let mut b = a.clone();
            c.apply_keystream(counter, &mut a);
            reference(&key, counter, &mut b);
            assert_eq!(a, b, "counter {counter:#x}");
        }
    }

    proptest! {
        /// Any key, counter, length and alignment: the reference keystream.
        #[test]
        fn matches_the_ctr_crate(key in any::<[u8; 32]>(), counter in any::<u64>(),
                                 high in any::<bool>(), len in 0usize..3000, offset in 0usize..64) {
            let counter = if high { (counter as u128) << 64 | counter as u128 } else { counter as u128 };
            if let Some(c) = Aes256Ctr::new(&key) {
                let buf: Vec<u8> = (0..len + offset).map(|i| (i * 7 + 3) as u8).collect();
                let mut a = buf.clone();
                let mut b = buf;
                c.apply_keystream(counter, &mut a[offset..]);
                reference(&key, counter, &mut b[offset..]);
                prop_assert_eq!(a, b);
            }
        }
    }
}
