//! Replies to notifications: what the user tapped or typed on a device, recorded as the node
//! reported it, until the assistant has read it in a turn.
//!
//! **Architecture Invariant:** the table is bounded: at most [`MAX_REPLIES_PER_DEVICE`] rows
//! per device, pruned on every insert; the bounds on each field are the protocol's, checked by
//! the gateway before a row is written.

use perch_protocol::DeviceId;
use sqlx::{Row, SqlitePool};

use crate::{StoreError, begin_write, mark_rows_seen, parse_device_id};

/// Rows kept per device; the oldest go first.
pub const MAX_REPLIES_PER_DEVICE: i64 = 200;

/// A reply as the gateway hands it over (already validated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewReply {
    /// The device that sent it.
    pub device_id: DeviceId,
    /// The node's id for the reply (one row per id and device).
    pub reply_id: String,
    /// The node's id of the notification answered.
    pub notification_id: String,
    /// The device's name now.
    pub display_name: String,
    /// The notification's title, as reported.
    pub title: Option<String>,
    /// The action tapped.
    pub action_id: Option<String>,
    /// The text typed.
    pub text: Option<String>,
    /// When it arrived.
    pub received_at_ms: i64,
}

/// A recorded reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Row id: the order replies arrived in.
    pub id: i64,
    /// The device that sent it.
    pub device_id: DeviceId,
    /// The node's id of the notification answered.
    pub notification_id: String,
    /// The device's name when it arrived.
    pub display_name: String,
    /// The notification's title.
    pub title: Option<String>,
    /// The action tapped.
    pub action_id: Option<String>,
    /// The text typed.
    pub text: Option<String>,
    /// When it arrived.
    pub received_at_ms: i64,
    /// When the assistant read it, if it has.
    pub seen_at_ms: Option<i64>,
}

/// Whether [`ReplyRepo::record`] stored a new row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// A new reply.
    New,
    /// The same reply id from the same device was already recorded (a resend).
    Duplicate,
}

/// The replies table.
pub struct ReplyRepo<'a> {
    pub(crate) pool: &'a SqlitePool,
}

/// The columns every read selects (a macro, so queries stay `&'static str`).
macro_rules! columns {
    () => {
        "id, device_id, notification_id, display_name, title, action_id, text, \
                       received_at_ms, seen_at_ms"
    };
}

fn reply_of(row: &sqlx::sqlite::SqliteRow) -> Result<Reply, StoreError> {
    let device: String = row.try_get("device_id")?;
    Ok(Reply {
        id: row.try_get("id")?,
        device_id: parse_device_id("notify_replies", &device)?,
        notification_id: row.try_get("notification_id")?,
        display_name: row.try_get("display_name")?,
        title: row.try_get("title")?,
        action_id: row.try_get("action_id")?,
        text: row.try_get("text")?,
        received_at_ms: row.try_get("received_at_ms")?,
        seen_at_ms: row.try_get("seen_at_ms")?,
    })
}

impl ReplyRepo<'_> {
    /// Records a reply once per (device, reply id) and drops the device's oldest rows past
    /// [`MAX_REPLIES_PER_DEVICE`], in one transaction.
    pub async fn record(&self, r: &NewReply) -> Result<Recorded, StoreError> {
        let mut tx = begin_write(self.pool).await?;
        let inserted = sqlx::query(
            "INSERT INTO notify_replies (device_id, reply_id, notification_id, \
             display_name, title, action_id, text, received_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (device_id, reply_id) DO NOTHING",
        )
        .bind(r.device_id.as_str())
        .bind(&r.reply_id)
        .bind(&r.notification_id)
        .bind(&r.display_name)
        .bind(&r.title)
        .bind(&r.action_id)
        .bind(&r.text)
        .bind(r.received_at_ms)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query(
            "DELETE FROM notify_replies WHERE device_id = $1 AND id NOT IN \
             (SELECT id FROM notify_replies WHERE device_id = $1 ORDER BY id DESC LIMIT $2)",
        )
        .bind(r.device_id.as_str())
        .bind(MAX_REPLIES_PER_DEVICE)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(if inserted == 1 {
            Recorded::New
        } else {
            Recorded::Duplicate
        })
    }

    /// The newest `limit` replies of every device, newest first.
    pub async fn recent(&self, limit: u32) -> Result<Vec<Reply>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM notify_replies ORDER BY id DESC LIMIT $1"
        ))
        .bind(i64::from(limit))
        .fetch_all(self.pool)
        .await?;
        rows.iter().map(reply_of).collect()
    }

    /// The replies the assistant has not read, oldest first, at most `limit`.
    pub async fn unseen(&self, limit: u32) -> Result<Vec<Reply>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM notify_replies WHERE seen_at_ms IS NULL ORDER BY id LIMIT $1"
        ))
        .bind(i64::from(limit))
        .fetch_all(self.pool)
        .await?;
        rows.iter().map(reply_of).collect()
    }

    /// Marks replies read by the assistant (after the turn that read them ended well).
    pub async fn mark_seen(&self, ids: &[i64], now_ms: i64) -> Result<(), StoreError> {
        mark_rows_seen(
            self.pool,
            "UPDATE notify_replies SET seen_at_ms = $1 WHERE id = $2 AND seen_at_ms IS NULL",
            ids,
            now_ms,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;
    use crate::test_support::device;

    fn new(seed: u8, reply: &str, text: Option<&str>, at: i64) -> NewReply {
        NewReply {
            device_id: device(seed),
            reply_id: reply.into(),
            notification_id: "n-1".into(),
            display_name: format!("phone {seed}"),
            title: Some("Dinner?".into()),
            action_id: text.is_none().then(|| "yes".to_string()),
            text: text.map(str::to_string),
            received_at_ms: at,
        }
    }

    #[tokio::test]
    async fn a_resend_is_one_row_and_unseen_replies_are_read_once() {
        let store = Store::open_in_memory().await.unwrap();
        let repo = store.replies();
        assert_eq!(
            repo.record(&new(1, "r1", None, 10)).await.unwrap(),
            Recorded::New
        );
        assert_eq!(
            repo.record(&new(1, "r1", None, 11)).await.unwrap(),
            Recorded::Duplicate
        );
        // The same reply id from another device is another reply.
        assert_eq!(
            repo.record(&new(2, "r1", Some("on my way"), 12))
                .await
                .unwrap(),
            Recorded::New
        );
        let recent = repo.recent(10).await.unwrap();
        assert_eq!(recent.len(), 2);
        assert_eq!(recent[0].text.as_deref(), Some("on my way"));
        assert_eq!(recent[1].action_id.as_deref(), Some("yes"));
        assert_eq!(recent[1].received_at_ms, 10);

        let unseen = repo.unseen(10).await.unwrap();
        assert_eq!(unseen.len(), 2);
        assert_eq!(unseen[0].device_id, device(1), "oldest first");
        repo.mark_seen(&[unseen[0].id], 20).await.unwrap();
        let left = repo.unseen(10).await.unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].device_id, device(2));
        let all = repo.recent(10).await.unwrap();
        assert_eq!(all[1].seen_at_ms, Some(20));
    }

    #[tokio::test]
    async fn each_device_keeps_a_bounded_number_of_rows() {
        let store = Store::open_in_memory().await.unwrap();
        let repo = store.replies();
        let extra = 5;
        for i in 0..(MAX_REPLIES_PER_DEVICE + extra) {
            repo.record(&new(1, &format!("r{i}"), None, i))
                .await
                .unwrap();
        }
        repo.record(&new(2, "other", None, 0)).await.unwrap();
        let all = repo.recent(1_000).await.unwrap();
        let mine: Vec<_> = all.iter().filter(|r| r.device_id == device(1)).collect();
        assert_eq!(mine.len() as i64, MAX_REPLIES_PER_DEVICE);
        assert_eq!(
            mine.last().unwrap().received_at_ms,
            extra,
            "the oldest went first"
        );
        assert!(all.iter().any(|r| r.device_id == device(2)));
    }
}
