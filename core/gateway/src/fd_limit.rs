//! Raising the process's open-file soft limit so the connection cap, not `EMFILE`, is what
//! turns clients away (many systems start processes at a soft limit of 1024).

/// Descriptors kept for the database, logs, mDNS and the like beyond one per connection.
const RESERVE: u64 = 256;

/// Raises the soft `RLIMIT_NOFILE` towards `max_connections` plus a reserve, up to the hard
/// limit; logs a warning if the hard limit is lower.
// rlim_t is not u64 on every unix.
#[allow(clippy::unnecessary_cast)]
#[cfg(unix)]
pub fn raise_for(max_connections: usize) {
    let want = max_connections as u64 + RESERVE;
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return;
    }
    let cur = lim.rlim_cur as u64;
    let max = lim.rlim_max as u64;
    if cur >= want {
        return;
    }
    let new = want.min(max);
    if new > cur {
        let raised = libc::rlimit {
            rlim_cur: new as libc::rlim_t,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads the struct we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            tracing::debug!("cannot raise the open-file limit");
            return;
        }
    }
    if new < want {
        tracing::warn!(
            open_files = new,
            max_connections,
            "the open-file limit is below max_connections; connections past it fail to accept"
        );
    }
}

/// Nothing to raise on this platform.
#[cfg(not(unix))]
pub fn raise_for(_max_connections: usize) {}
