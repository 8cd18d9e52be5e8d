//! All-zero detection.

use crate::Backend;

/// Whether every byte of `data` is zero (`true` for an empty slice), using [`Backend::auto`].
#[inline]
pub fn is_zero(data: &[u8]) -> bool {
    is_zero_with(Backend::auto(), data)
}

/// [`is_zero`] with an explicit backend. Panics if `backend` is unavailable.
pub fn is_zero_with(backend: Backend, data: &[u8]) -> bool {
    assert!(
        backend.is_available(),
        "backend {backend} is not available on this CPU"
    );
    match backend {
        Backend::Reference => is_zero_reference(data),
        Backend::Scalar => scalar(data),
        // SAFETY: availability checked above.
        #[cfg(target_arch = "x86_64")]
        Backend::Avx2 => unsafe { avx2(data) },
        #[cfg(target_arch = "x86_64")]
        Backend::Avx512 => unsafe { avx512(data) },
        #[cfg(target_arch = "aarch64")]
        Backend::Neon => unsafe { neon(data) },
        #[allow(unreachable_patterns)]
        _ => unreachable!("unavailable backend passed the availability check"),
    }
}

/// The obvious definition.
pub fn is_zero_reference(data: &[u8]) -> bool {
    data.iter().all(|&b| b == 0)
}

/// Words of 8 bytes, 64 bytes per early-exit check.
fn scalar(data: &[u8]) -> bool {
    let mut blocks = data.chunks_exact(64);
    for b in &mut blocks {
        let mut acc = 0u64;
        for w in b.chunks_exact(8) {
            acc |= u64::from_ne_bytes(w.try_into().unwrap());
        }
        if acc != 0 {
            return false;
        }
    }
    is_zero_reference(blocks.remainder())
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn avx2(data: &[u8]) -> bool {
    use std::arch::x86_64::*;
    let mut blocks = data.chunks_exact(128);
    for b in &mut blocks {
        let p = b.as_ptr() as *const __m256i;
        let a = _mm256_or_si256(_mm256_loadu_si256(p), _mm256_loadu_si256(p.add(1)));
        let c = _mm256_or_si256(_mm256_loadu_si256(p.add(2)), _mm256_loadu_si256(p.add(3)));
        let v = _mm256_or_si256(a, c);
        if _mm256_testz_si256(v, v) == 0 {
            return false;
        }
    }
    scalar(blocks.remainder())
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn avx512(data: &[u8]) -> bool {
    use std::arch::x86_64::*;
    let mut blocks = data.chunks_exact(256);
    for b in &mut blocks {
        let p = b.as_ptr() as *const __m512i;
        let a = _mm512_ternarylogic_epi64::<0xFE>(
            _mm512_loadu_si512(p),
            _mm512_loadu_si512(p.add(1)),
            _mm512_loadu_si512(p.add(2)),
        );
        let v = _mm512_or_si512(a, _mm512_loadu_si512(p.add(3)));
        if _mm512_test_epi64_mask(v, v) != 0 {
            return false;
        }
    }
    scalar(blocks.remainder())
}

#[cfg(target_arch = "aarch64")]
#[target_feature(enable = "neon")]
unsafe fn neon(data: &[u8]) -> bool {
    use std::arch::aarch64::*;
    let mut blocks = data.chunks_exact(64);
    for b in &mut blocks {
        let p = b.as_ptr();
        let a = vorrq_u8(vld1q_u8(p), vld1q_u8(p.add(16)));
        let c = vorrq_u8(vld1q_u8(p.add(32)), vld1q_u8(p.add(48)));
        if vmaxvq_u8(vorrq_u8(a, c)) != 0 {
            return false;
        }
    }
    scalar(blocks.remainder())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_backend_every_position() {
        for b in Backend::available() {
            for len in 0..600usize {
                let mut v = vec![0u8; len + 3];
                for off in 0..3 {
                    let s = &mut v[off..off + len];
                    assert!(is_zero_with(b, s), "{b} len {len}");
                    for i in 0..len {
                        s[i] = 1 << (i % 8);
                        assert!(!is_zero_with(b, s), "{b} len {len} off {off} at {i}");
                        s[i] = 0;
                    }
                }
            }
        }
    }

    proptest! {
        #[test]
        fn agrees_with_reference(data in proptest::collection::vec(prop_oneof![9 => Just(0u8), 1 => any::<u8>()], 0..3000), off in 0usize..64) {
            let off = off.min(data.len());
            let s = &data[off..];
            for b in Backend::available() {
                prop_assert_eq!(is_zero_with(b, s), is_zero_reference(s));
            }
        }
    }
}
