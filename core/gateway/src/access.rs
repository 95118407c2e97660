//! The access record of each device: written off the invoke path, read by operators
//! (`device.access.list`) and by each node for itself (`node.access.list`).
//!
//! Recording never waits on the database: [`AccessLog::record`] queues the row on a bounded
//! channel and a writer task stores rows in batches (whatever arrives within 50 ms of a
//! batch's first row, at most 256), one transaction each (the store prunes by age and
//! per-device cap as it writes). A reader first [`AccessLog::flush`]es, so a call
//! that finished before the read is in what the read returns. If the queue is ever full
//! (the database stalled for thousands of calls) the row is dropped and counted, never
//! waited for.
//!
//! **Architecture Invariant:** a row carries who asked, the command's name, when, how long and
//! the outcome; never the params or the payload.
//!
//! **Architecture Invariant:** a node reads only its own record: `node.access.list` takes no
//! node id, the connection's proven device id is the only key it reads by.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use perch_protocol::access::{
    self as wire, AccessEntry, AccessList, DEFAULT_ACCESS_LIMIT, DeviceAccessParams,
    MAX_ACCESS_LIMIT, NodeAccessParams,
};
use perch_protocol::{DeviceId, ErrorCode, ErrorShape};
use perch_store::{AccessOutcome, AccessRecord, AccessRetention, NewAccess, Requester, Store};

use crate::hub::{Hub, lock, now_ms};
use crate::operator::store_error;

/// Rows waiting for the writer before new ones are dropped.
const QUEUE: usize = 4096;
/// Most rows written in one transaction.
const BATCH: usize = 256;
/// How long the writer gathers rows after the first of a batch: calls made one after another
/// share one transaction instead of one each, so the database stays off the invoke path's CPU.
/// A flush (a read, shutdown) writes at once.
const LINGER: std::time::Duration = std::time::Duration::from_millis(50);

enum Msg {
    Record(NewAccess),
    Flush(oneshot::Sender<()>),
}

/// The writer of the access record.
pub struct AccessLog {
    tx: mpsc::Sender<Msg>,
    /// The writer's end until its task starts (at the first use inside a runtime).
    rx: Mutex<Option<mpsc::Receiver<Msg>>>,
    store: Store,
    retention: AccessRetention,
    dropped: AtomicU64,
}

impl AccessLog {
    /// A log over `store`; the writer task starts at once when called inside a tokio runtime,
    /// otherwise at the first record or flush.
    pub fn new(store: Store, retention: AccessRetention) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let log = Self {
            tx,
            rx: Mutex::new(Some(rx)),
            store,
            retention,
            dropped: AtomicU64::new(0),
        };
        log.ensure_writer();
        log
    }

    fn ensure_writer(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if let Some(rx) = lock(&self.rx).take() {
            runtime.spawn(writer(self.store.clone(), self.retention, rx));
        }
    }

    /// Queues one row; never waits. A full queue drops the row and says so in the log.
    pub fn record(&self, entry: NewAccess) {
        self.ensure_writer();
        if let Err(e) = self.tx.try_send(Msg::Record(entry)) {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                let why = match e {
                    mpsc::error::TrySendError::Full(_) => "queue full",
                    mpsc::error::TrySendError::Closed(_) => "writer stopped",
                };
                tracing::warn!(dropped = n, why, "access record rows dropped");
            }
        }
    }

    /// Rows dropped because the queue was full, since start.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Waits until every row queued before this call is written (or its write failed).
    pub async fn flush(&self) {
        self.ensure_writer();
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

/// Writes queued rows in batches until every sender is gone; prunes once at start, so a host
/// that was off for a month does not show rows past their age.
async fn writer(store: Store, retention: AccessRetention, mut rx: mpsc::Receiver<Msg>) {
    if let Err(e) = store.access().prune(&retention, now_ms()).await {
        tracing::warn!(error = %e, "access record not pruned at start");
    }
    let mut batch = Vec::with_capacity(BATCH);
    let mut flushes = Vec::new();
    while let Some(first) = rx.recv().await {
        let until = tokio::time::Instant::now() + LINGER;
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Msg::Record(r) => batch.push(r),
                Msg::Flush(done) => flushes.push(done),
            }
            if batch.len() >= BATCH {
                break;
            }
            next = match rx.try_recv() {
                Ok(m) => Some(m),
                // Nothing queued: wait for more until the linger ends, unless a reader waits.
                Err(_) if flushes.is_empty() => tokio::time::timeout_at(until, rx.recv())
                    .await
                    .ok()
                    .flatten(),
                Err(_) => None,
            };
        }
        if !batch.is_empty() {
            if let Err(e) = store.access().record(&batch, &retention, now_ms()).await {
                tracing::error!(error = %e, rows = batch.len(), "access record rows not written");
            }
            batch.clear();
        }
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
    }
}

/// The outcome of a call as the record keeps it; `reached` says whether it was sent to the
/// node (else the host refused it on the node's behalf).
pub fn outcome_of<T>(result: &Result<T, ErrorShape>, reached: bool) -> AccessOutcome {
    match result {
        Ok(_) => AccessOutcome::Ok,
        Err(e) if reached => AccessOutcome::Failed(e.code.clone()),
        Err(e) => AccessOutcome::Refused(e.code.clone()),
    }
}

/// `device.access.list`: one device's record, newest first.
pub async fn device_access(
    hub: &Arc<Hub>,
    params: DeviceAccessParams,
) -> Result<AccessList, ErrorShape> {
    let (limit, before) = page_params(params.limit, params.before.as_deref())?;
    let node_id = crate::operator::resolve_node(hub, &params.node_id).await?;
    read(hub, &node_id, limit, before).await
}

/// `node.access.list`: the calling node's own record, newest first.
pub async fn node_access(
    hub: &Arc<Hub>,
    node: &DeviceId,
    params: NodeAccessParams,
) -> Result<AccessList, ErrorShape> {
    let (limit, before) = page_params(params.limit, params.before.as_deref())?;
    read(hub, node, limit, before).await
}

async fn read(
    hub: &Arc<Hub>,
    node_id: &DeviceId,
    limit: u32,
    before: Option<i64>,
) -> Result<AccessList, ErrorShape> {
    hub.access.flush().await;
    let page = hub
        .store
        .access()
        .page(node_id, before, limit)
        .await
        .map_err(store_error)?;
    Ok(AccessList {
        node_id: node_id.to_string(),
        entries: page.records.into_iter().map(entry).collect(),
        next_before: page.next_before.map(|id| id.to_string()),
    })
}

/// Checks `limit` and `before`; a bad one is `INVALID_REQUEST` naming the param.
fn page_params(limit: Option<u32>, before: Option<&str>) -> Result<(u32, Option<i64>), ErrorShape> {
    let limit = limit.unwrap_or(DEFAULT_ACCESS_LIMIT);
    if !(1..=MAX_ACCESS_LIMIT).contains(&limit) {
        return Err(ErrorShape::new(
            ErrorCode::InvalidRequest,
            format!("limit must be between 1 and {MAX_ACCESS_LIMIT}, got {limit}"),
        )
        .with_details(json!({"param": "limit", "min": 1, "max": MAX_ACCESS_LIMIT})));
    }
    let before = match before {
        None => None,
        Some(text) => match text.trim().parse::<i64>() {
            Ok(id) if id > 0 => Some(id),
            _ => {
                let shown: String = text.chars().take(32).collect();
                return Err(ErrorShape::new(
                    ErrorCode::InvalidRequest,
                    format!("before {shown:?} is not a cursor this host gave out"),
                )
                .with_details(json!({"param": "before"})));
            }
        },
    };
    Ok((limit, before))
}

fn entry(r: AccessRecord) -> AccessEntry {
    let requester = match r.requester {
        Requester::Turn {
            session_key,
            turn_id,
        } => wire::AccessRequester::Turn {
            session_key,
            turn_id,
        },
        Requester::Operator { device_id, label } => wire::AccessRequester::Operator {
            device_id: device_id.map(|d| d.to_string()),
            label,
        },
    };
    let error_code = r.outcome.error_code().map(|c| c.as_str().to_string());
    let outcome = match r.outcome {
        AccessOutcome::Ok => wire::AccessOutcome::Ok,
        AccessOutcome::Failed(_) => wire::AccessOutcome::Failed,
        AccessOutcome::Refused(_) => wire::AccessOutcome::Refused,
    };
    AccessEntry {
        at_ms: r.at_ms,
        duration_ms: r.duration_ms,
        command: r.command,
        requester,
        outcome,
        error_code,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_params_are_checked() {
        assert_eq!(
            page_params(None, None).unwrap(),
            (DEFAULT_ACCESS_LIMIT, None)
        );
        assert_eq!(page_params(Some(1), Some(" 42 ")).unwrap(), (1, Some(42)));
        for bad in [0, MAX_ACCESS_LIMIT + 1] {
            let e = page_params(Some(bad), None).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidRequest);
            assert_eq!(e.details.unwrap()["param"], "limit");
        }
        for bad in ["", "abc", "-3", "0", "1e3", "99999999999999999999999"] {
            let e = page_params(None, Some(bad)).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidRequest, "{bad}");
            assert_eq!(e.details.unwrap()["param"], "before");
        }
    }

    #[test]
    fn outcomes_say_whether_the_node_was_reached() {
        let refused: Result<(), ErrorShape> =
            Err(ErrorShape::new(ErrorCode::CommandNotAllowed, "no"));
        assert_eq!(
            outcome_of(&refused, false),
            AccessOutcome::Refused(ErrorCode::CommandNotAllowed)
        );
        assert_eq!(
            outcome_of(&refused, true),
            AccessOutcome::Failed(ErrorCode::CommandNotAllowed)
        );
        assert_eq!(
            outcome_of(&Ok::<(), ErrorShape>(()), true),
            AccessOutcome::Ok
        );
    }

    #[tokio::test]
    async fn rows_are_written_in_the_background_and_a_flush_waits_for_them() {
        let store = Store::open_in_memory().await.unwrap();
        let log = AccessLog::new(store.clone(), AccessRetention::default());
        let node = DeviceId::from_public_key(&[3; 32]);
        for i in 0..300 {
            log.record(NewAccess {
                device_id: node.clone(),
                at_ms: now_ms(),
                duration_ms: i,
                command: "device.info".into(),
                requester: Requester::Operator {
                    device_id: None,
                    label: "test".into(),
                },
                outcome: AccessOutcome::Ok,
            });
        }
        log.flush().await;
        let page = store.access().page(&node, None, 500).await.unwrap();
        assert_eq!(page.records.len(), 300);
        assert_eq!(page.records[0].duration_ms, 299);
        assert_eq!(log.dropped(), 0);
    }
}
