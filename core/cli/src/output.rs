//! Printing results: human tables, or JSON for scripts; and what a closed stdout does.
//!
//! A one-shot command whose reader stops early (`perch nodes list --json | grep -q x`,
//! `perch completions bash | head -1`) ends the way `cat` or `ls` do: SIGPIPE, restored to its
//! default disposition before anything is printed, stops the process quietly (the shell reports
//! 141). Rust ignores SIGPIPE by default, which turns the same event into an EPIPE error that
//! `println!` panics on. The signal covers every writer at once: tables, JSON, the QR code,
//! streamed chat text and clap's own help. Long-running commands (`serve`, `node run`) keep
//! SIGPIPE ignored, so a service whose log reader goes away keeps running (and a supervisor
//! restarts a failure instead of seeing a clean SIGPIPE stop); they print through [`say!`](say).
//! Sockets are not affected: Rust's TCP writes use `send(MSG_NOSIGNAL)` on Linux and its
//! sockets carry `SO_NOSIGPIPE` on macOS, so a host that drops the connection is still an error.

use comfy_table::presets::UTF8_BORDERS_ONLY;
use comfy_table::{ContentArrangement, Table};
use serde::Serialize;

/// A table with the house style.
pub fn table(headers: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(headers.iter().copied());
    t
}

/// Prints a value as pretty JSON on stdout.
pub fn print_json<T: Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// How a closed stdout or stderr ends this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClosedPipe {
    /// One-shot commands: stop quietly by SIGPIPE, like other Unix tools.
    Stop,
    /// Long-running commands: carry on; writes to the closed pipe are dropped.
    CarryOn,
}

/// Sets what a write to a closed pipe does for the rest of the process (Unix; elsewhere the
/// default stays, and one-shot output may still report the error).
pub fn on_closed_pipe(mode: ClosedPipe) {
    #[cfg(unix)]
    {
        let disposition = match mode {
            ClosedPipe::Stop => libc::SIG_DFL,
            ClosedPipe::CarryOn => libc::SIG_IGN,
        };
        // SAFETY: called from `main` before any other thread exists or right after argument
        // parsing on the main thread, with one of the two dispositions libc defines; no
        // handler function is installed, so nothing runs in signal context.
        unsafe {
            libc::signal(libc::SIGPIPE, disposition);
        }
    }
    #[cfg(not(unix))]
    let _ = mode;
}

/// Prints a line on stdout for a long-running command, dropping it if stdout is closed (the
/// process keeps serving; its logs go to stderr).
pub fn say_line(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out
        .write_fmt(args)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
}

/// `println!` for long-running commands: see [`say_line`].
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::output::say_line(format_args!($($arg)*))
    };
}
pub(crate) use say;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// "12s ago", "3m ago", "never".
pub fn ago(ms: Option<i64>) -> String {
    let Some(ms) = ms else {
        return "never".into();
    };
    let now = now_ms();
    let s = ((now - ms).max(0)) / 1000;
    match s {
        0..=1 => "just now".into(),
        2..=59 => format!("{s}s ago"),
        60..=3599 => format!("{}m ago", s / 60),
        3600..=86_399 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86_400),
    }
}

/// The first 12 characters of an id.
pub fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ago_buckets() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        assert_eq!(ago(None), "never");
        assert_eq!(ago(Some(now)), "just now");
        assert_eq!(ago(Some(now - 30_000)), "30s ago");
        assert_eq!(ago(Some(now - 120_000)), "2m ago");
        assert_eq!(ago(Some(now - 7_200_000)), "2h ago");
        assert_eq!(ago(Some(now - 3 * 86_400_000)), "3d ago");
    }

    #[test]
    fn short_ids() {
        assert_eq!(short("abcdef0123456789"), "abcdef012345");
        assert_eq!(short("abc"), "abc");
    }
}
