//! The `bootstrap_tokens` table: single-use tokens carried by setup codes, which let a new
//! node pair without an operator approving it.
//!
//! A token is valid while it is unused and `now_ms < expires_at_ms` (at `expires_at_ms` it
//! has expired). Redeeming one consumes it and pairs the device in the same transaction, so
//! a token can never pair two devices, nor be spent on a pairing that did not happen.

use perch_protocol::DeviceId;
use perch_protocol::handshake::Role;
use sqlx::SqlitePool;

use crate::devices::{DeviceRecord, DeviceStatus, PairingSubject, fetch_device, pair_device};
use crate::pairing::NewPairingRequest;
use crate::{StoreError, begin_write, parse_device_id};

/// How long a used or expired token's row is kept (for the audit trail) before `prune`.
pub const KEEP_SPENT_MS: i64 = 24 * 60 * 60 * 1000;

/// Why a bootstrap token did not pair the device; the gateway turns the first four into
/// `AUTH_BOOTSTRAP_TOKEN_INVALID` with a reason, and logs `Store`.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// No token with this hash was ever minted (or it was pruned).
    #[error("unknown bootstrap token")]
    Unknown,
    /// The token already paired a device.
    #[error("bootstrap token already used")]
    Used {
        /// When it was used.
        used_at_ms: i64,
    },
    /// The token's time ran out before it was used.
    #[error("bootstrap token expired")]
    Expired {
        /// When it stopped working.
        expires_at_ms: i64,
    },
    /// The device was revoked; only an operator may let it back in (the token stays unused).
    #[error("device is revoked; a setup code cannot re-pair it")]
    DeviceRevoked,
    /// Setup codes pair nodes only; they never grant operator access (the token stays unused).
    #[error("a bootstrap token cannot pair a device as {role}")]
    RoleNotAllowed {
        /// The role that was asked for.
        role: Role,
    },
    /// The database failed; nothing was changed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for BootstrapError {
    fn from(e: sqlx::Error) -> Self {
        BootstrapError::Store(StoreError::Database(e))
    }
}

/// One row of `bootstrap_tokens`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootstrapTokenRecord {
    /// Hex SHA-256 of the token.
    pub token_hash: String,
    /// When it was minted.
    pub created_at_ms: i64,
    /// The first instant at which it no longer works.
    pub expires_at_ms: i64,
    /// When it was redeemed, if it was.
    pub used_at_ms: Option<i64>,
    /// The device it paired, if it was redeemed.
    pub used_by_device: Option<DeviceId>,
}

/// What a successful redemption did, so the gateway can tell whoever is waiting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redemption {
    /// The device, now paired as a node with the new token.
    pub device: DeviceRecord,
    /// Pending node pairing requests of this device that were approved by the redemption
    /// (for `device.pair.resolved` events and connections waiting on them).
    pub approved_requests: Vec<String>,
}

/// The raw row.
#[derive(sqlx::FromRow)]
struct TokenRow {
    token_hash: String,
    created_at_ms: i64,
    expires_at_ms: i64,
    used_at_ms: Option<i64>,
    used_by_device: Option<String>,
}

impl TryFrom<TokenRow> for BootstrapTokenRecord {
    type Error = StoreError;

    fn try_from(row: TokenRow) -> Result<Self, StoreError> {
        Ok(BootstrapTokenRecord {
            token_hash: row.token_hash,
            created_at_ms: row.created_at_ms,
            expires_at_ms: row.expires_at_ms,
            used_at_ms: row.used_at_ms,
            used_by_device: row
                .used_by_device
                .map(|d| parse_device_id("bootstrap_tokens", &d))
                .transpose()?,
        })
    }
}

/// Reads one token inside any executor (pool or open transaction).
async fn fetch_token<'e, E>(
    executor: E,
    token_hash: &str,
) -> Result<Option<BootstrapTokenRecord>, StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Sqlite>,
{
    let row: Option<TokenRow> = sqlx::query_as(
        "SELECT token_hash, created_at_ms, expires_at_ms, used_at_ms, used_by_device \
         FROM bootstrap_tokens WHERE token_hash = $1",
    )
    .bind(token_hash)
    .fetch_optional(executor)
    .await?;
    row.map(BootstrapTokenRecord::try_from).transpose()
}

/// Mints, redeems and prunes bootstrap token hashes.
#[derive(Debug, Clone, Copy)]
pub struct BootstrapRepo<'a> {
    pool: &'a SqlitePool,
}

impl<'a> BootstrapRepo<'a> {
    pub(crate) fn new(pool: &'a SqlitePool) -> Self {
        BootstrapRepo { pool }
    }

    /// Records a new token (by hash) that works until `expires_at_ms`; a hash that already
    /// exists is a `Database` error, never a silent reset of a used token.
    pub async fn mint(
        &self,
        token_hash: &str,
        now_ms: i64,
        expires_at_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO bootstrap_tokens (token_hash, created_at_ms, expires_at_ms) \
             VALUES ($1, $2, $3)",
        )
        .bind(token_hash)
        .bind(now_ms)
        .bind(expires_at_ms)
        .execute(self.pool)
        .await?;
        tracing::info!(expires_at_ms, "bootstrap token minted");
        Ok(())
    }

    /// The token with this hash, used or not; `None` if unknown.
    pub async fn get(&self, token_hash: &str) -> Result<Option<BootstrapTokenRecord>, StoreError> {
        fetch_token(self.pool, token_hash).await
    }

    /// Consumes the token and pairs the device as a node in one transaction: the token must
    /// exist, be unused and unexpired at `now_ms`, the device must ask for the node role and
    /// must not be revoked. Then the token is marked used by the device, the device is paired
    /// (created or updated) with `device_token_hash` as its node token, and its pending node
    /// pairing requests are approved. On any error nothing changes and the token stays usable
    /// (unless the error is that it is not).
    pub async fn redeem(
        &self,
        token_hash: &str,
        device: NewPairingRequest,
        device_token_hash: &str,
        now_ms: i64,
    ) -> Result<Redemption, BootstrapError> {
        let mut tx = begin_write(self.pool).await?;
        let token = fetch_token(&mut *tx, token_hash)
            .await?
            .ok_or(BootstrapError::Unknown)?;
        if let Some(used_at_ms) = token.used_at_ms {
            return Err(BootstrapError::Used { used_at_ms });
        }
        if now_ms >= token.expires_at_ms {
            return Err(BootstrapError::Expired {
                expires_at_ms: token.expires_at_ms,
            });
        }
        if device.role != Role::Node {
            return Err(BootstrapError::RoleNotAllowed { role: device.role });
        }
        let existing = fetch_device(&mut *tx, device.device_id.as_str()).await?;
        if existing.is_some_and(|d| d.status == DeviceStatus::Revoked) {
            return Err(BootstrapError::DeviceRevoked);
        }

        let marked = sqlx::query(
            "UPDATE bootstrap_tokens SET used_at_ms = $2, used_by_device = $3 \
             WHERE token_hash = $1 AND used_at_ms IS NULL",
        )
        .bind(token_hash)
        .bind(now_ms)
        .bind(device.device_id.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if marked != 1 {
            // Unreachable under BEGIN IMMEDIATE; refuse rather than pair twice if it ever is.
            return Err(match fetch_token(&mut *tx, token_hash).await? {
                Some(BootstrapTokenRecord {
                    used_at_ms: Some(used_at_ms),
                    ..
                }) => BootstrapError::Used { used_at_ms },
                _ => BootstrapError::Unknown,
            });
        }

        let approved_requests: Vec<String> = sqlx::query_scalar(
            "SELECT request_id FROM pairing_requests \
             WHERE device_id = $1 AND role = $2 AND status = 'pending' ORDER BY request_id",
        )
        .bind(device.device_id.as_str())
        .bind(Role::Node.as_str())
        .fetch_all(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE pairing_requests SET status = 'approved', decided_at_ms = $3 \
             WHERE device_id = $1 AND role = $2 AND status = 'pending'",
        )
        .bind(device.device_id.as_str())
        .bind(Role::Node.as_str())
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;

        let record = pair_device(
            &mut tx,
            &PairingSubject::from(&device),
            device_token_hash,
            now_ms,
        )
        .await?;
        tx.commit().await?;
        tracing::info!(
            device = device.device_id.short(),
            approved_requests = approved_requests.len(),
            "paired with a setup code"
        );
        Ok(Redemption {
            device: record,
            approved_requests,
        })
    }

    /// Deletes tokens that were used, or expired, more than [`KEEP_SPENT_MS`] before `now_ms`;
    /// returns how many. Unused live tokens are never touched.
    pub async fn prune(&self, now_ms: i64) -> Result<u64, StoreError> {
        let cutoff = now_ms.saturating_sub(KEEP_SPENT_MS);
        let deleted = sqlx::query(
            "DELETE FROM bootstrap_tokens \
             WHERE (used_at_ms IS NOT NULL AND used_at_ms < $1) OR expires_at_ms < $1",
        )
        .bind(cutoff)
        .execute(self.pool)
        .await?
        .rows_affected();
        if deleted > 0 {
            tracing::debug!(count = deleted, "spent bootstrap tokens pruned");
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;
    use crate::pairing::RequestStatus;
    use crate::test_support::{device, request};

    const MIN: i64 = 60_000;

    async fn store_with_token(hash: &str, now: i64) -> Store {
        let store = Store::open_in_memory().await.unwrap();
        store
            .bootstrap()
            .mint(hash, now, now + 10 * MIN)
            .await
            .unwrap();
        store
    }

    async fn assert_unused(store: &Store, hash: &str) {
        let t = store.bootstrap().get(hash).await.unwrap().unwrap();
        assert_eq!(t.used_at_ms, None);
        assert_eq!(t.used_by_device, None);
    }

    #[tokio::test]
    async fn redeem_pairs_the_device_with_its_token() {
        let store = store_with_token("bt", 1_000).await;
        let mut req = request(1, Role::Node);
        req.device_family = Some("iPhone".to_string());
        let done = store
            .bootstrap()
            .redeem("bt", req, "dev-hash", 2_000)
            .await
            .unwrap();
        assert_eq!(done.device.device_id, device(1));
        assert_eq!(done.device.status, DeviceStatus::Paired);
        assert_eq!(done.device.role, Role::Node);
        assert_eq!(done.device.paired_at_ms, 2_000);
        assert_eq!(done.device.device_family.as_deref(), Some("iPhone"));
        assert!(done.approved_requests.is_empty());
        assert!(
            store
                .tokens()
                .matches(&device(1), Role::Node, "dev-hash")
                .await
                .unwrap()
        );
        let t = store.bootstrap().get("bt").await.unwrap().unwrap();
        assert_eq!(t.created_at_ms, 1_000);
        assert_eq!(t.expires_at_ms, 1_000 + 10 * MIN);
        assert_eq!(t.used_at_ms, Some(2_000));
        assert_eq!(t.used_by_device, Some(device(1)));
    }

    #[tokio::test]
    async fn a_token_pairs_once() {
        let store = store_with_token("bt", 0).await;
        store
            .bootstrap()
            .redeem("bt", request(1, Role::Node), "h1", 10)
            .await
            .unwrap();

        // Another device, and the same device again, are both refused.
        for (seed, hash) in [(2, "h2"), (1, "h1-again")] {
            let err = store
                .bootstrap()
                .redeem("bt", request(seed, Role::Node), hash, 20)
                .await
                .unwrap_err();
            assert!(
                matches!(err, BootstrapError::Used { used_at_ms: 10 }),
                "{err:?}"
            );
        }
        // Nothing else changed.
        assert_eq!(store.devices().get(&device(2)).await.unwrap(), None);
        let t = store.tokens();
        assert!(t.matches(&device(1), Role::Node, "h1").await.unwrap());
        assert!(!t.matches(&device(1), Role::Node, "h1-again").await.unwrap());
        let row = store.bootstrap().get("bt").await.unwrap().unwrap();
        assert_eq!(row.used_at_ms, Some(10));
        assert_eq!(row.used_by_device, Some(device(1)));
    }

    #[tokio::test]
    async fn a_token_works_until_just_before_it_expires() {
        // Minted at 0, expiring at 600_000: valid at 599_999, expired at 600_000.
        let store = store_with_token("bt", 0).await;
        let expires = 10 * MIN;
        for now in [expires, expires + 1] {
            let err = store
                .bootstrap()
                .redeem("bt", request(1, Role::Node), "h", now)
                .await
                .unwrap_err();
            assert!(
                matches!(err, BootstrapError::Expired { expires_at_ms } if expires_at_ms == expires),
                "{err:?}"
            );
        }
        assert_unused(&store, "bt").await;
        assert_eq!(store.devices().get(&device(1)).await.unwrap(), None);

        store
            .bootstrap()
            .redeem("bt", request(1, Role::Node), "h", expires - 1)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn unknown_tokens_are_refused() {
        let store = store_with_token("bt", 0).await;
        let err = store
            .bootstrap()
            .redeem("other", request(1, Role::Node), "h", 1)
            .await
            .unwrap_err();
        assert!(matches!(err, BootstrapError::Unknown), "{err:?}");
        assert_eq!(store.devices().get(&device(1)).await.unwrap(), None);
        assert_unused(&store, "bt").await;
    }

    #[tokio::test]
    async fn a_revoked_device_is_refused_and_the_token_kept() {
        let store = store_with_token("bt", 0).await;
        store
            .pairing()
            .upsert_pending(request(1, Role::Node), "r1", 1)
            .await
            .unwrap();
        store.pairing().approve("r1", "old", 2).await.unwrap();
        store.devices().revoke(&device(1), 3).await.unwrap();

        let err = store
            .bootstrap()
            .redeem("bt", request(1, Role::Node), "new", 4)
            .await
            .unwrap_err();
        assert!(matches!(err, BootstrapError::DeviceRevoked), "{err:?}");
        assert_unused(&store, "bt").await;
        let d = store.devices().get(&device(1)).await.unwrap().unwrap();
        assert_eq!(d.status, DeviceStatus::Revoked);
        assert!(
            !store
                .tokens()
                .has_token(&device(1), Role::Node)
                .await
                .unwrap()
        );

        // The unspent token still pairs a different device.
        store
            .bootstrap()
            .redeem("bt", request(2, Role::Node), "h2", 5)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn operator_role_is_refused_and_the_token_kept() {
        let store = store_with_token("bt", 0).await;
        let err = store
            .bootstrap()
            .redeem("bt", request(1, Role::Operator), "h", 1)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                BootstrapError::RoleNotAllowed {
                    role: Role::Operator
                }
            ),
            "{err:?}"
        );
        assert_unused(&store, "bt").await;
        assert_eq!(store.devices().get(&device(1)).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_pending_node_request_of_the_device_is_approved() {
        let store = store_with_token("bt", 0).await;
        store
            .pairing()
            .upsert_pending(request(1, Role::Node), "r-node", 1)
            .await
            .unwrap();
        store
            .pairing()
            .upsert_pending(request(1, Role::Operator), "r-op", 1)
            .await
            .unwrap();
        store
            .pairing()
            .upsert_pending(request(2, Role::Node), "r-other", 1)
            .await
            .unwrap();

        let done = store
            .bootstrap()
            .redeem("bt", request(1, Role::Node), "h", 5)
            .await
            .unwrap();
        assert_eq!(done.approved_requests, vec!["r-node"]);
        let p = store.pairing();
        let node_req = p.get("r-node").await.unwrap().unwrap();
        assert_eq!(node_req.status, RequestStatus::Approved);
        assert_eq!(node_req.decided_at_ms, Some(5));
        // A setup code grants no operator access, and other devices are untouched.
        assert_eq!(
            p.get("r-op").await.unwrap().unwrap().status,
            RequestStatus::Pending
        );
        assert_eq!(
            p.get("r-other").await.unwrap().unwrap().status,
            RequestStatus::Pending
        );
        assert_eq!(
            store.tokens().roles(&device(1)).await.unwrap(),
            vec![Role::Node]
        );
    }

    #[tokio::test]
    async fn a_paired_operator_device_gains_the_node_role() {
        let store = store_with_token("bt", 0).await;
        store
            .pairing()
            .upsert_pending(request(1, Role::Operator), "r1", 1)
            .await
            .unwrap();
        store.pairing().approve("r1", "op", 2).await.unwrap();
        let done = store
            .bootstrap()
            .redeem("bt", request(1, Role::Node), "node", 3)
            .await
            .unwrap();
        assert_eq!(done.device.paired_at_ms, 2);
        assert_eq!(
            store.tokens().roles(&device(1)).await.unwrap(),
            vec![Role::Node, Role::Operator]
        );
    }

    #[tokio::test]
    async fn redeem_is_all_or_nothing_when_a_later_step_fails() {
        let store = store_with_token("bt", 0).await;
        store
            .pairing()
            .upsert_pending(request(1, Role::Node), "r1", 1)
            .await
            .unwrap();
        // Make the last write of the transaction (the device token) fail.
        sqlx::query(
            "CREATE TRIGGER fail_tokens BEFORE INSERT ON device_tokens \
             BEGIN SELECT RAISE(ABORT, 'boom'); END",
        )
        .execute(&store.pool)
        .await
        .unwrap();

        let err = store
            .bootstrap()
            .redeem("bt", request(1, Role::Node), "h", 5)
            .await
            .unwrap_err();
        assert!(
            matches!(err, BootstrapError::Store(StoreError::Database(_))),
            "{err:?}"
        );
        assert_unused(&store, "bt").await;
        assert_eq!(store.devices().get(&device(1)).await.unwrap(), None);
        let req = store.pairing().get("r1").await.unwrap().unwrap();
        assert_eq!(req.status, RequestStatus::Pending);

        // With the fault gone, the same token pairs the device.
        sqlx::query("DROP TRIGGER fail_tokens")
            .execute(&store.pool)
            .await
            .unwrap();
        let done = store
            .bootstrap()
            .redeem("bt", request(1, Role::Node), "h", 6)
            .await
            .unwrap();
        assert_eq!(done.approved_requests, vec!["r1"]);
        assert!(
            store
                .tokens()
                .matches(&device(1), Role::Node, "h")
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn minting_the_same_hash_twice_fails() {
        let store = store_with_token("bt", 0).await;
        store
            .bootstrap()
            .redeem("bt", request(1, Role::Node), "h", 1)
            .await
            .unwrap();
        let err = store.bootstrap().mint("bt", 2, 10 * MIN).await.unwrap_err();
        assert!(matches!(err, StoreError::Database(_)), "{err:?}");
        assert_eq!(
            store
                .bootstrap()
                .get("bt")
                .await
                .unwrap()
                .unwrap()
                .used_at_ms,
            Some(1)
        );
    }

    #[tokio::test]
    async fn prune_drops_spent_tokens_after_a_day() {
        let store = Store::open_in_memory().await.unwrap();
        let b = store.bootstrap();
        let day = KEEP_SPENT_MS;
        b.mint("used", 0, 10 * MIN).await.unwrap();
        b.redeem("used", request(1, Role::Node), "h", 1)
            .await
            .unwrap();
        b.mint("expired", 0, 10 * MIN).await.unwrap();
        b.mint("live", day, day + 10 * MIN).await.unwrap();

        // A day after the token was used but before a day past the other's expiry.
        assert_eq!(b.prune(day + 2).await.unwrap(), 1);
        assert!(b.get("used").await.unwrap().is_none());
        assert!(b.get("expired").await.unwrap().is_some());
        assert_eq!(b.prune(day + 10 * MIN + 1).await.unwrap(), 1);
        assert!(b.get("expired").await.unwrap().is_none());
        assert!(b.get("live").await.unwrap().is_some());
        assert_eq!(b.prune(day + 10 * MIN + 1).await.unwrap(), 0);
        // Pruning never unpairs anyone.
        assert!(
            store
                .tokens()
                .matches(&device(1), Role::Node, "h")
                .await
                .unwrap()
        );
    }
}
