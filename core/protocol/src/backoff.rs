//! Reconnect delays for every Perch client (the node runtime, the operator client, the
//! desktop app's host supervisor): exponential backoff with jitter, as a pure type its caller
//! drives.
//!
//! The n-th delay (counting from 0) is drawn uniformly from `[ceiling/2, ceiling]`, where
//! `ceiling = min(cap, base × 2ⁿ)`, and never falls below `base` ("equal jitter"): the
//! spread keeps a fleet of nodes from reconnecting in lock step after a host restart, the
//! floor keeps one node from hammering a host that is down.

use std::time::Duration;

/// Default first delay (the node runtime's).
pub const DEFAULT_BASE: Duration = Duration::from_millis(500);
/// Default longest delay (the node runtime's).
pub const DEFAULT_CAP: Duration = Duration::from_secs(30);

/// Exponential backoff state; call [`Backoff::next_delay`] after each failure and
/// [`Backoff::reset`] after a success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(DEFAULT_BASE, DEFAULT_CAP)
    }
}

impl Backoff {
    /// A backoff starting at `base` and never exceeding `cap` (a cap below the base is raised
    /// to the base, and a zero base becomes 1 ms, so delays always grow from something).
    pub fn new(base: Duration, cap: Duration) -> Self {
        let base = base.max(Duration::from_millis(1));
        Self {
            base,
            cap: cap.max(base),
            attempt: 0,
        }
    }

    /// The smallest delay this backoff ever returns.
    pub fn floor(&self) -> Duration {
        self.base
    }

    /// The largest delay this backoff ever returns.
    pub fn cap(&self) -> Duration {
        self.cap
    }

    /// How many delays were handed out since the last reset.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Forgets past failures: the next delay is short again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// The upper bound of the current step, before jitter.
    pub fn current_ceiling(&self) -> Duration {
        // 2^20 × base is far past any sensible cap; stop doubling there to avoid overflow.
        let factor = 1u32 << self.attempt.min(20);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// The next delay for a jitter sample `unit` in `[0, 1]` (values outside are clamped),
    /// and advances the step. Pure, so tests can pin the jitter.
    pub fn next_delay_with(&mut self, unit: f64) -> Duration {
        let ceiling = self.current_ceiling();
        let unit = if unit.is_finite() {
            unit.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let half = ceiling / 2;
        let delay = half + (ceiling - half).mul_f64(unit);
        self.attempt = self.attempt.saturating_add(1);
        delay.clamp(self.base, self.cap)
    }

    /// The next delay with random jitter, and advances the step.
    pub fn next_delay(&mut self) -> Duration {
        self.next_delay_with(jitter_unit())
    }
}

/// A uniform sample in `[0, 1)` from the OS's random source; the middle of the range if that
/// fails, which only loses the spread, never the delay.
fn jitter_unit() -> f64 {
    let mut bytes = [0u8; 8];
    match getrandom::fill(&mut bytes) {
        // 53 random bits: every value is exactly representable as an f64.
        Ok(()) => (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64,
        Err(_) => 0.5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLES: [f64; 7] = [0.0, 0.1, 0.25, 0.5, 0.75, 0.999, 1.0];

    #[test]
    fn never_above_cap_never_below_floor() {
        for &unit in &SAMPLES {
            let mut b = Backoff::default();
            for _ in 0..64 {
                let d = b.next_delay_with(unit);
                assert!(d <= DEFAULT_CAP, "{d:?} above cap");
                assert!(d >= DEFAULT_BASE, "{d:?} below floor");
            }
        }
        let mut b = Backoff::default();
        for _ in 0..1000 {
            let d = b.next_delay();
            assert!((DEFAULT_BASE..=DEFAULT_CAP).contains(&d), "{d:?}");
        }
    }

    #[test]
    fn grows_until_the_cap() {
        for &unit in &SAMPLES {
            let mut b = Backoff::default();
            let mut last = Duration::ZERO;
            let mut delays = Vec::new();
            for _ in 0..12 {
                let d = b.next_delay_with(unit);
                assert!(d >= last, "{d:?} < {last:?} at unit {unit}");
                last = d;
                delays.push(d);
            }
            assert!(
                delays[3] > delays[0],
                "no growth at unit {unit}: {delays:?}"
            );
            // Past 2^6 × 500 ms the ceiling is the cap; the delay sits in its upper half.
            assert!(last >= DEFAULT_CAP / 2, "{last:?}");
        }
        // Without jitter at the top of the range, the delays double exactly.
        let mut b = Backoff::default();
        let got: Vec<u64> = (0..8)
            .map(|_| b.next_delay_with(1.0).as_millis() as u64)
            .collect();
        assert_eq!(got, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000]);
    }

    #[test]
    fn jitter_spreads_within_half_the_ceiling() {
        let mut lo = Backoff::default();
        let mut hi = Backoff::default();
        for _ in 0..5 {
            lo.next_delay_with(0.0);
            hi.next_delay_with(1.0);
        }
        // Sixth step: ceiling 16 s.
        assert_eq!(lo.next_delay_with(0.0), Duration::from_secs(8));
        assert_eq!(hi.next_delay_with(1.0), Duration::from_secs(16));
    }

    #[test]
    fn reset_starts_over() {
        let mut b = Backoff::default();
        for _ in 0..10 {
            b.next_delay_with(1.0);
        }
        assert_eq!(b.attempt(), 10);
        b.reset();
        assert_eq!(b.attempt(), 0);
        assert_eq!(b.next_delay_with(1.0), DEFAULT_BASE);
    }

    #[test]
    fn odd_configs_are_tamed() {
        let mut b = Backoff::new(Duration::ZERO, Duration::ZERO);
        assert_eq!(b.floor(), Duration::from_millis(1));
        assert_eq!(b.cap(), Duration::from_millis(1));
        assert_eq!(b.next_delay_with(f64::NAN), Duration::from_millis(1));
        let mut b = Backoff::new(Duration::from_secs(10), Duration::from_secs(1));
        assert_eq!(b.cap(), Duration::from_secs(10));
        assert_eq!(b.next_delay_with(-3.0), Duration::from_secs(10));
        let mut b = Backoff::default();
        for _ in 0..10_000 {
            b.next_delay_with(2.0);
        }
        assert_eq!(b.next_delay_with(1.0), DEFAULT_CAP);
    }
}
