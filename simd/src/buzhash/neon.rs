//! aarch64 NEON: 4 hash lanes in one `uint32x4_t`; table lookups are scalar loads (NEON has no
//! gather), rotation / xor / mask test are vector operations.
//!
//! Not exercised on the development machine (x86_64); it shares the lane driver and the
//! property tests with the other backends and runs them on aarch64.

use std::arch::aarch64::*;
use std::ops::Range;

use super::{drive, scalar, Plan, Scanner};

const LANES: usize = 4;

pub(super) fn find(
    s: &Scanner,
    data: &[u8],
    range: Range<usize>,
    stripe: Option<usize>,
) -> Option<usize> {
    let plan = Plan::new(LANES, s.window, s.mask, 0, 1).with_stripe(stripe);
    drive(
        plan,
        s.window,
        data.len(),
        range,
        // SAFETY: NEON availability was checked by `find_with`; `drive` keeps every window of
        // the round inside `data` (no over-read: slack 0).
        |start, stripe| unsafe { round(s, data.as_ptr(), start, stripe) },
        |r| scalar::serial(s, data, r),
    )
}

#[target_feature(enable = "neon")]
unsafe fn round(s: &Scanner, data: *const u8, start: usize, stripe: usize) -> Option<usize> {
    let (t, r, w) = (&s.t, &s.r, s.window);
    let mut base = [data; LANES];
    for (j, b) in base.iter_mut().enumerate() {
        *b = data.add(start + j * stripe);
    }
    let look = |tab: &[u32; 256], p: &[*const u8; LANES], off: usize| -> uint32x4_t {
        let v = [
            tab[*p[0].add(off) as usize],
            tab[*p[1].add(off) as usize],
            tab[*p[2].add(off) as usize],
            tab[*p[3].add(off) as usize],
        ];
        vld1q_u32(v.as_ptr())
    };
    let rotl1 = |h: uint32x4_t| vsriq_n_u32::<31>(vshlq_n_u32::<1>(h), h);
    let mask = vdupq_n_u32(s.mask);
    let mut h = vdupq_n_u32(0);
    for i in 0..w {
        h = veorq_u32(rotl1(h), look(t, &base, i));
    }
    let mut first = [usize::MAX; LANES];
    let mut step = 0usize;
    loop {
        // Lanes whose masked hash is zero become all-ones.
        let z = vceqq_u32(vandq_u32(h, mask), vdupq_n_u32(0));
        if vmaxvq_u32(z) != 0 {
            let mut zz = [0u32; LANES];
            vst1q_u32(zz.as_mut_ptr(), z);
            if zz[0] != 0 {
                return Some(start + step);
            }
            for j in 1..LANES {
                if zz[j] != 0 && first[j] == usize::MAX {
                    first[j] = step;
                }
            }
        }
        step += 1;
        if step == stripe {
            break;
        }
        let ro = look(r, &base, step - 1);
        let tn = look(t, &base, step - 1 + w);
        h = veorq_u32(veorq_u32(rotl1(h), ro), tn);
    }
    (1..LANES)
        .find(|&j| first[j] != usize::MAX)
        .map(|j| start + j * stripe + first[j])
}
