//! AES-CTR counter allocation. A counter value must never repeat under one key, across crashes,
//! aborted transactions and several clients: ranges are reserved in the repository's `nonce`
//! file and in the client's security dir before use (borg's NonceManager), and handed out to
//! parallel encryptors from one mutex-protected cursor.

use std::path::PathBuf;
use std::sync::Mutex;

use super::{CryptoError, Result};
use crate::repo::{RepoError, Repository};

/// Extra counter space reserved beyond what is needed right now (2**28 blocks = 4 GiB).
pub const NONCE_SPACE_RESERVATION: u64 = 1 << 28;

struct State {
    next: u64,
    /// Exclusive end of the current reservation.
    end: Option<u64>,
    manifest_nonce: u64,
}

pub struct IvAllocator {
    repo_id: Option<[u8; 32]>,
    state: Mutex<State>,
}

impl IvAllocator {
    pub fn new(repo_id: Option<[u8; 32]>) -> IvAllocator {
        IvAllocator {
            repo_id,
            state: Mutex::new(State {
                next: 0,
                end: None,
                manifest_nonce: 0,
            }),
        }
    }

    /// Sets the counter start (derived from the current manifest).
    pub fn set_start(&self, start: u64) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.next = start;
        s.manifest_nonce = start;
    }

    fn local_file(&self) -> Option<PathBuf> {
        self.repo_id.map(|id| {
            crate::dirs::security_root()
                .join(hex::encode(id))
                .join("nonce")
        })
    }

    /// Hands out `blocks` consecutive counter values, reserving more space when needed.
    pub fn alloc(&self, repo: &dyn Repository, blocks: u64) -> Result<u64> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(end) = s.end {
            if s.next + blocks <= end {
                let iv = s.next;
                s.next += blocks;
                return Ok(iv);
            }
        }
        let repo_free = match repo.get_free_nonce() {
            Ok(v) => v,
            Err(RepoError::Remote(crate::repo::remote::RemoteError::InvalidRpcMethod(_))) => None,
            Err(e) => return Err(e.into()),
        };
        let local_path = self.local_file();
        let local_free = match &local_path {
            Some(p) => crate::repo::local::read_nonce_file(p)?,
            None => None,
        };
        let start = [
            repo_free,
            local_free,
            Some(s.manifest_nonce),
            s.end,
            Some(s.next),
        ]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(0);
        let end = start
            .checked_add(blocks)
            .and_then(|v| v.checked_add(NONCE_SPACE_RESERVATION))
            .filter(|v| *v < u64::MAX)
            .ok_or_else(|| CryptoError::Other("nonce space exhausted".into()))?;
        match repo.commit_nonce_reservation(end, repo_free) {
            Ok(()) => {}
            Err(RepoError::Remote(crate::repo::remote::RemoteError::InvalidRpcMethod(_))) => {}
            Err(e) => return Err(e.into()),
        }
        if let Some(p) = &local_path {
            if crate::repo::local::read_nonce_file(p)? != local_free {
                return Err(CryptoError::Other(
                    "nonce space reservation with mismatched previous state".into(),
                ));
            }
            if let Some(dir) = p.parent() {
                std::fs::create_dir_all(dir).map_err(|e| CryptoError::io(dir, e))?;
            }
            crate::repo::local::atomic::save_file(p, format!("{end:016x}").as_bytes())
                .map_err(|e| CryptoError::io(p, e))?;
        }
        s.end = Some(end);
        s.next = start + blocks;
        Ok(start)
    }
}
