//! HMAC-SHA256 of many messages under one key, hashed two messages at a time per core
//! (`rborg_simd::sha256`). Extract and `check --verify-data` authenticate every object twice
//! (envelope MAC, then chunk id); batching those hashes is most of their speed-up.

use rborg_simd::sha256::{finish_many, Midstate};
use sha2::{Digest, Sha256};
use zeroize::Zeroize;

/// A SHA-256 based hash of many messages: plain SHA-256, or HMAC-SHA256 with the key
/// folded into the two states after its padded key blocks.
#[derive(Clone)]
pub struct HmacLanes {
    inner: Midstate,
    outer: Option<Midstate>,
}

impl HmacLanes {
    pub fn hmac(key: &[u8]) -> HmacLanes {
        let mut block = [0u8; 64];
        if key.len() > 64 {
            block[..32].copy_from_slice(&Sha256::digest(key));
        } else {
            block[..key.len()].copy_from_slice(key);
        }
        let pad = |byte: u8| {
            let mut b = block.map(|k| k ^ byte);
            let mut m = Midstate::default();
            m.absorb(&b);
            b.zeroize();
            m
        };
        let lanes = HmacLanes {
            inner: pad(0x36),
            outer: Some(pad(0x5c)),
        };
        block.zeroize();
        lanes
    }

    pub fn sha256() -> HmacLanes {
        HmacLanes {
            inner: Midstate::default(),
            outer: None,
        }
    }

    /// Where a message's hash starts in [`rborg_simd::sha256::Lanes`].
    pub fn start(&self) -> &Midstate {
        &self.inner
    }

    /// The result, given the digest a lane computed from [`HmacLanes::start`].
    pub fn finish(&self, inner: [u8; 32]) -> [u8; 32] {
        match &self.outer {
            Some(outer) => outer.finish(&inner),
            None => inner,
        }
    }

    /// The hash of one message.
    pub fn hash(&self, msg: &[u8]) -> [u8; 32] {
        self.finish(self.inner.finish(msg))
    }

    /// The hash of every message, in order.
    pub fn hashes(&self, msgs: &[&[u8]]) -> Vec<[u8; 32]> {
        let mut inner = vec![[0u8; 32]; msgs.len()];
        finish_many(&self.inner, msgs, &mut inner);
        inner.into_iter().map(|d| self.finish(d)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, Mac};

    fn reference(key: &[u8], msg: &[u8]) -> [u8; 32] {
        let mut h = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
        h.update(msg);
        h.finalize().into_bytes().into()
    }

    #[test]
    fn matches_the_hmac_crate() {
        let msgs: Vec<Vec<u8>> = [0usize, 1, 55, 56, 63, 64, 65, 119, 120, 1000, 70_000, 3]
            .iter()
            .map(|&n| (0..n).map(|i| (i * 13) as u8).collect())
            .collect();
        let refs: Vec<&[u8]> = msgs.iter().map(|m| m.as_slice()).collect();
        for key in [
            vec![],
            vec![7u8; 32],
            vec![9u8; 64],
            vec![1u8; 65],
            vec![3u8; 200],
        ] {
            let got = HmacLanes::hmac(&key).hashes(&refs);
            for (m, g) in refs.iter().zip(&got) {
                assert_eq!(
                    *g,
                    reference(&key, m),
                    "key {} bytes, msg {}",
                    key.len(),
                    m.len()
                );
            }
        }
        let plain = HmacLanes::sha256().hashes(&refs);
        for (m, g) in refs.iter().zip(&plain) {
            assert_eq!(g[..], Sha256::digest(m)[..]);
            assert_eq!(HmacLanes::sha256().hash(m), *g, "one at a time");
        }
        let one = HmacLanes::hmac(&[5u8; 32]);
        for m in &refs {
            assert_eq!(one.hash(m), reference(&[5u8; 32], m), "one at a time");
        }
    }

    #[test]
    fn rfc4231_case_2() {
        let mac = HmacLanes::hmac(b"Jefe").hashes(&[b"what do ya want for nothing?"]);
        assert_eq!(
            hex::encode(mac[0]),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
