//! The idempotency memory of `node.invoke`: calls in flight and finished outcomes by
//! (node, idempotency key), with a time to live and a cap, at amortised constant cost per call.
//!
//! Finished outcomes are also recorded in a queue in the order they finished, so expiry and
//! the cap only ever look at the front of it: nothing scans or sorts the whole memory. A
//! record whose key was later removed, re-run or finished again is stale; it is recognised by
//! its sequence number and dropped when it reaches the front (or when the queue is compacted).
//!
//! The cap counts every entry, in flight or finished. Calls in flight are never evicted (a
//! joiner waits on them and their outcome is still to come), so the memory holds at most
//! `cap` entries, or the number of calls in flight when that alone is larger: then every
//! finished outcome has been dropped.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use perch_protocol::DeviceId;

use crate::invoke::Outcome;

/// What identifies a call for deduplication: the node and the caller's idempotency key.
pub(crate) type IdemKey = (DeviceId, String);

/// One remembered call.
pub(crate) enum IdemEntry {
    /// The call runs; joiners wait for its outcome on `rx`.
    InFlight {
        fingerprint: String,
        rx: watch::Receiver<Option<Outcome>>,
    },
    /// The call finished at `at`; `seq` names its record in the expiry queue.
    Done {
        fingerprint: String,
        outcome: Outcome,
        at: Instant,
        seq: u64,
    },
}

/// Calls in flight and finished outcomes, bounded by a time to live and a cap.
pub(crate) struct IdemMemory {
    entries: HashMap<IdemKey, IdemEntry>,
    /// Finished calls in the order they finished: (sequence number, when, key).
    finished: VecDeque<(u64, Instant, IdemKey)>,
    next_seq: u64,
    ttl: Duration,
    cap: usize,
}

impl IdemMemory {
    /// An empty memory keeping finished outcomes for `ttl`, at most `cap` entries.
    pub(crate) fn new(ttl: Duration, cap: usize) -> Self {
        Self {
            entries: HashMap::new(),
            finished: VecDeque::new(),
            next_seq: 0,
            ttl,
            cap,
        }
    }

    /// The entry for a key, if any; a finished one may have outlived `ttl` (the caller checks
    /// `at`, since expiry runs only when something finishes).
    pub(crate) fn get(&self, key: &IdemKey) -> Option<&IdemEntry> {
        self.entries.get(key)
    }

    /// How long finished outcomes are kept.
    pub(crate) fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Marks a call as in flight, replacing whatever was there (an expired outcome).
    pub(crate) fn start(
        &mut self,
        key: IdemKey,
        fingerprint: String,
        rx: watch::Receiver<Option<Outcome>>,
    ) {
        self.entries
            .insert(key, IdemEntry::InFlight { fingerprint, rx });
    }

    /// Forgets a key: a call that must not be replayed (a retryable failure, an abandoned run).
    pub(crate) fn forget(&mut self, key: &IdemKey) {
        self.entries.remove(key);
    }

    /// Records a finished call at `now`, then drops expired outcomes and, past the cap, the
    /// oldest finished ones. A failure that says "try again" is forgotten instead of kept.
    pub(crate) fn finish(
        &mut self,
        key: IdemKey,
        fingerprint: String,
        outcome: Outcome,
        now: Instant,
    ) {
        if matches!(&outcome, Err(e) if e.retryable == Some(true)) {
            self.forget(&key);
        } else {
            let seq = self.next_seq;
            self.next_seq += 1;
            self.finished.push_back((seq, now, key.clone()));
            self.entries.insert(
                key,
                IdemEntry::Done {
                    fingerprint,
                    outcome,
                    at: now,
                    seq,
                },
            );
        }
        self.prune(now);
    }

    /// Drops expired outcomes and enforces the cap, from the front of the queue only.
    fn prune(&mut self, now: Instant) {
        while let Some((seq, at, key)) = self.finished.front() {
            let live = self.is_live(*seq, key);
            let over_cap = self.entries.len() > self.cap;
            let expired = now.saturating_duration_since(*at) >= self.ttl;
            if live && !over_cap && !expired {
                break;
            }
            if let Some((_, _, key)) = self.finished.pop_front()
                && live
            {
                self.entries.remove(&key);
            }
        }
        // Stale records behind a live front (keys finished again or forgotten) are dropped
        // once they outnumber the cap; each compaction is paid for by that many finishes.
        if self.finished.len() > 2 * self.cap.max(1) {
            let entries = &self.entries;
            self.finished.retain(|(seq, _, key)| {
                matches!(entries.get(key), Some(IdemEntry::Done { seq: s, .. }) if s == seq)
            });
        }
    }

    /// Whether a queue record still names the finished outcome held for its key.
    fn is_live(&self, seq: u64, key: &IdemKey) -> bool {
        matches!(self.entries.get(key), Some(IdemEntry::Done { seq: s, .. }) if *s == seq)
    }

    /// Entries held, in flight and finished.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }

    /// Records in the expiry queue, stale ones included.
    #[cfg(test)]
    fn queued(&self) -> usize {
        self.finished.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use perch_protocol::{ErrorCode, ErrorShape};
    use serde_json::json;

    const TTL: Duration = Duration::from_secs(600);

    fn node() -> DeviceId {
        DeviceId::parse(&"7".repeat(64)).unwrap()
    }

    fn key(k: &str) -> IdemKey {
        (node(), k.to_string())
    }

    fn ok(n: u64) -> Outcome {
        Ok(json!({"n": n}))
    }

    fn done_value(m: &IdemMemory, k: &str) -> Option<Outcome> {
        match m.get(&key(k)) {
            Some(IdemEntry::Done { outcome, .. }) => Some(outcome.clone()),
            _ => None,
        }
    }

    fn in_flight(m: &mut IdemMemory, k: &str) -> watch::Sender<Option<Outcome>> {
        let (tx, rx) = watch::channel(None);
        m.start(key(k), "fp".into(), rx);
        tx
    }

    #[test]
    fn the_oldest_outcome_expires_first() {
        let mut m = IdemMemory::new(TTL, 100);
        let t0 = Instant::now();
        m.finish(key("a"), "fp".into(), ok(1), t0);
        m.finish(key("b"), "fp".into(), ok(2), t0 + Duration::from_secs(300));
        // Just before a's deadline both are kept.
        m.finish(
            key("c"),
            "fp".into(),
            ok(3),
            t0 + TTL - Duration::from_secs(1),
        );
        assert_eq!(m.len(), 3);
        // At a's deadline a goes, b (5 minutes younger) and c stay.
        m.finish(key("d"), "fp".into(), ok(4), t0 + TTL);
        assert_eq!(done_value(&m, "a"), None);
        assert_eq!(done_value(&m, "b"), Some(ok(2)));
        assert_eq!(done_value(&m, "c"), Some(ok(3)));
        assert_eq!(done_value(&m, "d"), Some(ok(4)));
        assert_eq!(m.queued(), 3);
    }

    #[test]
    fn the_cap_evicts_the_oldest_finished_first() {
        let mut m = IdemMemory::new(TTL, 3);
        let t0 = Instant::now();
        for (i, k) in ["a", "b", "c", "d", "e"].iter().enumerate() {
            m.finish(
                key(k),
                "fp".into(),
                ok(i as u64),
                t0 + Duration::from_secs(i as u64),
            );
        }
        assert_eq!(m.len(), 3);
        assert_eq!(done_value(&m, "a"), None);
        assert_eq!(done_value(&m, "b"), None);
        for k in ["c", "d", "e"] {
            assert!(done_value(&m, k).is_some(), "{k} should be kept");
        }
    }

    #[test]
    fn a_key_finished_again_is_not_evicted_by_its_stale_record() {
        let mut m = IdemMemory::new(TTL, 3);
        let t0 = Instant::now();
        m.finish(key("a"), "fp".into(), ok(1), t0);
        // a expires unseen, is run again (in flight replaces the stale outcome) and finishes
        // much later: its first queue record is now stale.
        let _tx = in_flight(&mut m, "a");
        m.finish(
            key("a"),
            "fp".into(),
            ok(2),
            t0 + TTL + Duration::from_secs(1),
        );
        assert_eq!(done_value(&m, "a"), Some(ok(2)));
        // Within the cap and the new outcome's lifetime, the stale record removes nothing.
        m.finish(
            key("b"),
            "fp".into(),
            ok(3),
            t0 + TTL + Duration::from_secs(2),
        );
        m.finish(
            key("c"),
            "fp".into(),
            ok(4),
            t0 + TTL + Duration::from_secs(3),
        );
        assert_eq!(done_value(&m, "a"), Some(ok(2)));
        assert_eq!(m.len(), 3);
        // Over the cap, a (the oldest by its second finish) goes first, not b.
        m.finish(
            key("d"),
            "fp".into(),
            ok(5),
            t0 + TTL + Duration::from_secs(4),
        );
        assert_eq!(done_value(&m, "a"), None);
        assert_eq!(done_value(&m, "b"), Some(ok(3)));
        assert_eq!(m.queued(), 3);
    }

    #[test]
    fn a_stale_record_behind_the_front_does_not_remove_the_newer_outcome() {
        let mut m = IdemMemory::new(TTL, 10);
        let t0 = Instant::now();
        m.finish(key("b"), "fp".into(), ok(1), t0);
        m.finish(key("a"), "fp".into(), ok(2), t0 + Duration::from_secs(1));
        // a is forgotten (as after an abandoned run) and finished again: its first record
        // is stale and sits behind b's.
        m.forget(&key("a"));
        m.finish(key("a"), "fp".into(), ok(3), t0 + Duration::from_secs(2));
        assert_eq!(m.queued(), 3);
        // b and a's first record pass their TTL; a's second outcome has a second left.
        m.finish(
            key("x"),
            "fp".into(),
            ok(4),
            t0 + TTL + Duration::from_millis(1500),
        );
        assert_eq!(done_value(&m, "b"), None);
        assert_eq!(done_value(&m, "a"), Some(ok(3)));
        assert_eq!(m.queued(), 2);
        m.finish(
            key("y"),
            "fp".into(),
            ok(5),
            t0 + TTL + Duration::from_secs(2),
        );
        assert_eq!(done_value(&m, "a"), None);
        assert_eq!(done_value(&m, "x"), Some(ok(4)));
    }

    #[test]
    fn calls_in_flight_are_never_evicted() {
        let mut m = IdemMemory::new(TTL, 3);
        let t0 = Instant::now();
        let _a = in_flight(&mut m, "a");
        let _b = in_flight(&mut m, "b");
        for i in 0..10u64 {
            m.finish(
                key(&format!("done-{i}")),
                "fp".into(),
                ok(i),
                t0 + Duration::from_secs(i),
            );
        }
        // Two in flight and the newest finished one fill the cap of 3.
        assert_eq!(m.len(), 3);
        assert!(matches!(m.get(&key("a")), Some(IdemEntry::InFlight { .. })));
        assert!(matches!(m.get(&key("b")), Some(IdemEntry::InFlight { .. })));
        assert_eq!(done_value(&m, "done-9"), Some(ok(9)));
        // More in flight than the cap: every finished outcome goes, no call in flight does,
        // however old.
        let _c = in_flight(&mut m, "c");
        let _d = in_flight(&mut m, "d");
        m.finish(key("e"), "fp".into(), ok(99), t0 + 2 * TTL);
        assert_eq!(m.len(), 4);
        for k in ["a", "b", "c", "d"] {
            assert!(matches!(m.get(&key(k)), Some(IdemEntry::InFlight { .. })));
        }
        assert_eq!(m.queued(), 0);
        // When they finish, the cap applies to them like any other outcome.
        for (i, k) in ["a", "b", "c", "d"].iter().enumerate() {
            m.finish(key(k), "fp".into(), ok(i as u64), t0 + 2 * TTL);
        }
        assert_eq!(m.len(), 3);
        assert_eq!(done_value(&m, "a"), None);
        assert_eq!(done_value(&m, "d"), Some(ok(3)));
    }

    #[test]
    fn a_retryable_failure_is_forgotten_and_its_key_runs_again() {
        let mut m = IdemMemory::new(TTL, 10);
        let now = Instant::now();
        let _tx = in_flight(&mut m, "a");
        let failure = ErrorShape::new(ErrorCode::Timeout, "late").with_retryable(true);
        m.finish(key("a"), "fp".into(), Err(failure), now);
        assert!(m.get(&key("a")).is_none());
        assert_eq!(m.queued(), 0);
        let final_failure = ErrorShape::new(ErrorCode::Unavailable, "broken");
        m.finish(key("b"), "fp".into(), Err(final_failure.clone()), now);
        assert_eq!(done_value(&m, "b"), Some(Err(final_failure)));
    }

    #[test]
    fn a_hundred_thousand_keys_stay_bounded() {
        let cap = 4096;
        let mut m = IdemMemory::new(TTL, cap);
        let t0 = Instant::now();
        let mut max_len = 0;
        let mut max_queued = 0;
        for i in 0..100_000u64 {
            let k = format!("k{i}");
            let _tx = in_flight(&mut m, &k);
            // Every tenth call fails retryably, and every seventh step runs an older key again,
            // which leaves a stale record behind in the queue.
            let now = t0 + Duration::from_millis(i);
            if i % 10 == 0 {
                let e = ErrorShape::new(ErrorCode::Timeout, "t").with_retryable(true);
                m.finish(key(&k), "fp".into(), Err(e), now);
            } else {
                m.finish(key(&k), "fp".into(), ok(i), now);
            }
            if i % 7 == 0 && i >= 7 {
                let old = format!("k{}", i - 7);
                let _tx = in_flight(&mut m, &old);
                m.finish(key(&old), "fp".into(), ok(i), now);
            }
            max_len = max_len.max(m.len());
            max_queued = max_queued.max(m.queued());
        }
        assert!(max_len <= cap, "memory grew to {max_len} entries");
        assert!(max_queued <= 2 * cap, "queue grew to {max_queued} records");
        assert_eq!(m.len(), cap);
        // The newest outcome is there, the oldest long gone.
        assert_eq!(done_value(&m, "k99999"), Some(ok(99_999)));
        assert_eq!(done_value(&m, "k1"), None);
    }
}
