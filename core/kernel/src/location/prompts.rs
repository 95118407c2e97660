//! One location read for one prompt, end to end: check the user's consent, read the fix only
//! if they gave it, build the block, write the audit. The kernel owns this order; the host
//! supplies the persistence ([`LocationLedger`]) and the fetch (a `location.get` invoke).
//!
//! **Architecture Invariant:** fail closed. If the consent cannot be read, the device is not
//! asked; if the audit cannot be written, the block is not used. Coordinates are never logged.

use std::collections::HashMap;
use std::fmt::Display;
use std::sync::{Arc, Mutex, MutexGuard};

use futures_util::future::BoxFuture;
use perch_protocol::DeviceId;
use perch_protocol::node_commands::LocationFix;

use serde_json::Value;

use super::context::{
    AuditEntry, AuditOutcome, ContextInput, DeviceFix, LocationPolicy, LocationRead, Precision,
    ReadPath, build_context, reduce_for_tool,
};
use super::gazetteer::Gazetteer;
use perch_protocol::geo::NamedPlace;

/// Why the ledger could not answer; carries the host's own error.
#[derive(Debug, thiserror::Error)]
#[error("location ledger: {0}")]
pub struct LedgerError(pub Box<dyn std::error::Error + Send + Sync>);

impl LedgerError {
    /// Wraps any error (a `StoreError`, a message) for the kernel to log.
    pub fn new(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        LedgerError(e.into())
    }
}

/// What location prompts need from persistence: consent per device, the named places, and
/// the audit. The host implements it over `perch-store` (`Store::location()`); the kernel
/// never sees SQL.
pub trait LocationLedger: Send + Sync {
    /// The device's sharing precision; [`Precision::Off`] when the user never chose.
    fn precision<'a>(
        &'a self,
        device_id: &'a DeviceId,
    ) -> BoxFuture<'a, Result<Precision, LedgerError>>;

    /// The user's named places.
    fn places(&self) -> BoxFuture<'_, Result<Vec<NamedPlace>, LedgerError>>;

    /// Appends one audit row.
    fn record<'a>(&'a self, entry: &'a AuditEntry) -> BoxFuture<'a, Result<(), LedgerError>>;
}

/// The device a prompt's location comes from, as arbitration chose it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptTarget {
    /// The device to read.
    pub device_id: DeviceId,
    /// Its display name, as shown to the model.
    pub device_name: String,
    /// The session whose prompt is being built.
    pub session_key: String,
    /// Display name of the device the user is at (from presence), when known.
    pub active_device: Option<String>,
}

/// What a model may see of one call to a node tool whose result carries a position
/// ([`LocationPrompts::read_for_tool`]).
#[derive(Debug, Clone, PartialEq)]
pub enum ToolRead<E> {
    /// Sharing is off for the device (or its consent is unreadable): the device was not asked;
    /// the call is refused (`LOCATION_SHARING_OFF`).
    Off,
    /// The device was asked and failed; its error goes to the model as it is.
    Failed(E),
    /// The device answered, but nothing may or can be said: the fix is unusable or too old for
    /// `city`, or the audit could not be written. Says why, without coordinates.
    Withheld(&'static str),
    /// What the model reads: the node's answer at `exact`, the reduced object at `city`.
    Result(Value),
}

/// Milliseconds since the epoch; swapped in tests.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// Builds device-context blocks for prompts under one [`LocationPolicy`].
#[derive(Clone)]
pub struct LocationPrompts {
    gazetteer: &'static Gazetteer,
    policy: LocationPolicy,
    clock: Clock,
}

impl std::fmt::Debug for LocationPrompts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocationPrompts")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl LocationPrompts {
    /// Uses the process-wide [`Gazetteer::global`] and the system clock.
    pub fn new(policy: LocationPolicy) -> Self {
        LocationPrompts {
            gazetteer: Gazetteer::global(),
            policy,
            clock: Arc::new(system_now_ms),
        }
    }

    /// Replaces the clock, so tests can age fixes deterministically.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The policy in force.
    pub fn policy(&self) -> &LocationPolicy {
        &self.policy
    }

    /// One location read for one prompt. Reads the device's consent first and calls `fetch`
    /// (the `location.get` invoke) only when sharing is on; builds the block; writes the
    /// audit entry; returns both. `read.block` is what goes into the prompt, `None` whenever
    /// nothing may or can be said (off, unavailable, dropped, or the audit failed).
    pub async fn read<F, Fut, E>(
        &self,
        ledger: &dyn LocationLedger,
        target: &PromptTarget,
        fetch: F,
    ) -> LocationRead
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<LocationFix, E>>,
        E: Display,
    {
        let device = target.device_id.short();
        let precision = match ledger.precision(&target.device_id).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(device, error = %e, "location consent unreadable; not asking the device");
                return self
                    .finish(
                        ledger,
                        self.empty(target, Precision::Off, AuditOutcome::Unavailable),
                    )
                    .await;
            }
        };
        if precision == Precision::Off {
            return self
                .finish(ledger, self.empty(target, precision, AuditOutcome::Off))
                .await;
        }
        let places = match ledger.places().await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(device, error = %e, "named places unreadable; location left out");
                return self
                    .finish(
                        ledger,
                        self.empty(target, precision, AuditOutcome::Unavailable),
                    )
                    .await;
            }
        };
        let fix = match fetch().await {
            Ok(wire) => match DeviceFix::from_protocol(&wire) {
                Ok(fix) => Some(fix),
                Err(e) => {
                    tracing::warn!(device, error = %e, "device sent an unusable location fix");
                    None
                }
            },
            Err(e) => {
                tracing::info!(device, error = %e, "no location fix from the device");
                None
            }
        };
        if fix.is_some() && !self.warm_gazetteer().await {
            return self
                .finish(
                    ledger,
                    self.empty(target, precision, AuditOutcome::Unavailable),
                )
                .await;
        }
        let read = build_context(
            self.gazetteer,
            &self.policy,
            &self.input(target, precision, fix.as_ref(), &places),
        );
        self.finish(ledger, read).await
    }

    /// One call of a node tool whose result carries a position, made for a model: reads the
    /// device's consent first and calls `fetch` (the node invoke) only when sharing is on, then
    /// gives the model what the precision allows: at `exact` the node's answer unchanged, at
    /// `city` the [`reduce_for_tool`] object (place or city, time zone, local time; never
    /// coordinates). `position` reads the fix out of the answer ([`DeviceFix::from_value`]
    /// for `location.get`). Every call is audited with [`ReadPath::Tool`], and a result whose
    /// audit fails is withheld.
    pub async fn read_for_tool<F, Fut, E>(
        &self,
        ledger: &dyn LocationLedger,
        target: &PromptTarget,
        position: fn(&Value) -> Result<DeviceFix, super::context::FixError>,
        fetch: F,
    ) -> ToolRead<E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Value, E>>,
    {
        let device = target.device_id.short();
        let tool_entry = |precision, outcome| {
            let mut read = self.empty(target, precision, outcome);
            read.audit.path = ReadPath::Tool;
            read.audit
        };
        let precision = match ledger.precision(&target.device_id).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(device, error = %e, "location consent unreadable; refusing the tool call");
                self.record(
                    ledger,
                    &tool_entry(Precision::Off, AuditOutcome::Unavailable),
                )
                .await;
                return ToolRead::Off;
            }
        };
        if precision == Precision::Off {
            self.record(ledger, &tool_entry(precision, AuditOutcome::Off))
                .await;
            return ToolRead::Off;
        }
        let places = match ledger.places().await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(device, error = %e, "named places unreadable; tool result withheld");
                self.record(ledger, &tool_entry(precision, AuditOutcome::Unavailable))
                    .await;
                return ToolRead::Withheld("the host could not read the location settings");
            }
        };
        let answer = match fetch().await {
            Ok(v) => v,
            Err(e) => {
                self.record(ledger, &tool_entry(precision, AuditOutcome::Unavailable))
                    .await;
                return ToolRead::Failed(e);
            }
        };
        let fix = match position(&answer) {
            Ok(fix) => Some(fix),
            Err(e) => {
                tracing::warn!(device, error = %e, "device sent an unusable position");
                None
            }
        };
        if fix.is_some() && !self.warm_gazetteer().await {
            self.record(ledger, &tool_entry(precision, AuditOutcome::Unavailable))
                .await;
            return ToolRead::Withheld("the host could not place the position");
        }
        let (reduced, mut audit) = reduce_for_tool(
            self.gazetteer,
            &self.policy,
            &self.input(target, precision, fix.as_ref(), &places),
        );
        let result = if precision == Precision::Exact {
            // The user chose exact: the node's own answer, whatever its age; the audit says
            // an old one went out as stale.
            if audit.outcome == AuditOutcome::Dropped {
                audit.outcome = AuditOutcome::Stale;
            }
            Some(answer)
        } else {
            reduced
        };
        if !self.record(ledger, &audit).await {
            return ToolRead::Withheld("the host could not record the location read");
        }
        match result {
            Some(v) => ToolRead::Result(v),
            None if fix.is_none() => {
                ToolRead::Withheld("the device's answer holds no usable position")
            }
            None => ToolRead::Withheld("the device's position is too old to use"),
        }
    }

    /// Loads the gazetteer off the async threads the first time a fix needs placing; `false`
    /// (logged) when loading failed.
    async fn warm_gazetteer(&self) -> bool {
        if self.gazetteer.is_warm() {
            return true;
        }
        let gazetteer = self.gazetteer;
        match tokio::task::spawn_blocking(move || gazetteer.warm()).await {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(error = %e, "loading the gazetteer failed; location left out");
                false
            }
        }
    }

    /// What the context code reads for one device, now.
    fn input<'a>(
        &self,
        target: &'a PromptTarget,
        precision: Precision,
        fix: Option<&'a DeviceFix>,
        places: &'a [NamedPlace],
    ) -> ContextInput<'a> {
        ContextInput {
            device_id: &target.device_id,
            device_name: &target.device_name,
            session_key: &target.session_key,
            precision,
            fix,
            places,
            active_device: target.active_device.as_deref(),
            now_ms: (self.clock)(),
        }
    }

    /// Writes one audit entry; `false` (logged) when it could not be written.
    async fn record(&self, ledger: &dyn LocationLedger, entry: &AuditEntry) -> bool {
        match ledger.record(entry).await {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(
                    device = entry.device_id.short(),
                    error = %e,
                    "location audit not written"
                );
                false
            }
        }
    }

    /// A read that says nothing, for the paths that stop before a fix is looked at.
    fn empty(
        &self,
        target: &PromptTarget,
        precision: Precision,
        outcome: AuditOutcome,
    ) -> LocationRead {
        LocationRead {
            block: None,
            audit: AuditEntry {
                at_ms: (self.clock)(),
                device_id: target.device_id.clone(),
                session_key: target.session_key.clone(),
                precision,
                outcome,
                place_name: None,
                city: None,
                path: ReadPath::Context,
            },
        }
    }

    /// Writes the audit entry; an unwritten audit means the block is not used.
    async fn finish(&self, ledger: &dyn LocationLedger, mut read: LocationRead) -> LocationRead {
        if let Err(e) = ledger.record(&read.audit).await {
            tracing::error!(
                device = read.audit.device_id.short(),
                error = %e,
                "location audit not written; location left out of the prompt"
            );
            read.block = None;
        } else {
            tracing::debug!(
                device = read.audit.device_id.short(),
                session = %read.audit.session_key,
                outcome = read.audit.outcome.as_str(),
                "location read for prompt"
            );
        }
        read
    }
}

fn system_now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// A [`LocationLedger`] in memory, for tests and for embedders without a database.
#[derive(Debug, Default)]
pub struct MemoryLedger {
    state: Mutex<MemoryState>,
}

#[derive(Debug, Default)]
struct MemoryState {
    sharing: HashMap<DeviceId, Precision>,
    places: Vec<NamedPlace>,
    audit: Vec<AuditEntry>,
}

impl MemoryLedger {
    /// An empty ledger: every device off, no places, no audit.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, MemoryState> {
        // A panic while holding the lock leaves plain data behind; keep using it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets a device's precision.
    pub fn set_precision(&self, device_id: &DeviceId, precision: Precision) {
        self.lock().sharing.insert(device_id.clone(), precision);
    }

    /// Adds a named place.
    pub fn add_place(&self, place: NamedPlace) {
        self.lock().places.push(place);
    }

    /// Every audit entry so far, oldest first.
    pub fn audit(&self) -> Vec<AuditEntry> {
        self.lock().audit.clone()
    }
}

impl LocationLedger for MemoryLedger {
    fn precision<'a>(
        &'a self,
        device_id: &'a DeviceId,
    ) -> BoxFuture<'a, Result<Precision, LedgerError>> {
        let p = self
            .lock()
            .sharing
            .get(device_id)
            .copied()
            .unwrap_or_default();
        Box::pin(async move { Ok(p) })
    }

    fn places(&self) -> BoxFuture<'_, Result<Vec<NamedPlace>, LedgerError>> {
        let places = self.lock().places.clone();
        Box::pin(async move { Ok(places) })
    }

    fn record<'a>(&'a self, entry: &'a AuditEntry) -> BoxFuture<'a, Result<(), LedgerError>> {
        self.lock().audit.push(entry.clone());
        Box::pin(async { Ok(()) })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use perch_protocol::node_commands::LocationSource;

    use super::*;

    /// 2026-11-21T13:03:00Z.
    const NOW: i64 = 1_795_266_180_000;

    fn target() -> PromptTarget {
        PromptTarget {
            device_id: DeviceId::from_public_key(&[9; 32]),
            device_name: "Ana's iPhone".to_string(),
            session_key: "main".to_string(),
            active_device: Some("Ana's iPhone".to_string()),
        }
    }

    fn prompts() -> LocationPrompts {
        LocationPrompts::new(LocationPolicy::default()).with_clock(Arc::new(|| NOW))
    }

    fn wire(age_secs: i64) -> LocationFix {
        let ts = jiff::Timestamp::from_millisecond(NOW - age_secs * 1000).unwrap();
        LocationFix {
            lat: 48.2085,
            lon: 16.3721,
            accuracy_meters: 8.0,
            altitude_meters: None,
            speed_mps: None,
            heading_deg: None,
            timestamp: ts.to_string(),
            is_precise: true,
            source: LocationSource::Gps,
        }
    }

    /// A fetch that counts its calls and returns `result`.
    fn fetcher(
        calls: &AtomicUsize,
        result: Result<LocationFix, String>,
    ) -> impl FnOnce() -> std::future::Ready<Result<LocationFix, String>> + '_ {
        move || {
            calls.fetch_add(1, Ordering::SeqCst);
            std::future::ready(result)
        }
    }

    #[tokio::test]
    async fn off_by_default_never_asks_the_device_and_is_audited() {
        let ledger = MemoryLedger::new();
        let calls = AtomicUsize::new(0);
        let read = prompts()
            .read(&ledger, &target(), fetcher(&calls, Ok(wire(1))))
            .await;
        assert_eq!(read.block, None);
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        let audit = ledger.audit();
        assert_eq!(audit.len(), 1);
        assert_eq!(audit[0].outcome, AuditOutcome::Off);
        assert_eq!(audit[0].precision, Precision::Off);
        assert_eq!(audit[0].at_ms, NOW);
    }

    #[tokio::test]
    async fn every_read_writes_one_audit_row_with_its_outcome() {
        let ledger = MemoryLedger::new();
        let t = target();
        ledger.set_precision(&t.device_id, Precision::City);
        let calls = AtomicUsize::new(0);
        let p = prompts();

        let fresh = p.read(&ledger, &t, fetcher(&calls, Ok(wire(30)))).await;
        assert!(
            fresh
                .block
                .as_deref()
                .unwrap()
                .contains("\"city\":\"Vienna\"")
        );
        let stale = p.read(&ledger, &t, fetcher(&calls, Ok(wire(900)))).await;
        assert!(stale.block.as_deref().unwrap().contains("\"stale\":true"));
        let dropped = p.read(&ledger, &t, fetcher(&calls, Ok(wire(7200)))).await;
        assert_eq!(dropped.block, None);
        let failed = p
            .read(
                &ledger,
                &t,
                fetcher(&calls, Err("LOCATION_TIMEOUT".to_string())),
            )
            .await;
        assert_eq!(failed.block, None);
        let mut garbage = wire(1);
        garbage.timestamp = "soon".to_string();
        let bad = p.read(&ledger, &t, fetcher(&calls, Ok(garbage))).await;
        assert_eq!(bad.block, None);
        ledger.add_place(NamedPlace {
            name: "Home".to_string(),
            lat: 48.2085,
            lon: 16.3721,
            radius_m: 200,
        });
        let home = p.read(&ledger, &t, fetcher(&calls, Ok(wire(1)))).await;
        assert!(
            home.block
                .as_deref()
                .unwrap()
                .contains("\"place\":\"Home\"")
        );

        assert_eq!(calls.load(Ordering::SeqCst), 6);
        let audit = ledger.audit();
        let outcomes: Vec<_> = audit.iter().map(|a| a.outcome).collect();
        assert_eq!(
            outcomes,
            [
                AuditOutcome::Included,
                AuditOutcome::Stale,
                AuditOutcome::Dropped,
                AuditOutcome::Unavailable,
                AuditOutcome::Unavailable,
                AuditOutcome::Included,
            ]
        );
        assert!(
            audit
                .iter()
                .all(|a| a.precision == Precision::City && a.session_key == "main")
        );
        assert_eq!(audit[0].city.as_deref(), Some("Vienna, AT"));
        assert_eq!(audit[5].place_name.as_deref(), Some("Home"));
        assert_eq!(audit[5].city, None);
        // The returned audit is the one written.
        assert_eq!(home.audit, audit[5]);
    }

    /// A ledger whose consent says exact but whose audit (or consent) is broken.
    struct BrokenLedger {
        consent_fails: bool,
    }

    impl LocationLedger for BrokenLedger {
        fn precision<'a>(
            &'a self,
            _: &'a DeviceId,
        ) -> BoxFuture<'a, Result<Precision, LedgerError>> {
            let fails = self.consent_fails;
            Box::pin(async move {
                if fails {
                    Err(LedgerError::new("database is locked"))
                } else {
                    Ok(Precision::Exact)
                }
            })
        }

        fn places(&self) -> BoxFuture<'_, Result<Vec<NamedPlace>, LedgerError>> {
            Box::pin(async { Ok(Vec::new()) })
        }

        fn record<'a>(&'a self, _: &'a AuditEntry) -> BoxFuture<'a, Result<(), LedgerError>> {
            Box::pin(async { Err(LedgerError::new("disk full")) })
        }
    }

    #[tokio::test]
    async fn fails_closed() {
        let calls = AtomicUsize::new(0);
        // Audit cannot be written: the block is not used.
        let read = prompts()
            .read(
                &BrokenLedger {
                    consent_fails: false,
                },
                &target(),
                fetcher(&calls, Ok(wire(1))),
            )
            .await;
        assert_eq!(read.block, None);
        assert_eq!(read.audit.outcome, AuditOutcome::Included);
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        // Consent cannot be read: the device is not asked.
        let read = prompts()
            .read(
                &BrokenLedger {
                    consent_fails: true,
                },
                &target(),
                fetcher(&calls, Ok(wire(1))),
            )
            .await;
        assert_eq!(read.block, None);
        assert_eq!(read.audit.outcome, AuditOutcome::Unavailable);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    /// A node answer as JSON, with a field the reduction must drop.
    fn answer(age_secs: i64) -> Value {
        let mut v = serde_json::to_value(wire(age_secs)).unwrap();
        v["altitudeMeters"] = serde_json::json!(182.5);
        v
    }

    /// A tool fetch that counts its calls and returns `result`.
    fn tool_fetcher(
        calls: &AtomicUsize,
        result: Result<Value, String>,
    ) -> impl FnOnce() -> std::future::Ready<Result<Value, String>> + '_ {
        move || {
            calls.fetch_add(1, Ordering::SeqCst);
            std::future::ready(result)
        }
    }

    fn read_tool<'a>(
        ledger: &'a MemoryLedger,
        calls: &'a AtomicUsize,
        result: Result<Value, String>,
    ) -> impl Future<Output = ToolRead<String>> + 'a {
        let t = target();
        async move {
            prompts()
                .read_for_tool(
                    ledger,
                    &t,
                    DeviceFix::from_value,
                    tool_fetcher(calls, result),
                )
                .await
        }
    }

    #[tokio::test]
    async fn a_tool_read_is_refused_when_off_without_asking_the_device() {
        let ledger = MemoryLedger::new();
        let calls = AtomicUsize::new(0);
        let r = read_tool(&ledger, &calls, Ok(answer(1))).await;
        assert_eq!(r, ToolRead::Off);
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        let audit = ledger.audit();
        assert_eq!(audit.len(), 1);
        assert_eq!(
            (audit[0].outcome, audit[0].path, audit[0].precision),
            (AuditOutcome::Off, ReadPath::Tool, Precision::Off)
        );
    }

    #[tokio::test]
    async fn a_tool_read_at_city_has_the_city_and_no_coordinates() {
        let ledger = MemoryLedger::new();
        ledger.set_precision(&target().device_id, Precision::City);
        let calls = AtomicUsize::new(0);
        let ToolRead::Result(v) = read_tool(&ledger, &calls, Ok(answer(30))).await else {
            panic!("no result");
        };
        let text = v.to_string();
        for needle in ["48.2", "16.3", "lat", "lon", "accuracy", "altitude", "182"] {
            assert!(!text.contains(needle), "{needle} in {text}");
        }
        assert_eq!(v["city"], "Vienna");
        assert_eq!(v["timeZone"], "Europe/Vienna");
        assert_eq!(v["localTime"], "2026-11-21 14:03 (Saturday, UTC+01:00)");
        assert_eq!(v["precision"], "city");
        let audit = ledger.audit();
        assert_eq!(audit.len(), 1);
        assert_eq!(audit[0].path, ReadPath::Tool);
        assert_eq!(audit[0].outcome, AuditOutcome::Included);
        assert_eq!(audit[0].city.as_deref(), Some("Vienna, AT"));

        // Too old for city, or no position at all: withheld, and audited as such.
        let r = read_tool(&ledger, &calls, Ok(answer(7200))).await;
        assert!(matches!(r, ToolRead::Withheld(_)), "{r:?}");
        let r = read_tool(&ledger, &calls, Ok(serde_json::json!({"lat": "north"}))).await;
        assert!(matches!(r, ToolRead::Withheld(_)), "{r:?}");
        let outcomes: Vec<_> = ledger.audit().iter().map(|a| a.outcome).collect();
        assert_eq!(
            outcomes,
            [
                AuditOutcome::Included,
                AuditOutcome::Dropped,
                AuditOutcome::Unavailable
            ]
        );
    }

    #[tokio::test]
    async fn a_tool_read_at_exact_is_unchanged_and_audited() {
        let ledger = MemoryLedger::new();
        ledger.set_precision(&target().device_id, Precision::Exact);
        let calls = AtomicUsize::new(0);
        let r = read_tool(&ledger, &calls, Ok(answer(30))).await;
        assert_eq!(r, ToolRead::Result(answer(30)));
        let r = read_tool(&ledger, &calls, Err("LOCATION_UNAVAILABLE".to_string())).await;
        assert_eq!(r, ToolRead::Failed("LOCATION_UNAVAILABLE".to_string()));
        let audit = ledger.audit();
        let rows: Vec<_> = audit.iter().map(|a| (a.outcome, a.path)).collect();
        assert_eq!(
            rows,
            [
                (AuditOutcome::Included, ReadPath::Tool),
                (AuditOutcome::Unavailable, ReadPath::Tool)
            ]
        );
        assert_eq!(audit[0].city.as_deref(), Some("Vienna, AT"));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_tool_read_whose_audit_fails_is_withheld() {
        let calls = AtomicUsize::new(0);
        let r = prompts()
            .read_for_tool(
                &BrokenLedger {
                    consent_fails: false,
                },
                &target(),
                DeviceFix::from_value,
                tool_fetcher(&calls, Ok(answer(1))),
            )
            .await;
        assert!(matches!(r, ToolRead::Withheld(_)), "{r:?}");
        let r = prompts()
            .read_for_tool(
                &BrokenLedger {
                    consent_fails: true,
                },
                &target(),
                DeviceFix::from_value,
                tool_fetcher(&calls, Ok(answer(1))),
            )
            .await;
        assert_eq!(r, ToolRead::Off);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
