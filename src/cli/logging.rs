//! Logging for the binary: `tracing` events from the engine and the
//! commands go to stderr, one line each.
//!
//! On a terminal (or any plain stderr) a line is `TIME LEVEL message
//! fields`, the time in UTC (RFC 3339). Under systemd, when stderr is the
//! journal (`JOURNAL_STREAM` names stderr's device and inode), the journal
//! adds its own time stamp: a line is `<N>message fields`, where `<N>` is
//! the syslog priority journald reads (3 error, 4 warning, 6 info, 7
//! debug), so `journalctl -p warning` works.
//!
//! The level comes from `RINGSEED_LOG` (the `tracing-subscriber` filter
//! syntax: `debug`, `warn`, `ringseed=debug,info`), else `info`. A bad
//! filter is reported once and the default used.

use std::fmt;
use std::os::unix::fs::MetadataExt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// The environment variable holding the log filter.
pub const LOG_ENV: &str = "RINGSEED_LOG";
/// The filter when `RINGSEED_LOG` is unset.
const DEFAULT_FILTER: &str = "info";

/// Where the lines go, which decides their shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    /// A terminal, a file or a pipe: lines carry a time stamp.
    Plain,
    /// The systemd journal: a priority prefix, no time stamp.
    Journal,
}

impl Sink {
    /// The journal when `JOURNAL_STREAM` (`DEVICE:INODE`, set by systemd)
    /// names the file stderr is, plain otherwise.
    pub fn detect() -> Sink {
        let Ok(stream) = std::env::var("JOURNAL_STREAM") else {
            return Sink::Plain;
        };
        let Ok(meta) = std::fs::metadata("/proc/self/fd/2") else {
            return Sink::Plain;
        };
        if journal_stream_matches(&stream, meta.dev(), meta.ino()) {
            Sink::Journal
        } else {
            Sink::Plain
        }
    }
}

/// Whether `JOURNAL_STREAM`'s `DEVICE:INODE` is this device and inode.
fn journal_stream_matches(value: &str, dev: u64, ino: u64) -> bool {
    let Some((d, i)) = value.split_once(':') else {
        return false;
    };
    d.trim().parse::<u64>() == Ok(dev) && i.trim().parse::<u64>() == Ok(ino)
}

/// The one-line shape of an event for `sink`.
struct LineFormat {
    sink: Sink,
}

/// The syslog priority journald reads from a `<N>` prefix.
fn syslog_priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

impl<S, N> FormatEvent<S, N> for LineFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let level = event.metadata().level();
        match self.sink {
            Sink::Journal => write!(writer, "<{}>", syslog_priority(level))?,
            Sink::Plain => {
                SystemTime.format_time(&mut writer)?;
                write!(writer, " {level:>5} ")?;
            }
        }
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// Installs the subscriber. Call once, first thing in `main`.
pub fn init() {
    let (filter, bad) = match std::env::var(LOG_ENV) {
        Ok(spec) => match EnvFilter::try_new(&spec) {
            Ok(f) => (f, None),
            Err(e) => (EnvFilter::new(DEFAULT_FILTER), Some((spec, e))),
        },
        Err(_) => (EnvFilter::new(DEFAULT_FILTER), None),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .event_format(LineFormat {
            sink: Sink::detect(),
        })
        .try_init();
    if let Some((spec, e)) = bad {
        tracing::warn!("{LOG_ENV}={spec:?} is not a log filter ({e}); logging at {DEFAULT_FILTER}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_stream_must_name_this_file() {
        assert!(journal_stream_matches("8:1234", 8, 1234));
        assert!(!journal_stream_matches("8:1234", 8, 1235));
        assert!(!journal_stream_matches("9:1234", 8, 1234));
        assert!(!journal_stream_matches("garbage", 8, 1234));
        assert!(!journal_stream_matches("", 8, 1234));
    }

    #[test]
    fn journald_priorities_follow_syslog() {
        assert_eq!(syslog_priority(&Level::ERROR), 3);
        assert_eq!(syslog_priority(&Level::WARN), 4);
        assert_eq!(syslog_priority(&Level::INFO), 6);
        assert_eq!(syslog_priority(&Level::DEBUG), 7);
    }
}
