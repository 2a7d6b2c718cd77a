//! Signals for both binaries: handlers that only set flags the command
//! loops (ringseed's seed/download, ringseed-bench's drivers) poll, so
//! every signal is handled on the normal path, never inside the handler.
//!
//! - SIGINT, SIGTERM: stop cleanly ([`stop_requested`]): stopped announces,
//!   files flushed and closed, reports printed;
//! - SIGHUP: a reload request ([`take_reload_request`]); the process goes on.
//!   Today `seed` and `download` have no configuration file, so they log
//!   that there is nothing to reload; a daemon with a file reloads it there;
//! - SIGUSR1: a status request ([`take_status_request`]): `seed` and
//!   `download` log their one-line status at once; the process goes on;
//! - SIGPIPE: ignored (a closed socket is an error on the write instead).
//!
//! SIGHUP and SIGUSR1 would otherwise end the process with no `stopped`
//! announce; a program that installs these handlers and never asks for the
//! requests (the bench) simply ignores them.

use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);
static RELOAD: AtomicBool = AtomicBool::new(false);
static STATUS: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

extern "C" fn on_reload(_: libc::c_int) {
    RELOAD.store(true, Ordering::SeqCst);
}

extern "C" fn on_status(_: libc::c_int) {
    STATUS.store(true, Ordering::SeqCst);
}

/// Installs the handlers for SIGINT, SIGTERM, SIGHUP and SIGUSR1, and
/// ignores SIGPIPE.
pub fn install() {
    let stop: extern "C" fn(libc::c_int) = on_stop;
    let reload: extern "C" fn(libc::c_int) = on_reload;
    let status: extern "C" fn(libc::c_int) = on_status;
    // SAFETY: each handler only stores to an atomic, which is signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, stop as libc::sighandler_t);
        libc::signal(libc::SIGTERM, stop as libc::sighandler_t);
        libc::signal(libc::SIGHUP, reload as libc::sighandler_t);
        libc::signal(libc::SIGUSR1, status as libc::sighandler_t);
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

/// Whether a stop was asked for.
pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// Whether SIGHUP arrived since the last call: the hook where settings are
/// reloaded (several SIGHUPs before a call count as one).
pub fn take_reload_request() -> bool {
    RELOAD.swap(false, Ordering::SeqCst)
}

/// Whether SIGUSR1 arrived since the last call (several count as one).
pub fn take_status_request() -> bool {
    STATUS.swap(false, Ordering::SeqCst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hup_and_usr1_are_requests_not_deaths() {
        install();
        assert!(!take_reload_request());
        assert!(!take_status_request());
        // SAFETY: raise only sends a signal to this process, whose handlers
        // were just installed.
        unsafe {
            libc::raise(libc::SIGHUP);
            libc::raise(libc::SIGUSR1);
            libc::raise(libc::SIGUSR1);
        }
        assert!(take_reload_request());
        assert!(!take_reload_request(), "a request is taken once");
        assert!(take_status_request());
        assert!(!take_status_request());
        assert!(!stop_requested(), "neither asks for a stop");
    }
}
