//! Reconnect delays: exponential backoff with "equal jitter", capped.
//!
//! The n-th delay (from 0) is drawn from `[ceiling/2, ceiling]` with
//! `ceiling = min(cap, base × 2ⁿ)`, never below `base`: the spread keeps several clients from
//! reconnecting in lock step after a host restart, the cap bounds how long a user waits once
//! the host is back. The node runtime uses the same scheme for its own connection.

use std::time::Duration;

/// Default first delay.
pub const DEFAULT_BASE: Duration = Duration::from_millis(250);
/// Default longest delay.
pub const DEFAULT_CAP: Duration = Duration::from_secs(10);

/// Backoff state: [`Backoff::next_delay`] after each failure, [`Backoff::reset`] after a
/// success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    /// A backoff from `base` up to `cap` (a zero base becomes 1 ms; a cap below the base is
    /// raised to it).
    pub fn new(base: Duration, cap: Duration) -> Self {
        let base = base.max(Duration::from_millis(1));
        Self {
            base,
            cap: cap.max(base),
            attempt: 0,
        }
    }

    /// Forgets past failures, so the next delay is short again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// The next delay for a jitter sample `unit` in `[0, 1]` (clamped); pure, for tests.
    pub fn next_delay_with(&mut self, unit: f64) -> Duration {
        let factor = 1u32 << self.attempt.min(20);
        let ceiling = self.base.saturating_mul(factor).min(self.cap);
        let unit = if unit.is_finite() {
            unit.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let half = ceiling / 2;
        self.attempt = self.attempt.saturating_add(1);
        (half + (ceiling - half).mul_f64(unit)).clamp(self.base, self.cap)
    }

    /// The next delay with random jitter.
    pub fn next_delay(&mut self) -> Duration {
        self.next_delay_with(rand::random())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_without_jitter() {
        let mut b = Backoff::new(Duration::from_millis(250), Duration::from_secs(2));
        let got: Vec<u128> = (0..6).map(|_| b.next_delay_with(1.0).as_millis()).collect();
        assert_eq!(got, [250, 500, 1000, 2000, 2000, 2000]);
    }

    #[test]
    fn jitter_stays_in_the_upper_half_and_above_the_floor() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
        for _ in 0..4 {
            b.next_delay_with(0.0);
        }
        // Fifth step: ceiling 1.6 s, lowest pick is half of it.
        assert_eq!(b.next_delay_with(0.0), Duration::from_millis(800));
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        for _ in 0..1000 {
            let d = b.next_delay();
            assert!(
                (Duration::from_millis(100)..=Duration::from_secs(1)).contains(&d),
                "{d:?}"
            );
        }
    }

    #[test]
    fn reset_and_odd_configs() {
        let mut b = Backoff::new(Duration::ZERO, Duration::ZERO);
        assert_eq!(b.next_delay_with(f64::NAN), Duration::from_millis(1));
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        for _ in 0..100 {
            b.next_delay_with(1.0);
        }
        assert_eq!(b.next_delay_with(1.0), Duration::from_secs(60));
        b.reset();
        assert_eq!(b.next_delay_with(1.0), Duration::from_secs(1));
    }
}
