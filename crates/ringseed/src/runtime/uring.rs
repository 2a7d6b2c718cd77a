//! Creating io_uring instances, and telling the user clearly why that failed.
//!
//! Every ring is meant for one thread: it is set up with SINGLE_ISSUER and
//! DEFER_TASKRUN where the kernel has them (6.1+), else COOP_TASKRUN (5.19+),
//! else with no flags. Anything that submits or reaps lives in the caller; this
//! module only builds rings and checks that the kernel lets us build one.

use std::io;

use io_uring::IoUring;

/// Fewest submission-queue entries a ring may be asked for.
pub const RING_ENTRIES_MIN: u32 = 1;
/// Most submission-queue entries a ring may be asked for (the kernel's own cap).
pub const RING_ENTRIES_MAX: u32 = 32_768;
/// Entries of the throw-away ring built by [`check_usable`].
const PROBE_RING_ENTRIES: u32 = 4;

/// How a ring was set up, from the fastest mode down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingMode {
    /// SINGLE_ISSUER + DEFER_TASKRUN (+ COOP_TASKRUN): completions run only when
    /// the owner waits for them.
    DeferTaskrun,
    /// COOP_TASKRUN: no inter-processor interrupts for completions.
    CoopTaskrun,
    /// No setup flags.
    Plain,
}

/// Why no io_uring could be created.
#[derive(Debug, thiserror::Error)]
pub enum UringError {
    /// The kernel has no io_uring at all (ENOSYS).
    #[error(
        "io_uring is not available: the kernel does not provide it (ENOSYS). ringseed needs \
         Linux 5.10 or newer built with CONFIG_IO_URING; upgrade the kernel"
    )]
    NotSupported,
    /// io_uring exists but this process may not use it (EPERM / EACCES).
    #[error("io_uring is forbidden for this process ({errno_name}): {hint}")]
    Forbidden {
        errno_name: &'static str,
        hint: String,
    },
    /// The ring size asked for is outside what this module accepts.
    #[error("ring size {entries} is out of range: expected {min} to {max} entries")]
    Entries { entries: u32, min: u32, max: u32 },
    /// Anything else the kernel answered.
    #[error("io_uring setup failed: {0}")]
    Setup(#[source] io::Error),
}

/// The advice for an EPERM/EACCES from io_uring_setup, naming what to check.
fn forbidden_hint(disabled_sysctl: Option<u8>) -> String {
    let sysctl = match disabled_sysctl {
        Some(0) => "kernel.io_uring_disabled is 0 here, so it is not the cause".to_string(),
        Some(v) => format!(
            "kernel.io_uring_disabled is {v} here; set it to 0 \
             (`sysctl -w kernel.io_uring_disabled=0`, as root)"
        ),
        None => "check that `sysctl kernel.io_uring_disabled` is 0".to_string(),
    };
    format!(
        "{sysctl}. In a container: Docker's default seccomp profile blocks io_uring since \
         Docker 25, so run with a seccomp profile that allows io_uring_setup, io_uring_enter \
         and io_uring_register (or --security-opt seccomp=unconfined); other sandboxes \
         (gVisor, some SELinux/AppArmor policies) may block it as well"
    )
}

/// Reads `kernel.io_uring_disabled` (absent before Linux 6.6).
fn io_uring_disabled_sysctl() -> Option<u8> {
    let text = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled").ok()?;
    text.trim().parse().ok()
}

/// Maps a failed io_uring_setup to a [`UringError`].
fn classify(err: io::Error) -> UringError {
    match err.raw_os_error() {
        Some(libc::ENOSYS) => UringError::NotSupported,
        Some(libc::EPERM) => UringError::Forbidden {
            errno_name: "EPERM",
            hint: forbidden_hint(io_uring_disabled_sysctl()),
        },
        Some(libc::EACCES) => UringError::Forbidden {
            errno_name: "EACCES",
            hint: forbidden_hint(io_uring_disabled_sysctl()),
        },
        _ => UringError::Setup(err),
    }
}

/// Applies one set of setup flags to a ring builder.
type Configure = fn(&mut io_uring::Builder);

/// Builds a ring of `entries` submission entries for use by one thread only,
/// with the best setup flags this kernel accepts.
pub fn new_ring(entries: u32) -> Result<(IoUring, RingMode), UringError> {
    if !(RING_ENTRIES_MIN..=RING_ENTRIES_MAX).contains(&entries) {
        return Err(UringError::Entries {
            entries,
            min: RING_ENTRIES_MIN,
            max: RING_ENTRIES_MAX,
        });
    }
    // Newest first; EINVAL means "flag unknown to this kernel": try the next.
    let attempts: [(RingMode, Configure); 3] = [
        (RingMode::DeferTaskrun, |b| {
            b.setup_single_issuer()
                .setup_defer_taskrun()
                .setup_coop_taskrun();
        }),
        (RingMode::CoopTaskrun, |b| {
            b.setup_coop_taskrun();
        }),
        (RingMode::Plain, |_| {}),
    ];
    let mut last = None;
    for (mode, configure) in attempts {
        let mut builder = IoUring::builder();
        configure(&mut builder);
        match builder.build(entries) {
            Ok(ring) => return Ok((ring, mode)),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => last = Some(e),
            Err(e) => return Err(classify(e)),
        }
    }
    Err(UringError::Setup(last.unwrap_or_else(|| {
        io::Error::other("no io_uring setup mode was accepted")
    })))
}

/// Checks that this process can create an io_uring; the error says why not
/// and what to do about it.
pub fn check_usable() -> Result<RingMode, UringError> {
    new_ring(PROBE_RING_ENTRIES).map(|(_, mode)| mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ring_can_be_built_here() {
        // The test machines allow io_uring; if not, the message must say why.
        match check_usable() {
            Ok(_) => {}
            Err(e) => panic!("io_uring unusable on the test machine: {e}"),
        }
    }

    /// Runs `check_usable` on a fresh thread whose io_uring_setup calls fail
    /// with `errno` (a seccomp filter, as Docker's profile installs; it binds
    /// that thread only).
    fn check_under_seccomp(errno: i32) -> Result<RingMode, UringError> {
        std::thread::spawn(move || {
            const LD_W_ABS: u16 = 0x20;
            const JEQ_K: u16 = 0x15;
            const RET_K: u16 = 0x06;
            let nr = u32::try_from(libc::SYS_io_uring_setup).unwrap_or(u32::MAX);
            let mut prog = [
                // A = seccomp_data.nr
                libc::sock_filter {
                    code: LD_W_ABS,
                    jt: 0,
                    jf: 0,
                    k: 0,
                },
                libc::sock_filter {
                    code: JEQ_K,
                    jt: 0,
                    jf: 1,
                    k: nr,
                },
                libc::sock_filter {
                    code: RET_K,
                    jt: 0,
                    jf: 0,
                    k: libc::SECCOMP_RET_ERRNO | (errno as u32 & 0xffff),
                },
                libc::sock_filter {
                    code: RET_K,
                    jt: 0,
                    jf: 0,
                    k: libc::SECCOMP_RET_ALLOW,
                },
            ];
            let fprog = libc::sock_fprog {
                len: prog.len() as u16,
                filter: prog.as_mut_ptr(),
            };
            // SAFETY: plain prctl calls; `fprog` points at a live filter.
            unsafe {
                assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
                assert_eq!(
                    libc::prctl(
                        libc::PR_SET_SECCOMP,
                        libc::SECCOMP_MODE_FILTER,
                        &fprog as *const libc::sock_fprog
                    ),
                    0
                );
            }
            check_usable()
        })
        .join()
        .unwrap_or_else(|_| panic!("seccomp test thread panicked"))
    }

    #[test]
    fn seccomp_refusal_is_explained() {
        match check_under_seccomp(libc::EPERM) {
            Err(e @ UringError::Forbidden { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains("EPERM") && msg.contains("seccomp"), "{msg}");
            }
            other => panic!("expected Forbidden, got {other:?}"),
        }
        assert!(matches!(
            check_under_seccomp(libc::ENOSYS),
            Err(UringError::NotSupported)
        ));
        // The filter bound only its own thread.
        assert!(check_usable().is_ok());
    }

    #[test]
    fn ring_size_is_bounded() {
        assert!(matches!(
            new_ring(0),
            Err(UringError::Entries { entries: 0, .. })
        ));
        assert!(matches!(
            new_ring(RING_ENTRIES_MAX + 1),
            Err(UringError::Entries { .. })
        ));
    }

    #[test]
    fn errors_name_cause_and_remedy() {
        assert!(classify(io::Error::from_raw_os_error(libc::ENOSYS))
            .to_string()
            .contains("kernel"));
        let eperm = classify(io::Error::from_raw_os_error(libc::EPERM)).to_string();
        assert!(eperm.contains("EPERM"), "{eperm}");
        assert!(eperm.contains("seccomp"), "{eperm}");
        assert!(eperm.contains("io_uring_disabled"), "{eperm}");
        let eacces = classify(io::Error::from_raw_os_error(libc::EACCES)).to_string();
        assert!(eacces.contains("EACCES"), "{eacces}");
        assert!(matches!(
            classify(io::Error::from_raw_os_error(libc::ENOMEM)),
            UringError::Setup(_)
        ));
    }

    #[test]
    fn hint_reports_the_sysctl_value() {
        assert!(forbidden_hint(Some(2)).contains("is 2 here"));
        assert!(forbidden_hint(Some(0)).contains("not the cause"));
        assert!(
            forbidden_hint(None).contains("must be 0") || forbidden_hint(None).contains("is 0")
        );
    }
}
