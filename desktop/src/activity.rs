//! This computer's idle time (seconds since the last keyboard or mouse input), so presence
//! knows when the user is at this desk and the host can pick the active device.
//!
//! The reading comes from `user-idle2` (GNOME's Mutter over D-Bus, then the X11 screen-saver
//! extension, then the screen saver over D-Bus), sampled on a thread of its own every
//! [`SAMPLE_EVERY`]: those calls block, and the node runtime asks from async code. Two
//! readings are treated as unknown rather than trusted:
//! - no `DISPLAY`: the X11 path dereferences a display it could not open, so without one the
//!   library is not called at all (a Wayland session without XWayland reports nothing);
//! - exactly zero: the screen-saver fallback answers 0 whenever the screen is not locked,
//!   which would make this computer look permanently in use.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use perch_node::ActivitySource;

/// How often the idle time is read.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(2);

/// The latest reading, shared with the sampling thread.
#[derive(Debug, Default)]
pub struct DesktopActivity {
    latest: Mutex<Option<Reading>>,
}

#[derive(Debug, Clone, Copy)]
struct Reading {
    idle: Duration,
    at: Instant,
}

impl DesktopActivity {
    /// Starts sampling; the thread ends once the last handle is dropped. `None` when this
    /// session has no X display to ask.
    pub fn start() -> Option<Arc<Self>> {
        std::env::var_os("DISPLAY")?;
        let me = Arc::new(Self::default());
        me.sample();
        let weak: Weak<Self> = Arc::downgrade(&me);
        let spawned = std::thread::Builder::new()
            .name("perch-idle".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(SAMPLE_EVERY);
                    match weak.upgrade() {
                        Some(me) => me.sample(),
                        None => return,
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the idle-time thread; presence will not know when you are here");
            return None;
        }
        Some(me)
    }

    fn sample(&self) {
        let reading = read_idle().map(|idle| Reading {
            idle,
            at: Instant::now(),
        });
        if let Ok(mut latest) = self.latest.lock() {
            *latest = reading;
        }
    }
}

/// One reading from the OS, with the untrustworthy answers turned into `None`.
fn read_idle() -> Option<Duration> {
    match user_idle2::UserIdle::get_time() {
        Ok(t) => trusted(t.duration()),
        Err(e) => {
            tracing::debug!(error = ?e, "no idle time from the desktop");
            None
        }
    }
}

/// Zero means "the screen is not locked" from the screen-saver fallback, not "input now".
fn trusted(idle: Duration) -> Option<Duration> {
    (!idle.is_zero()).then_some(idle)
}

impl ActivitySource for DesktopActivity {
    fn idle_seconds(&self) -> Option<u64> {
        let latest = *self.latest.lock().ok()?;
        // A reading older than a few samples means the thread is stuck: say nothing.
        latest
            .filter(|r| r.at.elapsed() <= SAMPLE_EVERY * 5)
            .map(|r| r.idle.as_secs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_is_not_trusted() {
        assert_eq!(trusted(Duration::ZERO), None);
        assert_eq!(
            trusted(Duration::from_millis(1500)),
            Some(Duration::from_millis(1500))
        );
    }

    #[test]
    fn stale_or_missing_readings_say_nothing() {
        let a = DesktopActivity::default();
        assert_eq!(a.idle_seconds(), None);
        *a.latest.lock().unwrap() = Some(Reading {
            idle: Duration::from_secs(42),
            at: Instant::now(),
        });
        assert_eq!(a.idle_seconds(), Some(42));
        if let Some(old) = Instant::now().checked_sub(SAMPLE_EVERY * 6) {
            *a.latest.lock().unwrap() = Some(Reading {
                idle: Duration::from_secs(42),
                at: old,
            });
            assert_eq!(a.idle_seconds(), None);
        }
    }
}
