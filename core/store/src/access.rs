//! The access record: per device, every node command the assistant or an operator ran on it
//! (or that the host refused on its behalf), with who asked, when, how long it took and what
//! came of it, so the user, and the device itself, can see what was read from it.
//!
//! **Architecture Invariant:** the record never holds a command's params or payload, only its
//! name. Text that comes from clients (labels, session keys) is bounded before it is stored.
//!
//! **Architecture Invariant:** the table is bounded by age and by a per-device row cap
//! ([`AccessRetention`]); [`AccessRepo::record`] prunes itself, amortised over
//! [`AccessRetention::prune_every`] inserted rows, so no caller can grow it without end.

use std::fmt;

use perch_protocol::{DeviceId, ErrorCode};
use sqlx::SqlitePool;

use crate::{StoreError, begin_write, parse_device_id};

/// Longest operator label kept, in characters; longer ones are cut with an ellipsis.
pub const ACCESS_LABEL_MAX_CHARS: usize = 64;

/// Longest session key, turn id, command or error code kept, in characters.
pub const ACCESS_TEXT_MAX_CHARS: usize = 128;

/// Who asked for a command to run on a device.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Requester {
    /// The assistant, during one chat turn.
    Turn {
        /// The conversation the turn belongs to.
        session_key: String,
        /// The turn (as in `agent.turn` and `chat` events).
        turn_id: String,
    },
    /// An operator client (the CLI, the web UI, the menu-bar app).
    Operator {
        /// The operator's device id, when its connection proved a device key.
        device_id: Option<DeviceId>,
        /// The client's display name or client id.
        label: String,
    },
}

impl Requester {
    /// The stored kind: `turn` or `operator`.
    pub fn kind(&self) -> &'static str {
        match self {
            Requester::Turn { .. } => "turn",
            Requester::Operator { .. } => "operator",
        }
    }
}

/// What came of one command.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AccessOutcome {
    /// The node answered with a result.
    Ok,
    /// The command reached the node (or was sent to it) and failed: the node's error, a
    /// timeout, or the node leaving mid-call.
    Failed(ErrorCode),
    /// The host refused the command on the device's behalf before it reached the node
    /// (not advertised, host policy, location sharing off, not connected).
    Refused(ErrorCode),
}

impl AccessOutcome {
    /// The stored text: `ok`, `failed` or `refused`.
    pub fn as_str(&self) -> &'static str {
        match self {
            AccessOutcome::Ok => "ok",
            AccessOutcome::Failed(_) => "failed",
            AccessOutcome::Refused(_) => "refused",
        }
    }

    /// The error code of a failure or refusal.
    pub fn error_code(&self) -> Option<&ErrorCode> {
        match self {
            AccessOutcome::Ok => None,
            AccessOutcome::Failed(c) | AccessOutcome::Refused(c) => Some(c),
        }
    }
}

impl fmt::Display for AccessOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.error_code() {
            None => f.write_str(self.as_str()),
            Some(code) => write!(f, "{} ({})", self.as_str(), code.as_str()),
        }
    }
}

/// One command to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAccess {
    /// The device the command was for.
    pub device_id: DeviceId,
    /// When it was asked for.
    pub at_ms: i64,
    /// How long until its outcome was known.
    pub duration_ms: u64,
    /// The command's name (`location.get`); never its params.
    pub command: String,
    /// Who asked.
    pub requester: Requester,
    /// What came of it.
    pub outcome: AccessOutcome,
}

/// One row of the access record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRecord {
    /// Increasing id; later records have larger ids. Also the paging cursor.
    pub id: i64,
    /// The device the command was for.
    pub device_id: DeviceId,
    /// When it was asked for.
    pub at_ms: i64,
    /// How long until its outcome was known.
    pub duration_ms: u64,
    /// The command's name.
    pub command: String,
    /// Who asked.
    pub requester: Requester,
    /// What came of it.
    pub outcome: AccessOutcome,
}

/// A page of one device's record, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessPage {
    /// The rows.
    pub records: Vec<AccessRecord>,
    /// Pass as `before` for the next (older) page; `None` when this page reached the end.
    pub next_before: Option<i64>,
}

/// How long the record is kept: bounded by age and by a row cap per device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessRetention {
    /// Rows older than this are deleted.
    pub max_age_ms: i64,
    /// At most this many rows per device are kept (the newest).
    pub per_device_cap: u32,
    /// Pruning runs once per this many inserted rows, so a device holds at most
    /// `per_device_cap + prune_every` rows between prunes.
    pub prune_every: u32,
}

impl AccessRetention {
    /// 30 days.
    pub const DEFAULT_MAX_AGE_MS: i64 = 30 * 24 * 60 * 60 * 1000;
    /// 2,000 rows per device.
    pub const DEFAULT_PER_DEVICE_CAP: u32 = 2_000;
    /// A prune every 128 rows.
    pub const DEFAULT_PRUNE_EVERY: u32 = 128;
}

impl Default for AccessRetention {
    fn default() -> Self {
        Self {
            max_age_ms: Self::DEFAULT_MAX_AGE_MS,
            per_device_cap: Self::DEFAULT_PER_DEVICE_CAP,
            prune_every: Self::DEFAULT_PRUNE_EVERY,
        }
    }
}

/// `text` without control, bidi or zero-width characters, cut to `max` characters (the last
/// one an ellipsis when it was longer), so a record stays readable whatever a client sent.
pub fn bounded(text: &str, max: usize) -> String {
    let clean: String = text
        .chars()
        .filter(|c| !c.is_control() && !is_invisible(*c))
        .collect();
    let clean = clean.trim();
    if clean.chars().count() <= max {
        return clean.to_string();
    }
    let mut out: String = clean.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Bidi controls and zero-width characters: they can make a label read as something else.
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

#[derive(sqlx::FromRow)]
struct AccessRow {
    id: i64,
    device_id: String,
    at_ms: i64,
    duration_ms: i64,
    command: String,
    requester: String,
    session_key: Option<String>,
    turn_id: Option<String>,
    operator_device_id: Option<String>,
    operator_label: Option<String>,
    outcome: String,
    error_code: Option<String>,
}

const TABLE: &str = "node_access";

impl TryFrom<AccessRow> for AccessRecord {
    type Error = StoreError;

    fn try_from(row: AccessRow) -> Result<Self, StoreError> {
        let requester = match (row.requester.as_str(), row.session_key, row.turn_id) {
            ("turn", Some(session_key), Some(turn_id)) => Requester::Turn {
                session_key,
                turn_id,
            },
            ("operator", None, None) => Requester::Operator {
                device_id: row
                    .operator_device_id
                    .as_deref()
                    .map(|d| parse_device_id(TABLE, d))
                    .transpose()?,
                label: row.operator_label.unwrap_or_default(),
            },
            (kind, ..) => return Err(StoreError::corrupt(TABLE, "requester", kind)),
        };
        let outcome = match (row.outcome.as_str(), row.error_code) {
            ("ok", None) => AccessOutcome::Ok,
            ("failed", Some(code)) => AccessOutcome::Failed(ErrorCode::parse(&code)),
            ("refused", Some(code)) => AccessOutcome::Refused(ErrorCode::parse(&code)),
            (outcome, _) => return Err(StoreError::corrupt(TABLE, "outcome", outcome)),
        };
        let duration_ms = u64::try_from(row.duration_ms)
            .map_err(|_| StoreError::corrupt(TABLE, "duration_ms", &row.duration_ms.to_string()))?;
        Ok(AccessRecord {
            id: row.id,
            device_id: parse_device_id(TABLE, &row.device_id)?,
            at_ms: row.at_ms,
            duration_ms,
            command: row.command,
            requester,
            outcome,
        })
    }
}

/// The access record of every device.
#[derive(Debug, Clone, Copy)]
pub struct AccessRepo<'a> {
    pool: &'a SqlitePool,
}

impl<'a> AccessRepo<'a> {
    pub(crate) fn new(pool: &'a SqlitePool) -> Self {
        AccessRepo { pool }
    }

    /// Appends `entries` in one transaction, bounding their text first, and prunes by
    /// `retention` when the ids just inserted cross a multiple of `prune_every`. Returns how
    /// many rows the prune removed (0 when it did not run).
    pub async fn record(
        &self,
        entries: &[NewAccess],
        retention: &AccessRetention,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        if entries.is_empty() {
            return Ok(0);
        }
        let mut tx = begin_write(self.pool).await?;
        let mut first = None;
        let mut last = 0;
        for e in entries {
            let (session_key, turn_id, op_device, op_label) = match &e.requester {
                Requester::Turn {
                    session_key,
                    turn_id,
                } => (
                    Some(bounded(session_key, ACCESS_TEXT_MAX_CHARS)),
                    Some(bounded(turn_id, ACCESS_TEXT_MAX_CHARS)),
                    None,
                    None,
                ),
                Requester::Operator { device_id, label } => (
                    None,
                    None,
                    device_id.as_ref().map(|d| d.to_string()),
                    Some(bounded(label, ACCESS_LABEL_MAX_CHARS)),
                ),
            };
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO node_access (device_id, at_ms, duration_ms, command, requester, \
                 session_key, turn_id, operator_device_id, operator_label, outcome, error_code) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
            )
            .bind(e.device_id.as_str())
            .bind(e.at_ms)
            .bind(i64::try_from(e.duration_ms).unwrap_or(i64::MAX))
            .bind(bounded(&e.command, ACCESS_TEXT_MAX_CHARS))
            .bind(e.requester.kind())
            .bind(session_key)
            .bind(turn_id)
            .bind(op_device)
            .bind(op_label)
            .bind(e.outcome.as_str())
            .bind(
                e.outcome
                    .error_code()
                    .map(|c| bounded(c.as_str(), ACCESS_TEXT_MAX_CHARS)),
            )
            .fetch_one(&mut *tx)
            .await?;
            first.get_or_insert(id);
            last = id;
        }
        let every = i64::from(retention.prune_every.max(1));
        let first = first.unwrap_or(last);
        let pruned = if (first - 1).div_euclid(every) != last.div_euclid(every) {
            prune_in(&mut tx, retention, now_ms).await?
        } else {
            0
        };
        tx.commit().await?;
        if pruned > 0 {
            tracing::debug!(pruned, "access record pruned");
        }
        Ok(pruned)
    }

    /// Deletes rows older than the retention's age and each device's rows past its cap;
    /// returns how many went.
    pub async fn prune(&self, retention: &AccessRetention, now_ms: i64) -> Result<u64, StoreError> {
        let mut tx = begin_write(self.pool).await?;
        let pruned = prune_in(&mut tx, retention, now_ms).await?;
        tx.commit().await?;
        Ok(pruned)
    }

    /// The device's latest `limit` rows with an id below `before` (all rows when `None`),
    /// newest first, and the cursor of the next page.
    pub async fn page(
        &self,
        device_id: &DeviceId,
        before: Option<i64>,
        limit: u32,
    ) -> Result<AccessPage, StoreError> {
        let mut rows: Vec<AccessRow> = sqlx::query_as(
            "SELECT id, device_id, at_ms, duration_ms, command, requester, session_key, \
             turn_id, operator_device_id, operator_label, outcome, error_code \
             FROM node_access WHERE device_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
        )
        .bind(device_id.as_str())
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit) + 1)
        .fetch_all(self.pool)
        .await?;
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let records = rows
            .into_iter()
            .map(AccessRecord::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        let next_before = if more {
            records.last().map(|r| r.id)
        } else {
            None
        };
        Ok(AccessPage {
            records,
            next_before,
        })
    }
}

async fn prune_in(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    retention: &AccessRetention,
    now_ms: i64,
) -> Result<u64, StoreError> {
    let old = sqlx::query("DELETE FROM node_access WHERE at_ms < $1")
        .bind(now_ms.saturating_sub(retention.max_age_ms))
        .execute(&mut **tx)
        .await?
        .rows_affected();
    let over = sqlx::query(
        "DELETE FROM node_access WHERE id IN (SELECT id FROM (SELECT id, ROW_NUMBER() OVER \
         (PARTITION BY device_id ORDER BY id DESC) AS n FROM node_access) AS ranked \
         WHERE n > $1)",
    )
    .bind(i64::from(retention.per_device_cap))
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(old + over)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;
    use crate::test_support::device;

    fn turn(seed: u8, at_ms: i64, command: &str) -> NewAccess {
        NewAccess {
            device_id: device(seed),
            at_ms,
            duration_ms: 12,
            command: command.to_string(),
            requester: Requester::Turn {
                session_key: "main".into(),
                turn_id: format!("t-{at_ms}"),
            },
            outcome: AccessOutcome::Ok,
        }
    }

    fn operator(seed: u8, at_ms: i64, label: &str, outcome: AccessOutcome) -> NewAccess {
        NewAccess {
            device_id: device(seed),
            at_ms,
            duration_ms: 3,
            command: "location.get".into(),
            requester: Requester::Operator {
                device_id: Some(device(9)),
                label: label.into(),
            },
            outcome,
        }
    }

    const KEEP_ALL: AccessRetention = AccessRetention {
        max_age_ms: i64::MAX,
        per_device_cap: u32::MAX,
        prune_every: 1_000_000,
    };

    #[tokio::test]
    async fn records_round_trip_newest_first_per_device() {
        let store = Store::open_in_memory().await.unwrap();
        let repo = store.access();
        let entries = [
            turn(1, 100, "device.info"),
            operator(
                1,
                200,
                "perch CLI",
                AccessOutcome::Refused(ErrorCode::CommandNotAllowed),
            ),
            turn(2, 250, "device.status"),
            NewAccess {
                requester: Requester::Operator {
                    device_id: None,
                    label: "web UI".into(),
                },
                ..operator(
                    1,
                    300,
                    "",
                    AccessOutcome::Failed(ErrorCode::Other("CAMERA_DISABLED".into())),
                )
            },
        ];
        repo.record(&entries, &KEEP_ALL, 400).await.unwrap();

        let page = repo.page(&device(1), None, 10).await.unwrap();
        assert_eq!(page.next_before, None);
        let got: Vec<_> = page.records.iter().map(|r| r.at_ms).collect();
        assert_eq!(got, [300, 200, 100]);
        assert_eq!(
            page.records[0].requester,
            Requester::Operator {
                device_id: None,
                label: "web UI".into()
            }
        );
        assert_eq!(
            page.records[0].outcome,
            AccessOutcome::Failed(ErrorCode::Other("CAMERA_DISABLED".into()))
        );
        assert_eq!(
            page.records[1].outcome,
            AccessOutcome::Refused(ErrorCode::CommandNotAllowed)
        );
        assert_eq!(
            page.records[1].requester,
            Requester::Operator {
                device_id: Some(device(9)),
                label: "perch CLI".into()
            }
        );
        assert_eq!(
            page.records[2].requester,
            Requester::Turn {
                session_key: "main".into(),
                turn_id: "t-100".into()
            }
        );
        assert_eq!(page.records[2].command, "device.info");
        assert_eq!(page.records[2].duration_ms, 12);
        assert_eq!(page.records[2].outcome, AccessOutcome::Ok);
        // Device 2 sees only its own row.
        let other = repo.page(&device(2), None, 10).await.unwrap();
        assert_eq!(other.records.len(), 1);
        assert_eq!(other.records[0].command, "device.status");
        assert!(
            repo.page(&device(3), None, 10)
                .await
                .unwrap()
                .records
                .is_empty()
        );
    }

    #[tokio::test]
    async fn pages_follow_the_cursor_to_the_end() {
        let store = Store::open_in_memory().await.unwrap();
        let repo = store.access();
        let entries: Vec<_> = (0..7).map(|i| turn(1, i, "device.info")).collect();
        repo.record(&entries, &KEEP_ALL, 10).await.unwrap();
        let mut seen = Vec::new();
        let mut before = None;
        let mut pages = 0;
        loop {
            let page = repo.page(&device(1), before, 3).await.unwrap();
            pages += 1;
            seen.extend(page.records.iter().map(|r| r.at_ms));
            match page.next_before {
                Some(b) => before = Some(b),
                None => break,
            }
        }
        assert_eq!(pages, 3);
        assert_eq!(seen, [6, 5, 4, 3, 2, 1, 0]);
        // A page that ends exactly at the last row says there is no more.
        let page = repo.page(&device(1), None, 7).await.unwrap();
        assert_eq!(page.next_before, None);
        // A cursor past the oldest row is an empty page, not an error.
        let first_id = repo.page(&device(1), None, 7).await.unwrap().records[6].id;
        assert!(
            repo.page(&device(1), Some(first_id), 5)
                .await
                .unwrap()
                .records
                .is_empty()
        );
    }

    #[tokio::test]
    async fn old_rows_age_out() {
        let store = Store::open_in_memory().await.unwrap();
        let repo = store.access();
        let day = 24 * 60 * 60 * 1000;
        let now = 100 * day;
        let retention = AccessRetention::default();
        repo.record(
            &[
                turn(1, now - 31 * day, "device.info"),
                turn(1, now - 29 * day, "device.status"),
                turn(2, now - 40 * day, "device.info"),
            ],
            &KEEP_ALL,
            now,
        )
        .await
        .unwrap();
        assert_eq!(repo.prune(&retention, now).await.unwrap(), 2);
        let left = repo.page(&device(1), None, 10).await.unwrap().records;
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].command, "device.status");
        assert!(
            repo.page(&device(2), None, 10)
                .await
                .unwrap()
                .records
                .is_empty()
        );
    }

    /// Recording prunes by itself, amortised: a device never holds more than its cap plus one
    /// prune interval, and the newest rows are the ones kept. Other devices keep theirs.
    #[tokio::test]
    async fn the_per_device_cap_holds_while_recording() {
        let store = Store::open_in_memory().await.unwrap();
        let repo = store.access();
        let retention = AccessRetention {
            max_age_ms: i64::MAX / 2,
            per_device_cap: 20,
            prune_every: 8,
        };
        repo.record(&[turn(2, 0, "device.info")], &retention, 0)
            .await
            .unwrap();
        let mut pruned = 0;
        for i in 1..=100 {
            pruned += repo
                .record(&[turn(1, i, "device.info")], &retention, i)
                .await
                .unwrap();
            let count: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM node_access WHERE device_id = $1")
                    .bind(device(1).as_str())
                    .fetch_one(&store.pool)
                    .await
                    .unwrap();
            assert!(count <= 20 + 8, "{count} rows after {i} records");
        }
        assert!(pruned >= 100 - 28, "{pruned}");
        // A batch of 50 in one call is bounded too.
        let batch: Vec<_> = (101..151).map(|i| turn(1, i, "device.status")).collect();
        repo.record(&batch, &retention, 151).await.unwrap();
        let page = repo.page(&device(1), None, 100).await.unwrap();
        assert_eq!(page.records.len(), 20);
        assert_eq!(page.records[0].at_ms, 150);
        assert_eq!(page.records[19].at_ms, 131);
        assert_eq!(
            repo.page(&device(2), None, 10).await.unwrap().records.len(),
            1
        );
    }

    #[tokio::test]
    async fn odd_text_is_bounded_and_cleaned() {
        let store = Store::open_in_memory().await.unwrap();
        let repo = store.access();
        let long_label = format!("evil\u{202E}\u{200B}label\n{}", "x".repeat(10_000));
        let odd = NewAccess {
            device_id: device(1),
            at_ms: 1,
            duration_ms: u64::MAX,
            command: "c".repeat(1_000),
            requester: Requester::Operator {
                device_id: None,
                label: long_label,
            },
            outcome: AccessOutcome::Failed(ErrorCode::Other("E".repeat(500))),
        };
        let turn = NewAccess {
            requester: Requester::Turn {
                session_key: "s".repeat(5_000),
                turn_id: "\u{0}t\u{7}".into(),
            },
            ..odd.clone()
        };
        repo.record(&[odd, turn], &KEEP_ALL, 2).await.unwrap();
        let rows = repo.page(&device(1), None, 10).await.unwrap().records;
        let Requester::Turn {
            session_key,
            turn_id,
        } = &rows[0].requester
        else {
            panic!("{:?}", rows[0].requester);
        };
        assert_eq!(session_key.chars().count(), ACCESS_TEXT_MAX_CHARS);
        assert!(session_key.ends_with('…'));
        assert_eq!(turn_id, "t");
        let Requester::Operator { label, .. } = &rows[1].requester else {
            panic!("{:?}", rows[1].requester);
        };
        assert_eq!(label.chars().count(), ACCESS_LABEL_MAX_CHARS);
        assert!(label.starts_with("evillabelx"), "{label}");
        assert_eq!(rows[1].command.chars().count(), ACCESS_TEXT_MAX_CHARS);
        assert_eq!(rows[1].duration_ms, i64::MAX as u64);
        let code = rows[1].outcome.error_code().unwrap().as_str().to_string();
        assert_eq!(code.chars().count(), ACCESS_TEXT_MAX_CHARS);
        // An empty batch writes nothing.
        assert_eq!(repo.record(&[], &KEEP_ALL, 3).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn corrupt_rows_are_errors_and_the_schema_refuses_mixed_shapes() {
        let store = Store::open_in_memory().await.unwrap();
        // A turn row carrying an operator label is refused by the table itself.
        let mixed = sqlx::query(
            "INSERT INTO node_access (device_id, at_ms, duration_ms, command, requester, \
             session_key, turn_id, operator_label, outcome) \
             VALUES ($1, 1, 1, 'x', 'turn', 's', 't', 'op', 'ok')",
        )
        .bind(device(1).as_str())
        .execute(&store.pool)
        .await;
        assert!(mixed.is_err());
        // So is an ok row with an error code, and an unknown outcome.
        for (outcome, code) in [("ok", Some("TIMEOUT")), ("maybe", None)] {
            let bad = sqlx::query(
                "INSERT INTO node_access (device_id, at_ms, duration_ms, command, requester, \
                 operator_label, outcome, error_code) \
                 VALUES ($1, 1, 1, 'x', 'operator', 'op', $2, $3)",
            )
            .bind(device(1).as_str())
            .bind(outcome)
            .bind(code)
            .execute(&store.pool)
            .await;
            assert!(bad.is_err(), "{outcome}");
        }
        // A row with a malformed operator device id (a hand-edited database) reads as Corrupt.
        sqlx::query(
            "INSERT INTO node_access (device_id, at_ms, duration_ms, command, requester, \
             operator_device_id, operator_label, outcome) \
             VALUES ($1, 1, 1, 'x', 'operator', 'not-a-device', 'op', 'ok')",
        )
        .bind(device(1).as_str())
        .execute(&store.pool)
        .await
        .unwrap();
        assert!(matches!(
            store.access().page(&device(1), None, 5).await.unwrap_err(),
            StoreError::Corrupt(_)
        ));
    }

    #[tokio::test]
    async fn the_table_has_no_payload_columns() {
        let store = Store::open_in_memory().await.unwrap();
        let columns: Vec<String> =
            sqlx::query_scalar("SELECT name FROM pragma_table_info('node_access')")
                .fetch_all(&store.pool)
                .await
                .unwrap();
        assert!(columns.contains(&"command".to_string()));
        for c in &columns {
            assert!(
                !["param", "payload", "result", "args"]
                    .iter()
                    .any(|bad| c.contains(bad)),
                "{c}"
            );
        }
    }

    #[test]
    fn outcomes_read_well() {
        assert_eq!(AccessOutcome::Ok.to_string(), "ok");
        assert_eq!(
            AccessOutcome::Refused(ErrorCode::LocationSharingOff).to_string(),
            "refused (LOCATION_SHARING_OFF)"
        );
        assert_eq!(bounded("  a\u{200F}b  ", 10), "ab");
        assert_eq!(bounded("abcdef", 4), "abc…");
    }
}
