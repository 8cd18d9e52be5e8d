//! Ctrl-C during `create`, as borg 1.4 handles it: the first SIGINT asks for a checkpoint,
//! after which the run ends with an error (the checkpoint archive stays); a second one
//! ends the process at once, as the default action would.

use std::sync::atomic::{AtomicBool, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    if REQUESTED.swap(true, Ordering::SeqCst) {
        // second Ctrl-C: the default action (only async-signal-safe calls here)
        unsafe {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            libc::raise(libc::SIGINT);
        }
    }
}

/// Routes SIGINT to `requested()` until the guard is dropped.
pub struct Guard {
    old: libc::sigaction,
}

pub fn install() -> Guard {
    REQUESTED.store(false, Ordering::SeqCst);
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigint as extern "C" fn(libc::c_int) as usize;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(libc::SIGINT, &sa, &mut old);
        Guard { old }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        unsafe {
            libc::sigaction(libc::SIGINT, &self.old, std::ptr::null_mut());
        }
    }
}

/// Has the user pressed Ctrl-C (since `install`)?
pub fn requested() -> bool {
    REQUESTED.load(Ordering::Relaxed)
}
