//! Caps on open connections, in total and per source address, counted from accept so that a
//! flood is turned away before any HTTP or WebSocket state exists for it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use crate::config::Limits;
use crate::hub::now_ms;

/// Why a connection was turned away at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The host holds `max_connections` already.
    Total,
    /// This source holds `max_connections_per_source` already.
    PerSource,
}

/// Counts open connections; a [`Slot`] is one of them.
#[derive(Debug)]
pub struct ConnLimits {
    max_total: usize,
    max_per_source: usize,
    limit_loopback: bool,
    open: Mutex<Counts>,
    /// When a refusal was last logged (ms), so a flood writes one line a minute, not one each.
    last_logged_ms: AtomicI64,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    by_source: HashMap<IpAddr, usize>,
}

/// One open connection; dropping it frees the place.
#[derive(Debug)]
pub struct Slot {
    limits: Arc<ConnLimits>,
    source: Option<IpAddr>,
}

/// How often a refusal is logged at most.
const LOG_EVERY_MS: i64 = 60_000;

impl ConnLimits {
    /// Caps from the settings.
    pub fn new(limits: &Limits) -> Arc<Self> {
        Arc::new(Self {
            max_total: limits.max_connections,
            max_per_source: limits.max_connections_per_source,
            limit_loopback: limits.limit_loopback,
            open: Mutex::new(Counts::default()),
            last_logged_ms: AtomicI64::new(i64::MIN / 2),
        })
    }

    /// Takes a place for a connection from `source`, or says which cap is full.
    pub fn try_acquire(self: &Arc<Self>, source: IpAddr) -> Result<Slot, Refused> {
        let source = canonical(source);
        let per_source = self.limit_loopback || !source.is_loopback();
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.total >= self.max_total {
            return Err(Refused::Total);
        }
        if per_source {
            let n = open.by_source.entry(source).or_insert(0);
            if *n >= self.max_per_source {
                return Err(Refused::PerSource);
            }
            *n += 1;
        }
        open.total += 1;
        Ok(Slot {
            limits: self.clone(),
            source: per_source.then_some(source),
        })
    }

    /// Connections open right now.
    pub fn open(&self) -> usize {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).total
    }

    /// Logs a refusal, at most once a minute (the count of all refusals is in the message).
    pub fn log_refusal(&self, why: Refused, source: IpAddr, refused_so_far: u64) {
        let now = now_ms();
        let last = self.last_logged_ms.load(Ordering::Relaxed);
        if now - last < LOG_EVERY_MS
            || self
                .last_logged_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        tracing::warn!(
            ?why,
            %source,
            refused_so_far,
            max_connections = self.max_total,
            max_connections_per_source = self.max_per_source,
            "connection cap reached; refusing new connections (logged once a minute)"
        );
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.limits.open.lock().unwrap_or_else(|p| p.into_inner());
        open.total = open.total.saturating_sub(1);
        if let Some(source) = self.source
            && let Some(n) = open.by_source.get_mut(&source)
        {
            *n -= 1;
            if *n == 0 {
                open.by_source.remove(&source);
            }
        }
    }
}

/// An IPv4 client on a dual-stack socket counts as its IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(total: usize, per: usize, loopback: bool) -> Arc<ConnLimits> {
        ConnLimits::new(&Limits {
            max_connections: total,
            max_connections_per_source: per,
            limit_loopback: loopback,
            ..Limits::default()
        })
    }

    #[test]
    fn per_source_cap_applies_to_remote_sources_and_frees_on_drop() {
        let l = limits(10, 2, false);
        let a: IpAddr = "192.0.2.7".parse().unwrap();
        let b: IpAddr = "192.0.2.8".parse().unwrap();
        let s1 = l.try_acquire(a).unwrap();
        let _s2 = l.try_acquire(a).unwrap();
        assert_eq!(l.try_acquire(a).unwrap_err(), Refused::PerSource);
        let _s3 = l.try_acquire(b).unwrap();
        drop(s1);
        let _s4 = l.try_acquire(a).unwrap();
        assert_eq!(l.open(), 3);
    }

    #[test]
    fn loopback_is_exempt_from_the_per_source_cap_unless_asked() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let l = limits(4, 1, false);
        let held: Vec<_> = (0..4).map(|_| l.try_acquire(lo).unwrap()).collect();
        assert_eq!(l.try_acquire(lo).unwrap_err(), Refused::Total);
        drop(held);
        assert_eq!(l.open(), 0);
        let l = limits(4, 1, true);
        let _one = l.try_acquire(lo).unwrap();
        assert_eq!(l.try_acquire(lo).unwrap_err(), Refused::PerSource);
    }

    #[test]
    fn mapped_ipv4_counts_as_ipv4() {
        let l = limits(10, 1, false);
        let _a = l.try_acquire("192.0.2.1".parse().unwrap()).unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(l.try_acquire(mapped).unwrap_err(), Refused::PerSource);
    }
}
