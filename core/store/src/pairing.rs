//! The `pairing_requests` table: devices asking to be paired, and the operator's decisions.

use std::fmt;

use perch_protocol::DeviceId;
use perch_protocol::handshake::Role;
use sqlx::SqlitePool;

use crate::devices::{DeviceRecord, PairingSubject, pair_device};
use crate::{StoreError, begin_write, parse_device_id, parse_role};

/// Columns of `pairing_requests` in the order [`PairingRow`] expects.
macro_rules! request_columns {
    () => {
        "request_id, device_id, public_key, role, display_name, platform, device_family, \
         remote_addr, requested_at_ms, updated_at_ms, status, decided_at_ms, verification_code"
    };
}

/// Where a pairing request stands; only `Pending` can still be decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestStatus {
    /// Waiting for an operator.
    Pending,
    /// An operator approved it; the device is paired and holds a token.
    Approved,
    /// An operator rejected it.
    Rejected,
    /// Nobody decided before it went stale.
    Expired,
}

impl RequestStatus {
    /// The text stored in `pairing_requests.status`.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestStatus::Pending => "pending",
            RequestStatus::Approved => "approved",
            RequestStatus::Rejected => "rejected",
            RequestStatus::Expired => "expired",
        }
    }

    /// Parses the stored text; `None` for anything unknown.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(RequestStatus::Pending),
            "approved" => Some(RequestStatus::Approved),
            "rejected" => Some(RequestStatus::Rejected),
            "expired" => Some(RequestStatus::Expired),
            _ => None,
        }
    }
}

impl fmt::Display for RequestStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a connecting device tells us when it asks to be paired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPairingRequest {
    /// Hex SHA-256 of the public key (already verified by the gateway).
    pub device_id: DeviceId,
    /// The device's public key as it arrived on the wire (base64url).
    pub public_key: String,
    /// The role it wants.
    pub role: Role,
    /// Human name for the approval prompt.
    pub display_name: String,
    /// Operating system, for example `linux` or `ios`.
    pub platform: String,
    /// Hardware family, when the device said.
    pub device_family: Option<String>,
    /// Peer address the request came from, for the approval prompt.
    pub remote_addr: Option<String>,
}

impl<'a> From<&'a NewPairingRequest> for PairingSubject<'a> {
    fn from(r: &'a NewPairingRequest) -> Self {
        PairingSubject {
            device_id: &r.device_id,
            public_key: &r.public_key,
            display_name: &r.display_name,
            platform: &r.platform,
            device_family: r.device_family.as_deref(),
            role: r.role,
        }
    }
}

impl<'a> From<&'a PairingRequestRecord> for PairingSubject<'a> {
    fn from(r: &'a PairingRequestRecord) -> Self {
        PairingSubject {
            device_id: &r.device_id,
            public_key: &r.public_key,
            display_name: &r.display_name,
            platform: &r.platform,
            device_family: r.device_family.as_deref(),
            role: r.role,
        }
    }
}

/// One row of `pairing_requests`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairingRequestRecord {
    /// Opaque id the operator approves or rejects by.
    pub request_id: String,
    /// The device asking.
    pub device_id: DeviceId,
    /// Its public key (base64url).
    pub public_key: String,
    /// The role it asked for.
    pub role: Role,
    /// Human name for the approval prompt.
    pub display_name: String,
    /// Operating system.
    pub platform: String,
    /// Hardware family, when the device said.
    pub device_family: Option<String>,
    /// Peer address of the latest attempt.
    pub remote_addr: Option<String>,
    /// When the first attempt arrived.
    pub requested_at_ms: i64,
    /// When the latest attempt arrived; stale requests expire by this.
    pub updated_at_ms: i64,
    /// Where the request stands.
    pub status: RequestStatus,
    /// When it was approved, rejected or expired.
    pub decided_at_ms: Option<i64>,
    /// The code the device shows, as the host computed it; `None` when the client made no
    /// commitment to derive one from.
    pub verification_code: Option<String>,
}

/// The raw row, before enum parsing.
#[derive(sqlx::FromRow)]
struct PairingRow {
    request_id: String,
    device_id: String,
    public_key: String,
    role: String,
    display_name: String,
    platform: String,
    device_family: Option<String>,
    remote_addr: Option<String>,
    requested_at_ms: i64,
    updated_at_ms: i64,
    status: String,
    decided_at_ms: Option<i64>,
    verification_code: Option<String>,
}

impl TryFrom<PairingRow> for PairingRequestRecord {
    type Error = StoreError;

    fn try_from(row: PairingRow) -> Result<Self, StoreError> {
        let status = RequestStatus::parse(&row.status)
            .ok_or_else(|| StoreError::corrupt("pairing_requests", "status", &row.status))?;
        Ok(PairingRequestRecord {
            request_id: row.request_id,
            device_id: parse_device_id("pairing_requests", &row.device_id)?,
            public_key: row.public_key,
            role: parse_role("pairing_requests", &row.role)?,
            display_name: row.display_name,
            platform: row.platform,
            device_family: row.device_family,
            remote_addr: row.remote_addr,
            requested_at_ms: row.requested_at_ms,
            updated_at_ms: row.updated_at_ms,
            status,
            decided_at_ms: row.decided_at_ms,
            verification_code: row.verification_code,
        })
    }
}

/// Reads one request inside any executor (pool or open transaction).
async fn fetch_request<'e, E>(
    executor: E,
    request_id: &str,
) -> Result<Option<PairingRequestRecord>, StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Sqlite>,
{
    let row: Option<PairingRow> = sqlx::query_as(concat!(
        "SELECT ",
        request_columns!(),
        " FROM pairing_requests WHERE request_id = $1"
    ))
    .bind(request_id)
    .fetch_optional(executor)
    .await?;
    row.map(PairingRequestRecord::try_from).transpose()
}

/// Fails unless the request exists and is still pending.
fn require_pending(
    request_id: &str,
    found: Option<PairingRequestRecord>,
) -> Result<PairingRequestRecord, StoreError> {
    let request = found.ok_or_else(|| StoreError::NotFound {
        what: "pairing request",
        id: request_id.to_string(),
    })?;
    if request.status != RequestStatus::Pending {
        return Err(StoreError::NotPending {
            request_id: request_id.to_string(),
            status: request.status,
        });
    }
    Ok(request)
}

/// Caps on pending requests for [`PairingRepo::file_pending`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingCaps {
    /// Pending requests in all; the oldest expire to make room past it.
    pub total: usize,
    /// Pending requests from one `remote_addr`; new ones are refused past it.
    pub per_source: usize,
}

/// A request the host expired, so the device waiting on it and every operator can be told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiredRequest {
    /// The request.
    pub request_id: String,
    /// The device that asked.
    pub device_id: DeviceId,
}

/// Reads `(request_id, device_id)` rows returned by an expiring UPDATE.
fn expired_rows(rows: Vec<(String, String)>) -> Result<Vec<ExpiredRequest>, StoreError> {
    rows.into_iter()
        .map(|(request_id, device_id)| {
            Ok(ExpiredRequest {
                device_id: parse_device_id("pairing_requests", &device_id)?,
                request_id,
            })
        })
        .collect()
}

/// What [`PairingRepo::file_pending`] did.
#[derive(Debug)]
pub enum Filed {
    /// The device already had a pending request; it was refreshed.
    Existing(PairingRequestRecord),
    /// A new request, and the ids of the oldest requests expired to make room for it.
    Created {
        /// The new request.
        record: PairingRequestRecord,
        /// Requests expired to stay under the total cap.
        expired: Vec<ExpiredRequest>,
    },
    /// The source has this many pending requests already; nothing was written.
    SourceFull {
        /// Pending requests from the source.
        pending: usize,
    },
}

/// Reads and decides pairing requests.
#[derive(Debug, Clone, Copy)]
pub struct PairingRepo<'a> {
    pool: &'a SqlitePool,
}

impl<'a> PairingRepo<'a> {
    pub(crate) fn new(pool: &'a SqlitePool) -> Self {
        PairingRepo { pool }
    }

    /// Records a pairing attempt. If the device already has a pending request for this role,
    /// that request is refreshed (display name, platform, family, address, `updated_at_ms`)
    /// and returned with `false`, so retries keep one request id; otherwise a new request is
    /// inserted under `new_request_id` and returned with `true`.
    pub async fn upsert_pending(
        &self,
        req: NewPairingRequest,
        new_request_id: &str,
        now_ms: i64,
    ) -> Result<(PairingRequestRecord, bool), StoreError> {
        let unlimited = PendingCaps {
            total: usize::MAX,
            per_source: usize::MAX,
        };
        match self
            .file_pending(req, new_request_id, now_ms, unlimited)
            .await?
        {
            Filed::Existing(r) => Ok((r, false)),
            Filed::Created { record, .. } => Ok((record, true)),
            Filed::SourceFull { .. } => Err(StoreError::NotFound {
                what: "pairing request",
                id: new_request_id.to_string(),
            }),
        }
    }

    /// Like [`PairingRepo::upsert_pending`], under caps: a device that already has a pending
    /// request refreshes it whatever the caps; a new request from a source (`remote_addr`)
    /// that has `per_source` pending already is refused without writing anything; and when
    /// `total` are pending, the oldest (by `requested_at_ms`) are expired to make room.
    pub async fn file_pending(
        &self,
        req: NewPairingRequest,
        new_request_id: &str,
        now_ms: i64,
        caps: PendingCaps,
    ) -> Result<Filed, StoreError> {
        let mut tx = begin_write(self.pool).await?;
        let existing: Option<String> = sqlx::query_scalar(
            "SELECT request_id FROM pairing_requests \
             WHERE device_id = $1 AND role = $2 AND status = 'pending'",
        )
        .bind(req.device_id.as_str())
        .bind(req.role.as_str())
        .fetch_optional(&mut *tx)
        .await?;

        let mut expired = Vec::new();
        if existing.is_none() {
            let from_source: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM pairing_requests \
                 WHERE status = 'pending' AND remote_addr IS $1",
            )
            .bind(&req.remote_addr)
            .fetch_one(&mut *tx)
            .await?;
            if from_source as u64 >= caps.per_source as u64 {
                return Ok(Filed::SourceFull {
                    pending: from_source as usize,
                });
            }
            let total: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM pairing_requests WHERE status = 'pending'",
            )
            .fetch_one(&mut *tx)
            .await?;
            if total as u64 >= caps.total as u64 {
                let excess = total - caps.total as i64 + 1;
                let rows: Vec<(String, String)> = sqlx::query_as(
                    "UPDATE pairing_requests SET status = 'expired', decided_at_ms = $2 \
                     WHERE request_id IN (SELECT request_id FROM pairing_requests \
                       WHERE status = 'pending' \
                       ORDER BY requested_at_ms, request_id LIMIT $1) \
                     RETURNING request_id, device_id",
                )
                .bind(excess)
                .bind(now_ms)
                .fetch_all(&mut *tx)
                .await?;
                expired = expired_rows(rows)?;
            }
        }

        let (request_id, created) = match existing {
            Some(id) => {
                sqlx::query(
                    "UPDATE pairing_requests SET display_name = $2, platform = $3, \
                     device_family = $4, remote_addr = $5, updated_at_ms = $6 \
                     WHERE request_id = $1",
                )
                .bind(&id)
                .bind(&req.display_name)
                .bind(&req.platform)
                .bind(&req.device_family)
                .bind(&req.remote_addr)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
                (id, false)
            }
            None => {
                sqlx::query(
                    "INSERT INTO pairing_requests (request_id, device_id, public_key, role, \
                     display_name, platform, device_family, remote_addr, requested_at_ms, \
                     updated_at_ms, status, decided_at_ms) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, 'pending', NULL)",
                )
                .bind(new_request_id)
                .bind(req.device_id.as_str())
                .bind(&req.public_key)
                .bind(req.role.as_str())
                .bind(&req.display_name)
                .bind(&req.platform)
                .bind(&req.device_family)
                .bind(&req.remote_addr)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
                (new_request_id.to_string(), true)
            }
        };

        let record =
            fetch_request(&mut *tx, &request_id)
                .await?
                .ok_or_else(|| StoreError::NotFound {
                    what: "pairing request",
                    id: request_id.clone(),
                })?;
        tx.commit().await?;
        if !created {
            return Ok(Filed::Existing(record));
        }
        tracing::info!(
            request = %record.request_id,
            device = record.device_id.short(),
            role = %record.role,
            expired_to_make_room = expired.len(),
            "pairing requested"
        );
        Ok(Filed::Created { record, expired })
    }

    /// Sets the verification code of a pending request, unless its code was set `max_sets`
    /// times already. Returns whether the request now shows `code`: `false` means the host
    /// keeps showing an earlier code (or the request is no longer pending).
    pub async fn set_code(
        &self,
        request_id: &str,
        code: &str,
        max_sets: u32,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE pairing_requests SET verification_code = $2, code_sets = code_sets + 1 \
             WHERE request_id = $1 AND status = 'pending' AND code_sets < $3",
        )
        .bind(request_id)
        .bind(code)
        .bind(i64::from(max_sets))
        .execute(self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The request with this id in any status; `None` if unknown.
    pub async fn get(&self, request_id: &str) -> Result<Option<PairingRequestRecord>, StoreError> {
        fetch_request(self.pool, request_id).await
    }

    /// Requests still waiting for an operator, oldest first.
    pub async fn list_pending(&self) -> Result<Vec<PairingRequestRecord>, StoreError> {
        let rows: Vec<PairingRow> = sqlx::query_as(concat!(
            "SELECT ",
            request_columns!(),
            " FROM pairing_requests WHERE status = 'pending' \
             ORDER BY requested_at_ms, request_id"
        ))
        .fetch_all(self.pool)
        .await?;
        rows.into_iter()
            .map(PairingRequestRecord::try_from)
            .collect()
    }

    /// Keeps a pending request fresh while a device waits on it, so it does not expire under a
    /// connection that is still listening for the decision.
    pub async fn touch(&self, request_id: &str, now_ms: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE pairing_requests SET updated_at_ms = $2 \
             WHERE request_id = $1 AND status = 'pending'",
        )
        .bind(request_id)
        .bind(now_ms)
        .execute(self.pool)
        .await?;
        Ok(())
    }

    /// Marks pending requests whose latest attempt is older than `cutoff_ms` as expired and
    /// returns them. Their `decided_at_ms` records `cutoff_ms`.
    pub async fn expire_stale(&self, cutoff_ms: i64) -> Result<Vec<ExpiredRequest>, StoreError> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "UPDATE pairing_requests SET status = 'expired', decided_at_ms = $1 \
             WHERE status = 'pending' AND updated_at_ms < $1 \
             RETURNING request_id, device_id",
        )
        .bind(cutoff_ms)
        .fetch_all(self.pool)
        .await?;
        let expired = expired_rows(rows)?;
        if !expired.is_empty() {
            tracing::info!(count = expired.len(), "stale pairing requests expired");
        }
        Ok(expired)
    }

    /// Approves a pending request in one transaction: the request becomes approved, the
    /// device row becomes paired (created, or re-paired if it was revoked) and the device's
    /// token hash for the requested role is replaced with `token_hash`.
    pub async fn approve(
        &self,
        request_id: &str,
        token_hash: &str,
        now_ms: i64,
    ) -> Result<DeviceRecord, StoreError> {
        let mut tx = begin_write(self.pool).await?;
        let request = require_pending(request_id, fetch_request(&mut *tx, request_id).await?)?;

        sqlx::query(
            "UPDATE pairing_requests SET status = 'approved', decided_at_ms = $2 \
             WHERE request_id = $1 AND status = 'pending'",
        )
        .bind(request_id)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;

        let device =
            pair_device(&mut tx, &PairingSubject::from(&request), token_hash, now_ms).await?;
        tx.commit().await?;
        tracing::info!(
            request = %request_id,
            device = request.device_id.short(),
            role = %request.role,
            "pairing approved"
        );
        Ok(device)
    }

    /// Rejects a pending request; the device stays (or becomes) unable to connect.
    pub async fn reject(
        &self,
        request_id: &str,
        now_ms: i64,
    ) -> Result<PairingRequestRecord, StoreError> {
        let mut tx = begin_write(self.pool).await?;
        require_pending(request_id, fetch_request(&mut *tx, request_id).await?)?;
        sqlx::query(
            "UPDATE pairing_requests SET status = 'rejected', decided_at_ms = $2 \
             WHERE request_id = $1 AND status = 'pending'",
        )
        .bind(request_id)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        let record =
            fetch_request(&mut *tx, request_id)
                .await?
                .ok_or_else(|| StoreError::NotFound {
                    what: "pairing request",
                    id: request_id.to_string(),
                })?;
        tx.commit().await?;
        tracing::info!(request = %request_id, "pairing rejected");
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;
    use crate::devices::DeviceStatus;
    use crate::test_support::{device, request};

    #[tokio::test]
    async fn file_pending_refuses_a_full_source_and_expires_the_oldest_past_the_total() {
        let store = Store::open_in_memory().await.unwrap();
        let caps = PendingCaps {
            total: 3,
            per_source: 2,
        };
        let from = |n: u8, addr: &str| {
            let mut r = request(n, Role::Node);
            r.remote_addr = Some(addr.to_string());
            r
        };
        let p = store.pairing();
        for (n, addr, id, at) in [(1, "10.0.0.1", "a", 10), (2, "10.0.0.1", "b", 20)] {
            assert!(matches!(
                p.file_pending(from(n, addr), id, at, caps).await.unwrap(),
                Filed::Created { .. }
            ));
        }
        // The flooding source is refused; nothing is written.
        assert!(matches!(
            p.file_pending(from(3, "10.0.0.1"), "c", 30, caps)
                .await
                .unwrap(),
            Filed::SourceFull { pending: 2 }
        ));
        assert_eq!(p.get("c").await.unwrap(), None);
        // A retry of a device already pending is refreshed, not refused.
        assert!(matches!(
            p.file_pending(from(1, "10.0.0.1"), "x", 35, caps)
                .await
                .unwrap(),
            Filed::Existing(r) if r.request_id == "a"
        ));
        // Other sources fill the total; past it the oldest request expires.
        p.file_pending(from(4, "10.0.0.2"), "d", 40, caps)
            .await
            .unwrap();
        match p
            .file_pending(from(5, "10.0.0.3"), "e", 50, caps)
            .await
            .unwrap()
        {
            Filed::Created { record, expired } => {
                assert_eq!(record.request_id, "e");
                assert_eq!(
                    expired,
                    vec![ExpiredRequest {
                        request_id: "a".into(),
                        device_id: request(1, Role::Node).device_id,
                    }]
                );
            }
            other => panic!("{other:?}"),
        }
        let pending: Vec<String> = p
            .list_pending()
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.request_id)
            .collect();
        assert_eq!(pending, vec!["b", "d", "e"]);
        assert_eq!(
            p.get("a").await.unwrap().unwrap().status,
            RequestStatus::Expired
        );
    }

    #[tokio::test]
    async fn a_requests_code_changes_a_bounded_number_of_times_and_only_while_pending() {
        let store = Store::open_in_memory().await.unwrap();
        let p = store.pairing();
        let (r, _) = p
            .upsert_pending(request(1, Role::Node), "r1", 100)
            .await
            .unwrap();
        assert_eq!(r.verification_code, None);
        for (i, code) in ["111 111", "222 222", "333 333"].into_iter().enumerate() {
            assert!(p.set_code("r1", code, 3).await.unwrap(), "set {i}");
            let got = p.get("r1").await.unwrap().unwrap();
            assert_eq!(got.verification_code.as_deref(), Some(code));
        }
        // Past the cap the earlier code stays.
        assert!(!p.set_code("r1", "444 444", 3).await.unwrap());
        let listed = p.list_pending().await.unwrap();
        assert_eq!(listed[0].verification_code.as_deref(), Some("333 333"));
        // Unknown or decided requests take no code.
        assert!(!p.set_code("nope", "555 555", 3).await.unwrap());
        let (r2, _) = p
            .upsert_pending(request(2, Role::Node), "r2", 100)
            .await
            .unwrap();
        p.reject(&r2.request_id, 101).await.unwrap();
        assert!(!p.set_code("r2", "666 666", 3).await.unwrap());
    }

    #[tokio::test]
    async fn upsert_pending_reuses_the_id_on_retry() {
        let store = Store::open_in_memory().await.unwrap();
        let (first, created) = store
            .pairing()
            .upsert_pending(request(1, Role::Node), "r1", 100)
            .await
            .unwrap();
        assert!(created);
        assert_eq!(first.request_id, "r1");
        assert_eq!(first.status, RequestStatus::Pending);
        assert_eq!(first.requested_at_ms, 100);
        assert_eq!(first.updated_at_ms, 100);

        let mut retry = request(1, Role::Node);
        retry.display_name = "Renamed".to_string();
        retry.remote_addr = Some("10.0.0.2".to_string());
        let (second, created) = store
            .pairing()
            .upsert_pending(retry, "r2", 150)
            .await
            .unwrap();
        assert!(!created);
        assert_eq!(second.request_id, "r1");
        assert_eq!(second.requested_at_ms, 100);
        assert_eq!(second.updated_at_ms, 150);
        assert_eq!(second.display_name, "Renamed");
        assert_eq!(second.remote_addr.as_deref(), Some("10.0.0.2"));
        assert_eq!(store.pairing().get("r2").await.unwrap(), None);

        // The same device in the other role is a separate request.
        let (other_role, created) = store
            .pairing()
            .upsert_pending(request(1, Role::Operator), "r3", 160)
            .await
            .unwrap();
        assert!(created);
        assert_eq!(other_role.request_id, "r3");
        assert_eq!(store.pairing().list_pending().await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn upsert_pending_makes_a_new_request_after_a_decision() {
        let store = Store::open_in_memory().await.unwrap();
        store
            .pairing()
            .upsert_pending(request(1, Role::Node), "r1", 100)
            .await
            .unwrap();
        store.pairing().reject("r1", 110).await.unwrap();

        let (next, created) = store
            .pairing()
            .upsert_pending(request(1, Role::Node), "r2", 120)
            .await
            .unwrap();
        assert!(created);
        assert_eq!(next.request_id, "r2");

        store.pairing().approve("r2", "h", 130).await.unwrap();
        let (third, created) = store
            .pairing()
            .upsert_pending(request(1, Role::Node), "r3", 140)
            .await
            .unwrap();
        assert!(created);
        assert_eq!(third.request_id, "r3");
    }

    #[tokio::test]
    async fn one_pending_per_device_and_role_is_enforced_by_the_schema() {
        let store = Store::open_in_memory().await.unwrap();
        store
            .pairing()
            .upsert_pending(request(1, Role::Node), "r1", 100)
            .await
            .unwrap();
        let dup = sqlx::query(
            "INSERT INTO pairing_requests SELECT 'r2', device_id, public_key, role, display_name, \
             platform, device_family, remote_addr, requested_at_ms, updated_at_ms, status, \
             decided_at_ms FROM pairing_requests WHERE request_id = 'r1'",
        )
        .execute(&store.pool)
        .await;
        assert!(dup.is_err());
    }

    #[tokio::test]
    async fn approve_pairs_the_device_and_issues_the_token() {
        let store = Store::open_in_memory().await.unwrap();
        let mut req = request(1, Role::Node);
        req.device_family = Some("Mac".to_string());
        store
            .pairing()
            .upsert_pending(req, "r1", 100)
            .await
            .unwrap();

        let dev = store.pairing().approve("r1", "hash-a", 120).await.unwrap();
        assert_eq!(dev.device_id, device(1));
        assert_eq!(dev.status, DeviceStatus::Paired);
        assert_eq!(dev.role, Role::Node);
        assert_eq!(dev.paired_at_ms, 120);
        assert_eq!(dev.device_family.as_deref(), Some("Mac"));
        assert_eq!(dev.public_key, "pk-1");

        let req = store.pairing().get("r1").await.unwrap().unwrap();
        assert_eq!(req.status, RequestStatus::Approved);
        assert_eq!(req.decided_at_ms, Some(120));
        assert!(store.pairing().list_pending().await.unwrap().is_empty());
        assert!(
            store
                .tokens()
                .matches(&device(1), Role::Node, "hash-a")
                .await
                .unwrap()
        );

        // Approving twice fails and leaves the token alone.
        let err = store
            .pairing()
            .approve("r1", "hash-b", 130)
            .await
            .unwrap_err();
        assert!(
            matches!(
                &err,
                StoreError::NotPending { request_id, status: RequestStatus::Approved }
                    if request_id == "r1"
            ),
            "{err:?}"
        );
        assert!(
            store
                .tokens()
                .matches(&device(1), Role::Node, "hash-a")
                .await
                .unwrap()
        );

        let err = store.pairing().approve("nope", "h", 1).await.unwrap_err();
        assert!(matches!(
            err,
            StoreError::NotFound {
                what: "pairing request",
                ..
            }
        ));
    }

    #[tokio::test]
    async fn approving_a_second_role_keeps_paired_at() {
        let store = Store::open_in_memory().await.unwrap();
        store
            .pairing()
            .upsert_pending(request(1, Role::Operator), "r1", 100)
            .await
            .unwrap();
        store.pairing().approve("r1", "h-op", 110).await.unwrap();
        store
            .pairing()
            .upsert_pending(request(1, Role::Node), "r2", 200)
            .await
            .unwrap();
        let dev = store.pairing().approve("r2", "h-node", 210).await.unwrap();
        assert_eq!(dev.paired_at_ms, 110);
        assert_eq!(dev.role, Role::Node);
        assert_eq!(
            store.tokens().roles(&device(1)).await.unwrap(),
            vec![Role::Node, Role::Operator]
        );
    }

    #[tokio::test]
    async fn approving_a_decided_request_changes_nothing() {
        let store = Store::open_in_memory().await.unwrap();
        store
            .pairing()
            .upsert_pending(request(1, Role::Node), "r1", 100)
            .await
            .unwrap();
        store.pairing().reject("r1", 110).await.unwrap();

        let err = store.pairing().approve("r1", "h", 120).await.unwrap_err();
        assert!(matches!(
            err,
            StoreError::NotPending {
                status: RequestStatus::Rejected,
                ..
            }
        ));
        let req = store.pairing().get("r1").await.unwrap().unwrap();
        assert_eq!(req.status, RequestStatus::Rejected);
        assert_eq!(req.decided_at_ms, Some(110));
        assert_eq!(store.devices().get(&device(1)).await.unwrap(), None);
        assert!(
            !store
                .tokens()
                .has_token(&device(1), Role::Node)
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn approve_is_all_or_nothing_when_a_later_step_fails() {
        let store = Store::open_in_memory().await.unwrap();
        store
            .pairing()
            .upsert_pending(request(1, Role::Node), "r1", 100)
            .await
            .unwrap();
        // Make the last write of the transaction (the token) fail.
        sqlx::query(
            "CREATE TRIGGER fail_tokens BEFORE INSERT ON device_tokens \
             BEGIN SELECT RAISE(ABORT, 'boom'); END",
        )
        .execute(&store.pool)
        .await
        .unwrap();

        let err = store.pairing().approve("r1", "h", 120).await.unwrap_err();
        assert!(matches!(err, StoreError::Database(_)), "{err:?}");
        let req = store.pairing().get("r1").await.unwrap().unwrap();
        assert_eq!(req.status, RequestStatus::Pending);
        assert_eq!(req.decided_at_ms, None);
        assert_eq!(store.devices().get(&device(1)).await.unwrap(), None);

        // With the fault gone, the same request approves normally.
        sqlx::query("DROP TRIGGER fail_tokens")
            .execute(&store.pool)
            .await
            .unwrap();
        store.pairing().approve("r1", "h", 130).await.unwrap();
        assert!(
            store
                .tokens()
                .matches(&device(1), Role::Node, "h")
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn reject_marks_the_request_and_pairs_nothing() {
        let store = Store::open_in_memory().await.unwrap();
        store
            .pairing()
            .upsert_pending(request(1, Role::Operator), "r1", 100)
            .await
            .unwrap();
        let rejected = store.pairing().reject("r1", 105).await.unwrap();
        assert_eq!(rejected.status, RequestStatus::Rejected);
        assert_eq!(rejected.decided_at_ms, Some(105));
        assert_eq!(store.devices().get(&device(1)).await.unwrap(), None);

        let err = store.pairing().reject("r1", 106).await.unwrap_err();
        assert!(matches!(
            err,
            StoreError::NotPending {
                status: RequestStatus::Rejected,
                ..
            }
        ));
        let err = store.pairing().reject("nope", 106).await.unwrap_err();
        assert!(matches!(err, StoreError::NotFound { .. }));
    }

    #[tokio::test]
    async fn expire_stale_only_touches_old_pending_requests() {
        let store = Store::open_in_memory().await.unwrap();
        let p = store.pairing();
        p.upsert_pending(request(1, Role::Node), "old", 100)
            .await
            .unwrap();
        p.upsert_pending(request(2, Role::Node), "refreshed", 100)
            .await
            .unwrap();
        p.upsert_pending(request(2, Role::Node), "ignored", 300)
            .await
            .unwrap();
        p.upsert_pending(request(3, Role::Node), "decided", 100)
            .await
            .unwrap();
        p.reject("decided", 150).await.unwrap();
        p.upsert_pending(request(4, Role::Node), "fresh", 250)
            .await
            .unwrap();

        let expired = p.expire_stale(200).await.unwrap();
        assert_eq!(
            expired,
            vec![ExpiredRequest {
                request_id: "old".into(),
                device_id: request(1, Role::Node).device_id,
            }]
        );
        let old = p.get("old").await.unwrap().unwrap();
        assert_eq!(old.status, RequestStatus::Expired);
        assert_eq!(old.decided_at_ms, Some(200));
        assert_eq!(
            p.get("decided").await.unwrap().unwrap().status,
            RequestStatus::Rejected
        );
        let pending: Vec<_> = p
            .list_pending()
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.request_id)
            .collect();
        assert_eq!(pending, vec!["refreshed", "fresh"]);

        let err = p.approve("old", "h", 300).await.unwrap_err();
        assert!(matches!(
            err,
            StoreError::NotPending {
                status: RequestStatus::Expired,
                ..
            }
        ));
        assert!(p.expire_stale(200).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn corrupt_request_status_is_an_error() {
        let store = Store::open_in_memory().await.unwrap();
        store
            .pairing()
            .upsert_pending(request(1, Role::Node), "r1", 100)
            .await
            .unwrap();
        sqlx::query("PRAGMA ignore_check_constraints = ON")
            .execute(&store.pool)
            .await
            .unwrap();
        sqlx::query("UPDATE pairing_requests SET status = 'limbo' WHERE request_id = 'r1'")
            .execute(&store.pool)
            .await
            .unwrap();
        assert!(matches!(
            store.pairing().get("r1").await.unwrap_err(),
            StoreError::Corrupt(_)
        ));
        assert!(matches!(
            store.pairing().approve("r1", "h", 1).await.unwrap_err(),
            StoreError::Corrupt(_)
        ));
    }
}
