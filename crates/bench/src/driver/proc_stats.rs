//! CPU time and memory of a process, read from Linux's /proc: user and system
//! time from `/proc/PID/stat` (fields 14 and 15, in clock ticks), peak and
//! current resident set size from `/proc/PID/status` (`VmHWM`, `VmRSS`).
//! The benchmark reads the seeder's and its own before and after a run.
//!
//! The reading is here (runtime may touch files); the parsing is in pure
//! functions, [`parse_stat`] and [`parse_status`], tested on sample text.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::loadgen::report::ProcessUsage;

/// Most bytes read from one /proc file (stat is under 1 KiB, status about
/// 1.5 KiB; anything longer is cut here and parsed as far as it goes).
pub const PROC_FILE_BYTES_MAX: u64 = 64 * 1024;
/// Field number (1-based, as in proc(5)) of user time in `/proc/PID/stat`.
const STAT_UTIME_FIELD: usize = 14;
/// Field number of system time in `/proc/PID/stat`.
const STAT_STIME_FIELD: usize = 15;
/// Field number of the first field after the `(comm)` field.
const STAT_FIRST_AFTER_COMM: usize = 3;

/// CPU time and memory of a process at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProcStats {
    /// CPU time spent in user mode.
    pub utime: Duration,
    /// CPU time spent in the kernel.
    pub stime: Duration,
    /// Peak resident set size (VmHWM), in bytes.
    pub peak_rss_bytes: u64,
    /// Current resident set size (VmRSS), in bytes.
    pub rss_bytes: u64,
}

/// The CPU fields of `/proc/PID/stat`, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatTicks {
    pub utime: u64,
    pub stime: u64,
}

/// The memory fields of `/proc/PID/status`, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusMemory {
    pub peak_rss_bytes: u64,
    pub rss_bytes: u64,
}

/// Why a process's figures could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("/proc/PID/stat has no ')' closing the command name: {found:?}")]
    NoCommEnd { found: String },
    #[error("/proc/PID/stat has no field {field} ({name}); it ends after field {last}")]
    StatFieldMissing {
        field: usize,
        name: &'static str,
        last: usize,
    },
    #[error(
        "/proc/PID/status has no {field} line (a kernel thread, or a process that has exited)"
    )]
    StatusFieldMissing { field: &'static str },
    #[error("{file} field {field}: expected a number, found {found:?}")]
    BadNumber {
        file: &'static str,
        field: &'static str,
        found: String,
    },
    #[error("/proc/PID/status field {field}: expected the unit \"kB\", found {found:?}")]
    BadUnit { field: &'static str, found: String },
    #[error("/proc/PID/status field {field}: {kib} kB overflows 64 bits of bytes")]
    Overflow { field: &'static str, kib: u64 },
    #[error("sysconf(_SC_CLK_TCK) gave {found}, expected a positive tick rate")]
    ClockTicks { found: libc::c_long },
}

/// At most this many characters of a bad field are kept in an error.
const EVIDENCE_CHARS_MAX: usize = 80;

fn evidence(s: &str) -> String {
    s.chars().take(EVIDENCE_CHARS_MAX).collect()
}

/// User and system time, in clock ticks, from the text of `/proc/PID/stat`.
/// The command name (field 2) may hold spaces and parentheses, so fields are
/// counted from after the last `)`.
pub fn parse_stat(text: &str) -> Result<StatTicks, ProcError> {
    let close = text.rfind(')').ok_or_else(|| ProcError::NoCommEnd {
        found: evidence(text),
    })?;
    let rest = text.get(close + 1..).unwrap_or("");
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    let get = |field: usize, name: &'static str| -> Result<u64, ProcError> {
        let raw = fields
            .get(field - STAT_FIRST_AFTER_COMM)
            .ok_or(ProcError::StatFieldMissing {
                field,
                name,
                last: fields.len() + STAT_FIRST_AFTER_COMM - 1,
            })?;
        raw.parse::<u64>().map_err(|_| ProcError::BadNumber {
            file: "/proc/PID/stat",
            field: name,
            found: evidence(raw),
        })
    };
    Ok(StatTicks {
        utime: get(STAT_UTIME_FIELD, "utime")?,
        stime: get(STAT_STIME_FIELD, "stime")?,
    })
}

/// The value of `field` (e.g. `VmHWM`) in the text of `/proc/PID/status`,
/// in bytes; the kernel writes it as `VmHWM:\t   1234 kB`.
fn status_kib_field(text: &str, field: &'static str) -> Result<u64, ProcError> {
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix(field).and_then(|r| r.strip_prefix(':')))
        .ok_or(ProcError::StatusFieldMissing { field })?;
    let mut parts = line.split_ascii_whitespace();
    let number = parts.next().unwrap_or("");
    let kib = number.parse::<u64>().map_err(|_| ProcError::BadNumber {
        file: "/proc/PID/status",
        field,
        found: evidence(line.trim()),
    })?;
    let unit = parts.next().unwrap_or("");
    if unit != "kB" || parts.next().is_some() {
        return Err(ProcError::BadUnit {
            field,
            found: evidence(line.trim()),
        });
    }
    kib.checked_mul(1024)
        .ok_or(ProcError::Overflow { field, kib })
}

/// Peak and current resident set size from the text of `/proc/PID/status`.
pub fn parse_status(text: &str) -> Result<StatusMemory, ProcError> {
    Ok(StatusMemory {
        peak_rss_bytes: status_kib_field(text, "VmHWM")?,
        rss_bytes: status_kib_field(text, "VmRSS")?,
    })
}

/// `ticks` clock ticks at `ticks_per_s` a second, as a duration (exact to
/// the nanosecond, rounded down).
pub fn ticks_to_duration(ticks: u64, ticks_per_s: u64) -> Duration {
    if ticks_per_s == 0 {
        return Duration::ZERO;
    }
    let secs = ticks / ticks_per_s;
    let frac = ticks % ticks_per_s;
    let nanos = u128::from(frac) * 1_000_000_000 / u128::from(ticks_per_s);
    Duration::from_secs(secs) + Duration::from_nanos(u64::try_from(nanos).unwrap_or(0))
}

/// Combines the parsed fields into [`ProcStats`].
pub fn stats_from(ticks: StatTicks, memory: StatusMemory, ticks_per_s: u64) -> ProcStats {
    ProcStats {
        utime: ticks_to_duration(ticks.utime, ticks_per_s),
        stime: ticks_to_duration(ticks.stime, ticks_per_s),
        peak_rss_bytes: memory.peak_rss_bytes,
        rss_bytes: memory.rss_bytes,
    }
}

/// The kernel's clock ticks per second (`sysconf(_SC_CLK_TCK)`, 100 on
/// almost every Linux system).
pub fn clock_ticks_per_s() -> Result<u64, ProcError> {
    // SAFETY: sysconf only reads a configuration value.
    let found = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(found)
        .ok()
        .filter(|&t| t > 0)
        .ok_or(ProcError::ClockTicks { found })
}

fn read_limited(path: &Path) -> Result<String, ProcError> {
    let err = |source| ProcError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(err)?;
    let mut bytes = Vec::new();
    file.take(PROC_FILE_BYTES_MAX)
        .read_to_end(&mut bytes)
        .map_err(err)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Reads the figures of the process whose /proc directory is `dir`.
fn read_dir(dir: &Path) -> Result<ProcStats, ProcError> {
    let ticks = parse_stat(&read_limited(&dir.join("stat"))?)?;
    let memory = parse_status(&read_limited(&dir.join("status"))?)?;
    Ok(stats_from(ticks, memory, clock_ticks_per_s()?))
}

/// The CPU time and memory of process `pid`.
pub fn read(pid: u32) -> Result<ProcStats, ProcError> {
    read_dir(&Path::new("/proc").join(pid.to_string()))
}

/// The CPU time and memory of this process (all its threads).
pub fn self_stats() -> Result<ProcStats, ProcError> {
    read_dir(Path::new("/proc/self"))
}

/// What happened between two readings of one process: the CPU time spent
/// in between (zero if a counter went backwards, e.g. a different process),
/// and the memory figures of `after`.
pub fn delta(before: &ProcStats, after: &ProcStats) -> ProcStats {
    ProcStats {
        utime: after.utime.saturating_sub(before.utime),
        stime: after.stime.saturating_sub(before.stime),
        peak_rss_bytes: after.peak_rss_bytes,
        rss_bytes: after.rss_bytes,
    }
}

impl From<ProcStats> for ProcessUsage {
    /// The figures the report wants: CPU time and peak RSS (pass a
    /// [`delta`] for the CPU spent during a run).
    fn from(s: ProcStats) -> Self {
        ProcessUsage {
            user: s.utime,
            system: s.stime,
            peak_rss_bytes: Some(s.peak_rss_bytes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real-looking stat line whose command name holds spaces and ")".
    const STAT: &str = "4242 (my (odd) prog) S 1 4242 4242 0 -1 4194560 1234 0 5 0 \
        731 259 0 0 20 0 3 0 123456 1048576000 2560 18446744073709551615 1 1 0 0 0 0 0 \
        4096 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n";

    const STATUS: &str = "Name:\tringseed\nUmask:\t0022\nState:\tS (sleeping)\n\
        Tgid:\t4242\nVmPeak:\t  1100000 kB\nVmSize:\t  1024000 kB\nVmLck:\t       0 kB\n\
        VmHWM:\t    20480 kB\nVmRSS:\t    10240 kB\nRssAnon:\t    8000 kB\nThreads:\t3\n";

    #[test]
    fn stat_fields_after_the_last_paren() {
        assert_eq!(
            parse_stat(STAT).unwrap(),
            StatTicks {
                utime: 731,
                stime: 259
            }
        );
        // A plain name, and a name that is only parentheses and spaces.
        let plain = "1 (init) S 0 1 1 0 -1 4194560 0 0 0 0 7 8 0 0";
        assert_eq!(parse_stat(plain).unwrap(), StatTicks { utime: 7, stime: 8 });
        let odd = "9 ()) ) () S 0 1 1 0 -1 4194560 0 0 0 0 70 80";
        assert_eq!(
            parse_stat(odd).unwrap(),
            StatTicks {
                utime: 70,
                stime: 80
            }
        );
    }

    #[test]
    fn stat_errors() {
        assert!(matches!(
            parse_stat("4242 (no end S 1 2 3"),
            Err(ProcError::NoCommEnd { found }) if found.starts_with("4242 (no end")
        ));
        assert!(matches!(
            parse_stat("1 (x) S 0 1 1 0 -1 4194560 0 0 0 0 7"),
            Err(ProcError::StatFieldMissing {
                field: 15,
                name: "stime",
                last: 14
            })
        ));
        assert!(matches!(
            parse_stat("1 (x) S"),
            Err(ProcError::StatFieldMissing {
                field: 14,
                name: "utime",
                last: 3
            })
        ));
        assert!(matches!(
            parse_stat("1 (x) S 0 1 1 0 -1 4194560 0 0 0 0 -7 8"),
            Err(ProcError::BadNumber { field: "utime", found, .. }) if found == "-7"
        ));
        assert!(matches!(
            parse_stat("1 (x) S 0 1 1 0 -1 4194560 0 0 0 0 7 8x"),
            Err(ProcError::BadNumber { field: "stime", found, .. }) if found == "8x"
        ));
        assert!(matches!(parse_stat(""), Err(ProcError::NoCommEnd { .. })));
    }

    #[test]
    fn status_memory() {
        assert_eq!(
            parse_status(STATUS).unwrap(),
            StatusMemory {
                peak_rss_bytes: 20480 * 1024,
                rss_bytes: 10240 * 1024
            }
        );
    }

    #[test]
    fn status_errors() {
        // A kernel thread has no Vm lines.
        let kthread = "Name:\tkthreadd\nState:\tS (sleeping)\nThreads:\t1\n";
        assert!(matches!(
            parse_status(kthread),
            Err(ProcError::StatusFieldMissing { field: "VmHWM" })
        ));
        let no_rss = "VmHWM:\t 5 kB\n";
        assert!(matches!(
            parse_status(no_rss),
            Err(ProcError::StatusFieldMissing { field: "VmRSS" })
        ));
        // VmHWMx is a different field, not VmHWM.
        assert!(matches!(
            parse_status("VmHWMx:\t 5 kB\nVmRSS:\t 1 kB\n"),
            Err(ProcError::StatusFieldMissing { field: "VmHWM" })
        ));
        assert!(matches!(
            parse_status("VmHWM:\t lots kB\nVmRSS:\t 1 kB\n"),
            Err(ProcError::BadNumber { field: "VmHWM", found, .. }) if found == "lots kB"
        ));
        assert!(matches!(
            parse_status("VmHWM:\t 5 MB\nVmRSS:\t 1 kB\n"),
            Err(ProcError::BadUnit { field: "VmHWM", found }) if found == "5 MB"
        ));
        assert!(matches!(
            parse_status("VmHWM:\t 5\nVmRSS:\t 1 kB\n"),
            Err(ProcError::BadUnit { field: "VmHWM", .. })
        ));
        assert!(matches!(
            parse_status("VmHWM:\t 5 kB\nVmRSS:\t 1 kB extra\n"),
            Err(ProcError::BadUnit { field: "VmRSS", .. })
        ));
        let huge = format!("VmHWM:\t {} kB\nVmRSS:\t 1 kB\n", u64::MAX / 1000);
        assert!(matches!(
            parse_status(&huge),
            Err(ProcError::Overflow { field: "VmHWM", .. })
        ));
    }

    #[test]
    fn ticks_convert_exactly() {
        assert_eq!(ticks_to_duration(0, 100), Duration::ZERO);
        assert_eq!(ticks_to_duration(731, 100), Duration::from_millis(7310));
        assert_eq!(ticks_to_duration(1, 3), Duration::from_nanos(333_333_333));
        assert_eq!(ticks_to_duration(5, 0), Duration::ZERO);
        assert_eq!(
            ticks_to_duration(u64::MAX, 1),
            Duration::from_secs(u64::MAX)
        );
        let s = stats_from(
            parse_stat(STAT).unwrap(),
            parse_status(STATUS).unwrap(),
            100,
        );
        assert_eq!(s.utime, Duration::from_millis(7310));
        assert_eq!(s.stime, Duration::from_millis(2590));
        assert_eq!(s.peak_rss_bytes, 20 << 20);
        assert_eq!(s.rss_bytes, 10 << 20);
    }

    #[test]
    fn delta_and_usage() {
        let before = ProcStats {
            utime: Duration::from_secs(1),
            stime: Duration::from_secs(2),
            peak_rss_bytes: 100,
            rss_bytes: 90,
        };
        let after = ProcStats {
            utime: Duration::from_secs(4),
            stime: Duration::from_secs(3),
            peak_rss_bytes: 500,
            rss_bytes: 300,
        };
        let d = delta(&before, &after);
        assert_eq!(d.utime, Duration::from_secs(3));
        assert_eq!(d.stime, Duration::from_secs(1));
        assert_eq!((d.peak_rss_bytes, d.rss_bytes), (500, 300));
        let backwards = delta(&after, &before);
        assert_eq!(
            (backwards.utime, backwards.stime),
            (Duration::ZERO, Duration::ZERO)
        );
        let u = ProcessUsage::from(d);
        assert_eq!(u.user, Duration::from_secs(3));
        assert_eq!(u.system, Duration::from_secs(1));
        assert_eq!(u.peak_rss_bytes, Some(500));
    }

    #[test]
    fn reads_this_process() {
        let ticks = clock_ticks_per_s().unwrap();
        assert!(ticks > 0);
        let before = self_stats().unwrap();
        assert!(before.peak_rss_bytes > 0);
        assert!(before.peak_rss_bytes >= before.rss_bytes);
        // Burn some CPU (bounded) so user time can grow by at least a tick.
        let mut x = 1u64;
        let mut spins = 0u64;
        let deadline = Duration::from_secs(5);
        let start = std::time::Instant::now();
        while start.elapsed() < deadline && spins < 2_000_000_000 {
            for _ in 0..100_000 {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            }
            spins += 100_000;
            let now = self_stats().unwrap();
            if now.utime.saturating_add(now.stime) > before.utime.saturating_add(before.stime) {
                break;
            }
        }
        std::hint::black_box(x);
        let after = read(std::process::id()).unwrap();
        let d = delta(&before, &after);
        assert!(d.utime + d.stime > Duration::ZERO, "{before:?} {after:?}");
    }

    #[test]
    fn missing_process_is_a_read_error() {
        // PIDs stop at 2^22 on Linux, so this one never exists.
        match read(u32::MAX) {
            Err(ProcError::Read { path, source }) => {
                assert_eq!(path, PathBuf::from("/proc/4294967295/stat"));
                assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
            }
            other => panic!("expected a read error, got {other:?}"),
        }
    }
}
