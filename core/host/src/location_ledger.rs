//! The kernel's `LocationLedger` over the store: consent, places and the audit, for
//! location-aware prompts.

use futures_util::future::BoxFuture;

use perch_kernel::location::{
    AuditEntry, AuditOutcome, LedgerError, LocationLedger, NamedPlace, Precision, ReadPath,
};
use perch_protocol::DeviceId;
use perch_store::{LocationOutcome, LocationPrecision, LocationReadPath, NewAuditEntry, Store};

/// Location settings and audit, kept in SQLite.
pub struct StoreLedger(pub Store);

fn precision(p: LocationPrecision) -> Precision {
    match p {
        LocationPrecision::Exact => Precision::Exact,
        LocationPrecision::City => Precision::City,
        LocationPrecision::Off => Precision::Off,
    }
}

fn stored_precision(p: Precision) -> LocationPrecision {
    match p {
        Precision::Exact => LocationPrecision::Exact,
        Precision::City => LocationPrecision::City,
        Precision::Off => LocationPrecision::Off,
    }
}

fn outcome(o: AuditOutcome) -> LocationOutcome {
    match o {
        AuditOutcome::Included => LocationOutcome::Included,
        AuditOutcome::Stale => LocationOutcome::Stale,
        AuditOutcome::Dropped => LocationOutcome::Dropped,
        AuditOutcome::Off => LocationOutcome::Off,
        AuditOutcome::Unavailable => LocationOutcome::Unavailable,
    }
}

impl LocationLedger for StoreLedger {
    fn precision<'a>(
        &'a self,
        device_id: &'a DeviceId,
    ) -> BoxFuture<'a, Result<Precision, LedgerError>> {
        Box::pin(async move {
            self.0
                .location()
                .sharing(device_id)
                .await
                .map(precision)
                .map_err(LedgerError::new)
        })
    }

    fn places(&self) -> BoxFuture<'_, Result<Vec<NamedPlace>, LedgerError>> {
        Box::pin(async move {
            let rows = self
                .0
                .location()
                .list_places()
                .await
                .map_err(LedgerError::new)?;
            Ok(rows
                .into_iter()
                .map(|p| NamedPlace {
                    name: p.name,
                    lat: p.lat,
                    lon: p.lon,
                    radius_m: p.radius_m,
                })
                .collect())
        })
    }

    fn record<'a>(&'a self, entry: &'a AuditEntry) -> BoxFuture<'a, Result<(), LedgerError>> {
        Box::pin(async move {
            let row = NewAuditEntry {
                at_ms: entry.at_ms,
                device_id: entry.device_id.clone(),
                session_key: entry.session_key.clone(),
                precision: stored_precision(entry.precision),
                outcome: outcome(entry.outcome),
                place_name: entry.place_name.clone(),
                city: entry.city.clone(),
                path: match entry.path {
                    ReadPath::Context => LocationReadPath::Context,
                    ReadPath::Tool => LocationReadPath::Tool,
                    ReadPath::Change => LocationReadPath::Change,
                },
            };
            self.0
                .location()
                .record_audit(&row)
                .await
                .map(|_| ())
                .map_err(LedgerError::new)
        })
    }
}
