//! The open-file limit, raised for tests that hold thousands of sockets (and for the `perch`
//! processes they start, which inherit it).

/// Raises the soft open-file limit to `want`; `Err` with the reason if the hard limit is lower.
#[cfg(unix)]
// rlim_t is not u64 on every unix.
#[allow(clippy::unnecessary_cast)]
pub fn raise_nofile(want: u64) -> Result<(), String> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err("getrlimit failed".into());
    }
    if (lim.rlim_cur as u64) >= want {
        return Ok(());
    }
    if (lim.rlim_max as u64) < want {
        return Err(format!(
            "the hard open-file limit is {} and this test needs {want}",
            lim.rlim_max
        ));
    }
    let raised = libc::rlimit {
        rlim_cur: want as libc::rlim_t,
        rlim_max: lim.rlim_max,
    };
    // SAFETY: setrlimit reads the struct we own.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
        return Err("setrlimit failed".into());
    }
    Ok(())
}

/// Elsewhere the limit is left alone and the test says why it skips.
#[cfg(not(unix))]
pub fn raise_nofile(_want: u64) -> Result<(), String> {
    Err("raising the open-file limit is only done on unix".into())
}
