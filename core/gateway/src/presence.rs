//! Presence: who is connected, from where, since when, and who the user touched last.
//! A pure table; the hub wraps it in a lock and broadcasts the changes it returns.

use std::collections::{BTreeSet, HashMap};

use perch_protocol::presence::{MAX_IDLE_SECONDS, PresenceChange, PresenceEntry, PresenceList};

use crate::hub::ConnId;

/// Entries silent this long are dropped.
pub const PRESENCE_TTL_MS: i64 = 5 * 60 * 1000;
/// Most entries kept; the least recently seen goes first.
pub const PRESENCE_CAP: usize = 200;

struct Slot {
    entry: PresenceEntry,
    conns: BTreeSet<ConnId>,
}

/// The presence table and its version counter.
pub struct PresenceTable {
    slots: HashMap<String, Slot>,
    version: u64,
    cap: usize,
    ttl_ms: i64,
}

impl Default for PresenceTable {
    fn default() -> Self {
        Self::new(PRESENCE_CAP, PRESENCE_TTL_MS)
    }
}

/// A change and the version it produced, in the order they must reach clients.
pub type Versioned = (u64, PresenceChange);

impl PresenceTable {
    /// A table with a size cap and a silence limit.
    pub fn new(cap: usize, ttl_ms: i64) -> Self {
        Self {
            slots: HashMap::new(),
            version: 0,
            cap: cap.max(1),
            ttl_ms,
        }
    }

    /// The current version; it grows by one with every change.
    pub fn version(&self) -> u64 {
        self.version
    }

    fn bump(&mut self, change: PresenceChange, out: &mut Vec<Versioned>) {
        self.version += 1;
        out.push((self.version, change));
    }

    /// A connection was admitted. Connections of one device share one entry.
    pub fn connect(&mut self, conn: ConnId, entry: PresenceEntry) -> Vec<Versioned> {
        let mut out = Vec::new();
        let key = entry.key.clone();
        if !self.slots.contains_key(&key) && self.slots.len() >= self.cap {
            let oldest = self
                .slots
                .iter()
                .min_by_key(|(k, s)| (s.entry.last_seen_ms, (*k).clone()))
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.slots.remove(&k);
                self.bump(PresenceChange::Remove { key: k }, &mut out);
            }
        }
        let slot = self.slots.entry(key).or_insert_with(|| Slot {
            entry: entry.clone(),
            conns: BTreeSet::new(),
        });
        slot.conns.insert(conn);
        // Keep what the device told us earlier (activity) when a second connection joins.
        let last_activity_ms = slot.entry.last_activity_ms.or(entry.last_activity_ms);
        let connected_since_ms = slot.entry.connected_since_ms.min(entry.connected_since_ms);
        slot.entry = PresenceEntry {
            last_activity_ms,
            connected_since_ms,
            ..entry
        };
        let e = slot.entry.clone();
        self.bump(PresenceChange::Upsert { entry: e }, &mut out);
        out
    }

    /// A connection ended; the entry goes when its last connection goes.
    pub fn disconnect(&mut self, conn: ConnId, key: &str) -> Vec<Versioned> {
        let mut out = Vec::new();
        let gone = match self.slots.get_mut(key) {
            Some(slot) => {
                slot.conns.remove(&conn);
                slot.conns.is_empty()
            }
            None => false,
        };
        if gone {
            self.slots.remove(key);
            self.bump(
                PresenceChange::Remove {
                    key: key.to_string(),
                },
                &mut out,
            );
        }
        out
    }

    /// Something arrived from the client: it is not silent. No event: last-seen alone is not
    /// news, and a chatty client must not flood every operator.
    pub fn seen(&mut self, key: &str, now_ms: i64) {
        if let Some(slot) = self.slots.get_mut(key) {
            slot.entry.last_seen_ms = slot.entry.last_seen_ms.max(now_ms);
        }
    }

    /// The device reported how long its user has been idle; the host computes the moment
    /// from its own clock and never trusts the device's.
    pub fn activity(&mut self, key: &str, idle_seconds: u64, now_ms: i64) -> Vec<Versioned> {
        let mut out = Vec::new();
        let idle_ms = idle_seconds.min(MAX_IDLE_SECONDS) as i64 * 1000;
        let changed = match self.slots.get_mut(key) {
            Some(slot) => {
                slot.entry.last_seen_ms = slot.entry.last_seen_ms.max(now_ms);
                let at = now_ms - idle_ms;
                // Ignore jitter below a second so steady reports do not spam events.
                let moved = slot
                    .entry
                    .last_activity_ms
                    .is_none_or(|prev| (prev - at).abs() >= 1000);
                if moved {
                    slot.entry.last_activity_ms = Some(at);
                }
                moved.then(|| slot.entry.clone())
            }
            None => None,
        };
        if let Some(entry) = changed {
            self.bump(PresenceChange::Upsert { entry }, &mut out);
        }
        out
    }

    /// Drops entries silent for longer than the limit.
    pub fn expire(&mut self, now_ms: i64) -> Vec<Versioned> {
        let mut out = Vec::new();
        let mut stale: Vec<String> = self
            .slots
            .iter()
            .filter(|(_, s)| now_ms - s.entry.last_seen_ms > self.ttl_ms)
            .map(|(k, _)| k.clone())
            .collect();
        stale.sort();
        for key in stale {
            self.slots.remove(&key);
            self.bump(PresenceChange::Remove { key }, &mut out);
        }
        out
    }

    /// The device the user touched most recently: latest activity, then latest seen.
    pub fn active_device(&self) -> Option<String> {
        perch_protocol::presence::active_device(self.slots.values().map(|s| &s.entry))
            .map(str::to_string)
    }

    /// Entries, most recent activity (then last seen) first.
    pub fn entries(&self) -> Vec<PresenceEntry> {
        let mut v: Vec<PresenceEntry> = self.slots.values().map(|s| s.entry.clone()).collect();
        v.sort_by(|a, b| {
            (b.last_activity_ms, b.last_seen_ms, &a.key).cmp(&(
                a.last_activity_ms,
                a.last_seen_ms,
                &b.key,
            ))
        });
        v
    }

    /// The list for `system-presence`.
    pub fn list(&self) -> PresenceList {
        PresenceList {
            entries: self.entries(),
            active_device_id: self.active_device(),
            state_version: perch_protocol::frame::StateVersion {
                presence: self.version,
                health: 0,
            },
        }
    }

    /// When a device was last seen, if it is present.
    pub fn last_seen(&self, key: &str) -> Option<i64> {
        self.slots.get(key).map(|s| s.entry.last_seen_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use perch_protocol::handshake::Role;

    fn entry(key: &str, seen: i64) -> PresenceEntry {
        PresenceEntry {
            key: key.into(),
            device_id: Some(key.into()),
            display_name: key.into(),
            platform: "linux".into(),
            role: Role::Node,
            mode: "node".into(),
            connected_since_ms: seen,
            last_seen_ms: seen,
            last_activity_ms: None,
            remote_addr: None,
        }
    }

    fn versions(changes: &[Versioned]) -> Vec<u64> {
        changes.iter().map(|(v, _)| *v).collect()
    }

    #[test]
    fn versions_grow_by_one_in_order() {
        let mut t = PresenceTable::default();
        let mut all = vec![];
        all.extend(t.connect(ConnId(1), entry("a", 0)));
        all.extend(t.connect(ConnId(2), entry("b", 0)));
        all.extend(t.activity("a", 5, 10_000));
        all.extend(t.disconnect(ConnId(2), "b"));
        assert_eq!(versions(&all), vec![1, 2, 3, 4]);
        assert_eq!(t.version(), 4);
        assert!(matches!(all[3].1, PresenceChange::Remove { ref key } if key == "b"));
    }

    #[test]
    fn one_entry_per_device_until_its_last_connection_ends() {
        let mut t = PresenceTable::default();
        t.connect(ConnId(1), entry("a", 0));
        let mut op = entry("a", 5);
        op.role = Role::Operator;
        t.connect(ConnId(2), op);
        assert_eq!(t.entries().len(), 1);
        assert_eq!(
            t.entries()[0].connected_since_ms,
            0,
            "earliest connection counts"
        );
        assert!(
            t.disconnect(ConnId(1), "a").is_empty(),
            "still connected on conn 2"
        );
        assert_eq!(t.disconnect(ConnId(2), "a").len(), 1);
        assert!(t.entries().is_empty());
    }

    #[test]
    fn silent_entries_expire_after_five_minutes() {
        let mut t = PresenceTable::default();
        t.connect(ConnId(1), entry("a", 0));
        t.connect(ConnId(2), entry("b", 0));
        t.seen("b", 200_000);
        assert!(
            t.expire(PRESENCE_TTL_MS).is_empty(),
            "exactly at the limit stays"
        );
        let gone = t.expire(PRESENCE_TTL_MS + 1);
        assert_eq!(gone.len(), 1);
        assert!(matches!(gone[0].1, PresenceChange::Remove { ref key } if key == "a"));
        assert_eq!(t.entries().len(), 1);
        assert!(t.expire(200_000 + PRESENCE_TTL_MS + 1).len() == 1);
    }

    #[test]
    fn seen_alone_emits_nothing() {
        let mut t = PresenceTable::default();
        t.connect(ConnId(1), entry("a", 0));
        let v = t.version();
        t.seen("a", 50);
        assert_eq!(t.version(), v);
        assert_eq!(t.last_seen("a"), Some(50));
        t.seen("a", 10);
        assert_eq!(t.last_seen("a"), Some(50), "never goes back");
    }

    #[test]
    fn active_device_is_the_one_touched_last() {
        let mut t = PresenceTable::default();
        t.connect(ConnId(1), entry("phone", 0));
        t.connect(ConnId(2), entry("laptop", 0));
        assert_eq!(t.active_device(), None, "no activity reported yet");
        t.activity("phone", 60, 100_000); // touched at 40 s
        t.activity("laptop", 10, 100_000); // touched at 90 s
        assert_eq!(t.active_device().as_deref(), Some("laptop"));
        t.activity("phone", 0, 120_000); // touched now
        assert_eq!(t.active_device().as_deref(), Some("phone"));
        assert_eq!(t.entries()[0].key, "phone", "most recent activity first");
    }

    #[test]
    fn activity_ignores_sub_second_jitter_and_caps_idle() {
        let mut t = PresenceTable::default();
        t.connect(ConnId(1), entry("a", 0));
        assert_eq!(t.activity("a", 10, 100_000).len(), 1);
        assert!(
            t.activity("a", 11, 100_500).is_empty(),
            "same moment, within a second"
        );
        t.activity("a", u64::MAX, 100_000);
        let at = t.entries()[0].last_activity_ms.unwrap();
        assert_eq!(at, 100_000 - MAX_IDLE_SECONDS as i64 * 1000);
        assert!(t.activity("nobody", 1, 1).is_empty());
    }

    #[test]
    fn cap_drops_the_least_recently_seen() {
        let mut t = PresenceTable::new(2, PRESENCE_TTL_MS);
        t.connect(ConnId(1), entry("a", 10));
        t.connect(ConnId(2), entry("b", 20));
        let changes = t.connect(ConnId(3), entry("c", 30));
        assert_eq!(changes.len(), 2);
        assert!(matches!(changes[0].1, PresenceChange::Remove { ref key } if key == "a"));
        let keys: Vec<String> = t.entries().into_iter().map(|e| e.key).collect();
        assert_eq!(keys.len(), 2);
        assert!(!keys.contains(&"a".to_string()));
    }
}
