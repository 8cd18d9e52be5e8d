//! Kernels with runtime CPU-feature dispatch and scalar references. Knows nothing of borg.
//!
//! * [`buzhash`] — find the first position whose rolling-hash window matches a mask.
//! * [`zero`] — all-zero detection.
//! * [`sha256`] — SHA-256 of many messages, two interleaved per core.
//!
//! Every kernel has a simple scalar reference and one or more fast paths. [`Backend`] names a
//! path; [`Backend::auto`] picks one at run time (CPU feature detection, overridable with the
//! environment variable `RBORG_SIMD=reference|scalar|avx2|avx512|neon`). All paths give
//! identical results; the property tests check that.

pub mod aes_ctr;
pub mod buzhash;
pub mod sha256;
pub mod zero;

use std::sync::OnceLock;

/// An implementation strategy for the kernels in this crate.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// The simple, obviously correct scalar code (slow; for tests and as a baseline).
    Reference,
    /// Tuned portable scalar code (several independent hash lanes in general registers).
    Scalar,
    /// x86_64 AVX2.
    Avx2,
    /// x86_64 AVX-512 (F + BW; the buzhash kernel also needs VBMI).
    Avx512,
    /// aarch64 NEON.
    Neon,
}

impl Backend {
    /// Every backend, in order of preference (fastest-in-principle last).
    pub const ALL: [Backend; 5] = [
        Backend::Reference,
        Backend::Scalar,
        Backend::Avx2,
        Backend::Avx512,
        Backend::Neon,
    ];

    /// The lower-case name used by `RBORG_SIMD`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Reference => "reference",
            Backend::Scalar => "scalar",
            Backend::Avx2 => "avx2",
            Backend::Avx512 => "avx512",
            Backend::Neon => "neon",
        }
    }

    /// Parse a name as accepted by `RBORG_SIMD` (case-insensitive).
    pub fn from_name(s: &str) -> Option<Backend> {
        let s = s.trim().to_ascii_lowercase();
        Backend::ALL.into_iter().find(|b| b.name() == s)
    }

    /// Whether this backend can run on this CPU.
    pub fn is_available(self) -> bool {
        match self {
            Backend::Reference | Backend::Scalar => true,
            Backend::Avx2 => has_avx2(),
            Backend::Avx512 => has_avx512(),
            Backend::Neon => has_neon(),
        }
    }

    /// The backends that can run on this CPU.
    pub fn available() -> Vec<Backend> {
        Backend::ALL
            .into_iter()
            .filter(|b| b.is_available())
            .collect()
    }

    /// The override from the environment variable `RBORG_SIMD`, if set and non-empty: the named
    /// backend if it is available here, else [`Backend::Scalar`]. Read once per process.
    pub fn from_env() -> Option<Backend> {
        static ENV: OnceLock<Option<Backend>> = OnceLock::new();
        *ENV.get_or_init(|| match std::env::var("RBORG_SIMD") {
            Ok(v) if !v.trim().is_empty() => match Backend::from_name(&v) {
                Some(b) if b.is_available() => Some(b),
                _ => Some(Backend::Scalar),
            },
            _ => None,
        })
    }

    /// The backend used by [`zero::is_zero`]: [`Backend::from_env`], else [`Backend::best`].
    /// (The buzhash scan has its own choice: [`buzhash::auto_backend`].)
    pub fn auto() -> Backend {
        Backend::from_env().unwrap_or_else(Backend::best)
    }

    /// The best available backend on this CPU, ignoring `RBORG_SIMD`.
    pub fn best() -> Backend {
        if has_avx512() {
            Backend::Avx512
        } else if has_avx2() {
            Backend::Avx2
        } else if has_neon() {
            Backend::Neon
        } else {
            Backend::Scalar
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(target_arch = "x86_64")]
fn has_avx2() -> bool {
    std::is_x86_feature_detected!("avx2")
}
#[cfg(not(target_arch = "x86_64"))]
fn has_avx2() -> bool {
    false
}

#[cfg(target_arch = "x86_64")]
fn has_avx512() -> bool {
    std::is_x86_feature_detected!("avx512f")
        && std::is_x86_feature_detected!("avx512bw")
        && std::is_x86_feature_detected!("avx512vbmi")
}
#[cfg(not(target_arch = "x86_64"))]
fn has_avx512() -> bool {
    false
}

#[cfg(target_arch = "aarch64")]
fn has_neon() -> bool {
    std::arch::is_aarch64_feature_detected!("neon")
}
#[cfg(not(target_arch = "aarch64"))]
fn has_neon() -> bool {
    false
}
