//! The alert outbox's rows. Enqueueing is idempotent on (event key,
//! channel, target), so a step repeated after a crash adds nothing.

use sqlx::AnyConnection;
use sqlx::Row;

use super::{Store, StoreError};
use crate::base::kinds::OutboxStatus;
use crate::base::time::Millis;

#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRow {
    pub id: i64,
    /// `<violation>/<event>[/<at>]`: the same alert always has the same key.
    pub event_key: String,
    /// `mqtt`, `webhook` or `email`.
    pub channel: String,
    /// Topic, URL or address.
    pub target: String,
    pub site: String,
    pub violation_id: String,
    /// `new`, `update` or `end`.
    pub event: String,
    /// The JSON alert.
    pub payload: String,
    /// `suppressed` is a reminder inside quiet hours.
    pub status: OutboxStatus,
    pub attempts: i64,
    /// Wall-clock ms before which it is not tried (retry backoff, quiet hours).
    pub next_attempt_ms: Millis,
    pub event_ms: Millis,
    /// Wall-clock ms it was queued at (0: before this was recorded).
    pub queued_ms: Millis,
    pub sent_ms: Option<Millis>,
    pub last_error: Option<String>,
}

const COLUMNS: &str = "id, event_key, channel, target, site, violation_id, event, payload, status, attempts, next_attempt_ms, event_ms, queued_ms, sent_ms, last_error";

/// Adds rows not yet there on `c`; returns how many were new.
pub(super) async fn enqueue(c: &mut AnyConnection, rows: &[OutboxRow]) -> Result<u64, StoreError> {
    let mut added = 0;
    for r in rows {
        added += sqlx::query(
            "INSERT INTO outbox (event_key, channel, target, site, violation_id, event, payload, status, attempts, next_attempt_ms, event_ms, queued_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9, $10, $11)
             ON CONFLICT (event_key, channel, target) DO NOTHING",
        )
        .bind(&r.event_key)
        .bind(&r.channel)
        .bind(&r.target)
        .bind(&r.site)
        .bind(&r.violation_id)
        .bind(&r.event)
        .bind(&r.payload)
        .bind(r.status.as_str())
        .bind(r.next_attempt_ms)
        .bind(r.event_ms)
        .bind(r.queued_ms)
        .execute(&mut *c)
        .await?
        .rows_affected();
    }
    Ok(added)
}

impl Store {
    /// Adds rows not yet there; returns how many were new.
    pub async fn enqueue_outbox(&self, rows: &[OutboxRow]) -> Result<u64, StoreError> {
        let mut tx = self.begin().await?;
        let added = tx.enqueue_outbox(rows).await?;
        tx.commit().await?;
        Ok(added)
    }

    /// Each target's oldest pending row, when it is due by `now`, oldest
    /// first. One target that keeps failing holds back only its own rows:
    /// per-target order is kept and no other target waits behind it.
    pub async fn outbox_due(&self, now: Millis, limit: i64) -> Result<Vec<OutboxRow>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM outbox o WHERE status = 'pending' AND next_attempt_ms <= $1
               AND id = (SELECT MIN(id) FROM outbox p WHERE p.status = 'pending' AND p.channel = o.channel AND p.target = o.target)
             ORDER BY id LIMIT $2"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(outbox_from_row).collect::<Result<_, _>>()?)
    }

    /// Cluster mode: [`Self::outbox_due`], each row claimed by `me` until
    /// `now + claim_ms` so no other instance sends it meanwhile. A claim
    /// of an instance that died runs out and the row is sent by another
    /// (again, with the same delivery id). PostgreSQL only.
    pub async fn outbox_claim(
        &self,
        me: &str,
        now: Millis,
        claim_ms: Millis,
        limit: i64,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        let sql = format!(
            "UPDATE outbox SET claimed_by = $1, claimed_until_ms = $2 + $3 WHERE id IN (
               SELECT id FROM outbox o WHERE status = 'pending' AND next_attempt_ms <= $2
                 AND id = (SELECT MIN(id) FROM outbox p WHERE p.status = 'pending' AND p.channel = o.channel AND p.target = o.target)
                 AND (claimed_until_ms IS NULL OR claimed_until_ms < $2 OR claimed_by = $1)
               ORDER BY id LIMIT $4 FOR UPDATE SKIP LOCKED)
             RETURNING {COLUMNS}"
        );
        let mut rows: Vec<OutboxRow> = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(me)
            .bind(now)
            .bind(claim_ms)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(outbox_from_row)
            .collect::<Result<_, _>>()?;
        rows.sort_by_key(|r| r.id);
        Ok(rows)
    }

    /// Every row, oldest first (for tests and the status output).
    pub async fn outbox(&self) -> Result<Vec<OutboxRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM outbox ORDER BY id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(outbox_from_row).collect::<Result<_, _>>()?)
    }

    pub async fn outbox_sent(&self, id: i64, at: Millis) -> Result<(), StoreError> {
        sqlx::query("UPDATE outbox SET status = 'sent', sent_ms = $1, attempts = attempts + 1, last_error = NULL WHERE id = $2")
            .bind(at)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn outbox_retry(
        &self,
        id: i64,
        next_attempt_ms: Millis,
        error: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE outbox SET attempts = attempts + 1, next_attempt_ms = $1, last_error = $2 WHERE id = $3")
            .bind(next_attempt_ms)
            .bind(error)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn outbox_expire(&self, id: i64, error: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE outbox SET status = 'expired', attempts = attempts + 1, last_error = $1 WHERE id = $2")
            .bind(error)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Open violations per zone (for the Home Assistant site sensors).
    pub async fn open_violations_by_zone(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT zone, COUNT(*) AS n FROM violations WHERE status = 'open' GROUP BY zone",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("zone")?, r.try_get("n")?)))
            .collect()
    }
}

fn outbox_from_row(r: &sqlx::any::AnyRow) -> Result<OutboxRow, sqlx::Error> {
    Ok(OutboxRow {
        id: r.try_get("id")?,
        event_key: r.try_get("event_key")?,
        channel: r.try_get("channel")?,
        target: r.try_get("target")?,
        site: r.try_get("site")?,
        violation_id: r.try_get("violation_id")?,
        event: r.try_get("event")?,
        payload: r.try_get("payload")?,
        status: {
            let s: String = r.try_get("status")?;
            s.parse().map_err(|e| sqlx::Error::Decode(Box::new(e)))?
        },
        attempts: r.try_get("attempts")?,
        next_attempt_ms: r.try_get("next_attempt_ms")?,
        event_ms: r.try_get("event_ms")?,
        queued_ms: r.try_get("queued_ms")?,
        sent_ms: r.try_get("sent_ms")?,
        last_error: r.try_get("last_error")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(n: usize, channel: &str, target: &str) -> OutboxRow {
        OutboxRow {
            id: 0,
            event_key: format!("v-{n}/new"),
            channel: channel.into(),
            target: target.into(),
            site: "north".into(),
            violation_id: format!("v-{n}"),
            event: "new".into(),
            payload: "{}".into(),
            status: OutboxStatus::Pending,
            attempts: 0,
            next_attempt_ms: 0,
            event_ms: 0,
            queued_ms: 0,
            sent_ms: None,
            last_error: None,
        }
    }

    /// Hours of one dead webhook pile up hundreds of rows; the MQTT alert
    /// queued after them is still due (the old "200 lowest ids" was not).
    #[tokio::test]
    async fn a_dead_target_holds_back_only_itself() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("o.db").display());
        let store = Store::open(&url).await.unwrap();
        let mut rows: Vec<OutboxRow> = (0..300)
            .map(|n| row(n, "webhook", "https://dead.example/hook"))
            .collect();
        rows.push(row(300, "mqtt", "site/violations"));
        store.enqueue_outbox(&rows).await.unwrap();
        let due = store.outbox_due(1000, 200).await.unwrap();
        let picked: Vec<(&str, &str)> = due
            .iter()
            .map(|r| (r.channel.as_str(), r.violation_id.as_str()))
            .collect();
        assert_eq!(picked, [("webhook", "v-0"), ("mqtt", "v-300")]);
        // The dead target backs off: only the other target is due.
        store
            .outbox_retry(due[0].id, 60_000, "HTTP 503")
            .await
            .unwrap();
        let due = store.outbox_due(1000, 200).await.unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].channel, "mqtt");
    }
}
