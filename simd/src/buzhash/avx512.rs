//! AVX-512: 16 hash lanes in one `zmm`, table lookups with `vpgatherdd`, `vprold` for the
//! rotation, `vpternlogd` for the three-way xor and `vptestnmd` for the mask test.

use std::arch::x86_64::*;
use std::ops::Range;

use super::{drive, scalar, Plan, Scanner};

const LANES: usize = 16;

pub(super) fn find(
    s: &Scanner,
    data: &[u8],
    range: Range<usize>,
    stripe: Option<usize>,
) -> Option<usize> {
    let plan = Plan::new(LANES, s.window, s.mask, 4, 4).with_stripe(stripe);
    drive(
        plan,
        s.window,
        data.len(),
        range,
        // SAFETY: AVX-512 availability was checked by `find_with`; `drive` keeps every read of
        // the round (windows + 4 bytes of slack) inside `data`.
        |start, stripe| unsafe { round(s, data.as_ptr(), start, stripe) },
        |r| scalar::serial(s, data, r),
    )
}

/// Byte `k` of every dword, zero-extended (a `vpshufb` control).
#[inline(always)]
unsafe fn byte_sel(k: u32) -> __m512i {
    // Per dword: byte k at position 0, zero (0x80) elsewhere; offsets are per 128-bit lane.
    let mut v = [0u8; 64];
    for (i, b) in v.iter_mut().enumerate() {
        *b = if i % 4 == 0 {
            ((i % 16) as u32 + k) as u8
        } else {
            0x80
        };
    }
    _mm512_loadu_si512(v.as_ptr() as *const _)
}

/// # Safety
/// AVX-512F/BW must be available; `data` valid for `start + 16*stripe - 1 + W + 4` bytes;
/// `stripe` a positive multiple of 4 with `16*stripe + W + 4 < 2^31`.
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn round(s: &Scanner, data: *const u8, start: usize, stripe: usize) -> Option<usize> {
    let w = s.window;
    let base = data.add(start) as *const i32;
    let st = stripe as i32;
    let offs = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm512_set1_epi32(st),
    );
    let t = s.t.as_ptr() as *const i32;
    let r = s.r.as_ptr() as *const i32;
    let sel = [byte_sel(0), byte_sel(1), byte_sel(2), byte_sel(3)];
    let mask = _mm512_set1_epi32(s.mask as i32);

    let mut h = _mm512_setzero_si512();
    let mut i = 0usize;
    while i + 4 <= w {
        let d =
            _mm512_i32gather_epi32::<1>(_mm512_add_epi32(offs, _mm512_set1_epi32(i as i32)), base);
        for sk in &sel {
            let b = _mm512_shuffle_epi8(d, *sk);
            h = _mm512_xor_si512(_mm512_rol_epi32::<1>(h), _mm512_i32gather_epi32::<4>(b, t));
        }
        i += 4;
    }
    while i < w {
        let d =
            _mm512_i32gather_epi32::<1>(_mm512_add_epi32(offs, _mm512_set1_epi32(i as i32)), base);
        let b = _mm512_shuffle_epi8(d, sel[0]);
        h = _mm512_xor_si512(_mm512_rol_epi32::<1>(h), _mm512_i32gather_epi32::<4>(b, t));
        i += 1;
    }

    let mut first = [usize::MAX; LANES];
    let mut record = |bits: u32, step: usize| -> bool {
        for (j, f) in first.iter_mut().enumerate() {
            if bits & (1 << j) != 0 && *f == usize::MAX {
                *f = step;
            }
        }
        bits & 1 != 0
    };
    let b0 = _mm512_testn_epi32_mask(h, mask) as u32;
    if b0 != 0 && record(b0, 0) {
        return Some(start);
    }
    let inoff = _mm512_add_epi32(offs, _mm512_set1_epi32(w as i32));
    let mut g = 0usize;
    while g < stripe {
        let gi = _mm512_set1_epi32(g as i32);
        let dout = _mm512_i32gather_epi32::<1>(_mm512_add_epi32(offs, gi), base);
        let din = _mm512_i32gather_epi32::<1>(_mm512_add_epi32(inoff, gi), base);
        for (k, sk) in sel.iter().enumerate() {
            let o = _mm512_shuffle_epi8(dout, *sk);
            let n = _mm512_shuffle_epi8(din, *sk);
            let ro = _mm512_i32gather_epi32::<4>(o, r);
            let tn = _mm512_i32gather_epi32::<4>(n, t);
            h = _mm512_ternarylogic_epi32::<0x96>(_mm512_rol_epi32::<1>(h), ro, tn);
            let step = g + k + 1;
            let b = _mm512_testn_epi32_mask(h, mask) as u32;
            if b != 0 && step < stripe && record(b, step) {
                return Some(start + step);
            }
        }
        g += 4;
    }
    (1..LANES)
        .find(|&j| first[j] != usize::MAX)
        .map(|j| start + j * stripe + first[j])
}
