//! Rolling "buzhash" (cyclic polynomial) window scan.
//!
//! With a table `T: [u32; 256]` and a window of `W` bytes, the hash of a window `w[0..W)` is
//!
//! ```text
//! H(w) = XOR_{i=0}^{W-1} rotl(T[w[i]], (W-1-i) & 31)
//! ```
//!
//! and moving the window one byte (drop `out = w[0]`, append `in`) is
//!
//! ```text
//! H' = rotl(H, 1) ^ rotl(T[out], W & 31) ^ T[in]
//! ```
//!
//! The kernel ([`Scanner::find`]) answers one question: *given `data`, a window size `W`, a mask
//! `M` and a range of candidate window-start positions `[a, b)`, what is the smallest `p` in
//! `[a, b)` with `H(data[p .. p+W]) & M == 0`?* Every window it considers must lie inside
//! `data` (`b - 1 + W <= data.len()`); the scan hashes the window at `a` from scratch (it never
//! carries state between calls), so the answer depends only on `data[a .. b-1+W]`.
//!
//! Backends: [`Backend::Reference`] is the literal definition above; [`Backend::Scalar`] runs
//! several independent lanes in general registers; the SIMD backends run many lanes in vector
//! registers. All multi-lane paths split the candidate range into consecutive *stripes*, one per
//! lane; each lane hashes its first window from scratch and then rolls through its stripe; the
//! answer is the first hit of the first lane that has one. Rounds are sized from the mask's
//! expected hit distance so that little work is wasted past the first hit.

mod scalar;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "aarch64")]
mod neon;

use std::ops::Range;

pub use crate::Backend;

/// A 256-entry buzhash table (`T[byte]`).
#[derive(Clone, PartialEq, Eq)]
pub struct Table(pub [u32; 256]);

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Table([{:#010x}, {:#010x}, ...])", self.0[0], self.0[1])
    }
}

impl Table {
    /// `base[i] ^ xor` for every entry (how a seed is applied to a base table).
    pub fn with_xor(base: &[u32; 256], xor: u32) -> Table {
        let mut t = [0u32; 256];
        for (d, s) in t.iter_mut().zip(base.iter()) {
            *d = s ^ xor;
        }
        Table(t)
    }

    /// `H(window)` computed literally from the definition (any length, including 0).
    pub fn hash(&self, window: &[u8]) -> u32 {
        let n = window.len();
        let mut h = 0u32;
        for (i, &b) in window.iter().enumerate() {
            h ^= self.0[b as usize].rotate_left(((n - 1 - i) & 31) as u32);
        }
        h
    }

    /// One rolling step for a window of `window` bytes: drop `out`, append `inp`.
    #[inline]
    pub fn roll(&self, h: u32, out: u8, inp: u8, window: usize) -> u32 {
        h.rotate_left(1)
            ^ self.0[out as usize].rotate_left((window & 31) as u32)
            ^ self.0[inp as usize]
    }

    /// `H(window)` with four independent dependency chains (same value as [`Table::hash`]).
    #[inline]
    pub fn hash_fast(&self, window: &[u8]) -> u32 {
        let t = &self.0;
        let mut g = [0u32; 4];
        let mut quads = window.chunks_exact(4);
        for q in &mut quads {
            for c in 0..4 {
                g[c] = g[c].rotate_left(4) ^ t[q[c] as usize];
            }
        }
        let mut h = g[0].rotate_left(3) ^ g[1].rotate_left(2) ^ g[2].rotate_left(1) ^ g[3];
        for &b in quads.remainder() {
            h = h.rotate_left(1) ^ t[b as usize];
        }
        h
    }
}

/// The scan kernel for one table, window size and mask (cheap to build; reusable).
#[derive(Clone)]
pub struct Scanner {
    t: [u32; 256],
    /// `rotl(T[x], W & 31)`: the "out" term of the rolling update.
    r: [u32; 256],
    window: usize,
    mask: u32,
}

impl std::fmt::Debug for Scanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scanner")
            .field("window", &self.window)
            .field("mask", &format_args!("{:#x}", self.mask))
            .finish_non_exhaustive()
    }
}

impl Scanner {
    /// A scanner for windows of `window` bytes (must be ≥ 1) testing `H & mask == 0`.
    pub fn new(table: &Table, window: usize, mask: u32) -> Scanner {
        assert!(window >= 1, "buzhash window must be at least 1 byte");
        let mut r = [0u32; 256];
        for (d, s) in r.iter_mut().zip(table.0.iter()) {
            *d = s.rotate_left((window & 31) as u32);
        }
        Scanner {
            t: table.0,
            r,
            window,
            mask,
        }
    }

    /// The window size `W`.
    pub fn window(&self) -> usize {
        self.window
    }

    /// The mask `M`.
    pub fn mask(&self) -> u32 {
        self.mask
    }

    /// The table.
    pub fn table(&self) -> Table {
        Table(self.t)
    }

    /// Smallest `p` in `range` with `H(data[p..p+W]) & M == 0`, using [`auto_backend`].
    ///
    /// An empty range gives `None`. Panics unless `range.end - 1 + W <= data.len()`.
    #[inline]
    pub fn find(&self, data: &[u8], range: Range<usize>) -> Option<usize> {
        self.find_with(auto_backend(), data, range)
    }

    /// Like [`Scanner::find`] with an explicit backend. Panics if `backend` is unavailable.
    pub fn find_with(&self, backend: Backend, data: &[u8], range: Range<usize>) -> Option<usize> {
        self.find_planned(backend, data, range, None)
    }

    /// Testing hook: like [`Scanner::find_with`] but forcing the multi-lane stripe length
    /// (rounded down to the backend's granule; 0 = single lane only) instead of choosing it from
    /// the mask. Results must not depend on it.
    #[doc(hidden)]
    pub fn find_with_stripe(
        &self,
        backend: Backend,
        data: &[u8],
        range: Range<usize>,
        stripe: usize,
    ) -> Option<usize> {
        self.find_planned(backend, data, range, Some(stripe))
    }

    fn find_planned(
        &self,
        backend: Backend,
        data: &[u8],
        range: Range<usize>,
        stripe: Option<usize>,
    ) -> Option<usize> {
        if range.start >= range.end {
            return None;
        }
        assert!(
            range.end - 1 + self.window <= data.len(),
            "buzhash scan range {:?} with window {} exceeds data length {}",
            range,
            self.window,
            data.len()
        );
        assert!(
            backend.is_available(),
            "backend {backend} is not available on this CPU"
        );
        match backend {
            Backend::Reference => self.find_reference(data, range),
            Backend::Scalar => scalar::find(self, data, range, stripe),
            #[cfg(target_arch = "x86_64")]
            Backend::Avx2 => avx2::find(self, data, range, stripe),
            #[cfg(target_arch = "x86_64")]
            Backend::Avx512 => avx512::find(self, data, range, stripe),
            #[cfg(target_arch = "aarch64")]
            Backend::Neon => neon::find(self, data, range, stripe),
            #[allow(unreachable_patterns)]
            _ => unreachable!("unavailable backend passed the availability check"),
        }
    }

    /// The reference scan: hash the first window literally, then roll one byte at a time.
    pub fn find_reference(&self, data: &[u8], range: Range<usize>) -> Option<usize> {
        if range.start >= range.end {
            return None;
        }
        let w = self.window;
        assert!(range.end - 1 + w <= data.len());
        let table = Table(self.t);
        let mut p = range.start;
        let mut h = table.hash(&data[p..p + w]);
        loop {
            if h & self.mask == 0 {
                return Some(p);
            }
            if p + 1 >= range.end {
                return None;
            }
            h = table.roll(h, data[p], data[p + w], w);
            p += 1;
        }
    }
}

/// The backend [`Scanner::find`] uses: `RBORG_SIMD` if set ([`Backend::from_env`]), else
/// [`Backend::Avx512`] where AVX-512 F/BW/VBMI is available, else [`Backend::Scalar`].
///
/// The scan is bound by two table lookups per byte and lane. Vector gathers deliver about one
/// element per cycle on AMD Zen 4 (measured), so the AVX2 gather kernel loses to the four-lane
/// general-register kernel (three scalar loads per cycle) and is never chosen automatically;
/// the AVX-512 kernel avoids gathers altogether (in-register `vpermi2b` lookups).
pub fn auto_backend() -> Backend {
    Backend::from_env().unwrap_or_else(|| {
        if Backend::Avx512.is_available() {
            Backend::Avx512
        } else {
            Backend::Scalar
        }
    })
}

/// Convenience: [`Scanner::new`] + [`Scanner::find`].
pub fn find_first(
    table: &Table,
    data: &[u8],
    window: usize,
    mask: u32,
    range: Range<usize>,
) -> Option<usize> {
    Scanner::new(table, window, mask).find(data, range)
}

/// How a multi-lane backend splits a range into rounds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Plan {
    /// Number of lanes.
    pub lanes: usize,
    /// Stripe length per lane for full rounds (candidate positions per lane), 0 = don't use lanes.
    pub stripe: usize,
    /// Bytes the lane kernel may read past the last byte of the last window of a round.
    pub slack: usize,
    /// Stripe lengths are rounded down to a multiple of this.
    pub granule: usize,
    /// Minimum stripe for the last, shorter round (lowered by the testing hook).
    pub min_last: usize,
}

impl Plan {
    /// Choose the stripe length for `lanes` lanes: the expected hit distance for random data
    /// is `2^popcount(mask)`; a round costs `lanes * (stripe + W/2)` lane-steps and the last
    /// round is mostly wasted, so minimise `(X + c*lanes*stripe) * (1 + W/(2*stripe))`.
    pub fn new(lanes: usize, window: usize, mask: u32, slack: usize, granule: usize) -> Plan {
        let x = 2f64.powi(mask.count_ones() as i32);
        let w = window as f64;
        let stripe = (x * w / (2.0 * 0.6 * lanes as f64)).sqrt();
        // Lanes only pay off when the warm-up is small against the stripe.
        let stripe = if stripe < w.max(256.0) {
            0
        } else {
            (stripe.min(4_194_304.0) as usize / granule) * granule
        };
        Plan {
            lanes,
            stripe,
            slack,
            granule,
            min_last: usize::MAX,
        }
    }

    /// Replace the stripe length (testing hook), rounded down to the granule.
    pub fn with_stripe(mut self, stripe: Option<usize>) -> Plan {
        if let Some(st) = stripe {
            self.stripe = st / self.granule * self.granule;
            self.min_last = self.granule;
        }
        self
    }
}

/// Drive a lane kernel over `range`; `round(start, stripe)` scans lanes `j` over
/// `[start + j*stripe, start + (j+1)*stripe)` and returns the first hit; `serial` scans a
/// leftover range.
#[inline(always)]
pub(crate) fn drive(
    plan: Plan,
    window: usize,
    data_len: usize,
    range: Range<usize>,
    mut round: impl FnMut(usize, usize) -> Option<usize>,
    mut serial: impl FnMut(Range<usize>) -> Option<usize>,
) -> Option<usize> {
    let mut s = range.start;
    // Lane kernels may over-read: keep rounds clear of the end of the data.
    let lane_end = range
        .end
        .min((data_len + 1).saturating_sub(window + plan.slack));
    if plan.stripe > 0 {
        let full = plan.lanes * plan.stripe;
        while lane_end.saturating_sub(s) >= full {
            if let Some(p) = round(s, plan.stripe) {
                return Some(p);
            }
            s += full;
        }
        // A last, shorter round if it is still clearly worth it.
        let rest = lane_end.saturating_sub(s);
        let stripe = (rest / plan.lanes / plan.granule) * plan.granule;
        if stripe > 0 && stripe >= plan.min_last.min(2 * window.max(128)) {
            if let Some(p) = round(s, stripe) {
                return Some(p);
            }
            s += plan.lanes * stripe;
        }
    }
    serial(s..range.end)
}

#[cfg(test)]
mod tests;
