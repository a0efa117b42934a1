//! The audit log's rows: a hash chain appended in the same transaction as
//! the change it records (a review, a configuration version), so there is
//! never a change without its entry nor an entry without its change.
//! Another process appending at the same time (a CLI export while the
//! daemon runs) makes the primary key on `seq` refuse one of the two; that
//! one is retried from a fresh head.

use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, Row};

use super::{Store, StoreError};
use crate::base::time::Millis;

/// `prev_hash` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, Clone, PartialEq)]
pub struct AuditRow {
    pub seq: i64,
    pub at_ms: Millis,
    pub actor: String,
    pub actor_token: String,
    pub role: String,
    pub action: String,
    pub target: String,
    /// JSON object.
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

/// An entry to chain: everything but its place in the chain.
#[derive(Debug, Clone)]
pub struct AuditDraft {
    pub at_ms: Millis,
    pub actor: String,
    pub actor_token: String,
    pub role: String,
    pub action: String,
    pub target: String,
    pub detail: serde_json::Value,
}

/// The hash of an entry: SHA-256 over a JSON array of its fields in a
/// fixed order (JSON escapes newlines, so no field can forge a boundary).
pub fn entry_hash(e: &AuditRow) -> String {
    let canonical = serde_json::to_string(&(
        e.seq,
        e.at_ms,
        &e.actor,
        &e.actor_token,
        &e.role,
        &e.action,
        &e.target,
        &e.detail,
        &e.prev_hash,
    ))
    .expect("strings and integers serialise");
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

const ATTEMPTS: usize = 5;

fn lost_race(e: &StoreError, attempt: usize) -> bool {
    matches!(e, StoreError::Sql(sqlx::Error::Database(d)) if d.is_unique_violation())
        && attempt + 1 < ATTEMPTS
}

/// Appends `draft` after the current head, on `conn` (inside the caller's
/// transaction).
async fn chain(conn: &mut AnyConnection, draft: &AuditDraft) -> Result<AuditRow, StoreError> {
    let head = sqlx::query(
        "SELECT seq, at_ms, actor, actor_token, role, action, target, detail, prev_hash, hash
         FROM audit_log ORDER BY seq DESC LIMIT 1",
    )
    .fetch_optional(&mut *conn)
    .await?
    .as_ref()
    .map(audit_from_row)
    .transpose()?;
    let mut row = AuditRow {
        seq: head.as_ref().map_or(1, |h| h.seq + 1),
        at_ms: draft.at_ms,
        actor: draft.actor.clone(),
        actor_token: draft.actor_token.clone(),
        role: draft.role.clone(),
        action: draft.action.clone(),
        target: draft.target.clone(),
        detail: draft.detail.to_string(),
        prev_hash: head.map_or_else(|| GENESIS.to_string(), |h| h.hash),
        hash: String::new(),
    };
    row.hash = entry_hash(&row);
    sqlx::query(
        "INSERT INTO audit_log (seq, at_ms, actor, actor_token, role, action, target, detail, prev_hash, hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(row.seq)
    .bind(row.at_ms)
    .bind(&row.actor)
    .bind(&row.actor_token)
    .bind(&row.role)
    .bind(&row.action)
    .bind(&row.target)
    .bind(&row.detail)
    .bind(&row.prev_hash)
    .bind(&row.hash)
    .execute(&mut *conn)
    .await?;
    Ok(row)
}

impl Store {
    /// Appends an entry on its own (an evidence view, an export).
    pub async fn append_audit(&self, draft: &AuditDraft) -> Result<AuditRow, StoreError> {
        let mut attempt = 0;
        loop {
            let mut tx = self.pool.begin().await?;
            let result = match chain(&mut tx, draft).await {
                Ok(row) => tx.commit().await.map(|_| row).map_err(StoreError::from),
                Err(e) => Err(e),
            };
            match result {
                Err(e) if lost_race(&e, attempt) => attempt += 1,
                other => return other,
            }
        }
    }

    /// Records a review and its audit entry in one transaction; `None` (and
    /// nothing written) when there is no such violation.
    pub async fn add_review(
        &self,
        r: &super::ReviewRow,
        draft: &AuditDraft,
    ) -> Result<Option<AuditRow>, StoreError> {
        let mut attempt = 0;
        loop {
            match self.try_add_review(r, draft).await {
                Err(e) if lost_race(&e, attempt) => attempt += 1,
                other => return other,
            }
        }
    }

    async fn try_add_review(
        &self,
        r: &super::ReviewRow,
        draft: &AuditDraft,
    ) -> Result<Option<AuditRow>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query("UPDATE violations SET review_status = $1 WHERE id = $2")
            .bind(&r.status)
            .bind(&r.violation_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if updated == 0 {
            return Ok(None);
        }
        sqlx::query(
            "INSERT INTO reviews (violation_id, status, note, actor, actor_token, role, at_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&r.violation_id)
        .bind(&r.status)
        .bind(&r.note)
        .bind(&r.actor)
        .bind(&r.actor_token)
        .bind(&r.role)
        .bind(r.at_ms)
        .execute(&mut *tx)
        .await?;
        let entry = chain(&mut tx, draft).await?;
        tx.commit().await?;
        Ok(Some(entry))
    }

    /// Records a configuration version and returns its id; with `draft`,
    /// its audit entry (detail gains `"version": id`) in the same
    /// transaction.
    pub async fn add_config_version(
        &self,
        at_ms: Millis,
        actor: &str,
        source: &str,
        sha256: &str,
        toml: &str,
        draft: Option<&AuditDraft>,
    ) -> Result<i64, StoreError> {
        let mut attempt = 0;
        loop {
            let result = async {
                let mut tx = self.pool.begin().await?;
                let r = sqlx::query(
                    "INSERT INTO config_versions (at_ms, actor, source, sha256, toml) VALUES ($1, $2, $3, $4, $5) RETURNING id",
                )
                .bind(at_ms)
                .bind(actor)
                .bind(source)
                .bind(sha256)
                .bind(toml)
                .fetch_one(&mut *tx)
                .await?;
                let id: i64 = r.try_get("id")?;
                if let Some(d) = draft {
                    let mut d = d.clone();
                    if let Some(obj) = d.detail.as_object_mut() {
                        obj.insert("version".into(), id.into());
                    }
                    chain(&mut tx, &d).await?;
                }
                tx.commit().await?;
                Ok::<i64, StoreError>(id)
            }
            .await;
            match result {
                Err(e) if lost_race(&e, attempt) => attempt += 1,
                other => return other,
            }
        }
    }

    /// Entries with `seq > after`, in order.
    pub async fn audit_entries(&self, after: i64, limit: i64) -> Result<Vec<AuditRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, at_ms, actor, actor_token, role, action, target, detail, prev_hash, hash
             FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(audit_from_row).collect::<Result<_, _>>()?)
    }
}

fn audit_from_row(r: &sqlx::any::AnyRow) -> Result<AuditRow, sqlx::Error> {
    Ok(AuditRow {
        seq: r.try_get("seq")?,
        at_ms: r.try_get("at_ms")?,
        actor: r.try_get("actor")?,
        actor_token: r.try_get("actor_token")?,
        role: r.try_get("role")?,
        action: r.try_get("action")?,
        target: r.try_get("target")?,
        detail: r.try_get("detail")?,
        prev_hash: r.try_get("prev_hash")?,
        hash: r.try_get("hash")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ReviewRow;

    async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("a.db").display());
        (dir, Store::open(&url).await.unwrap())
    }

    fn draft(action: &str) -> AuditDraft {
        AuditDraft {
            at_ms: 1000,
            actor: "olga".into(),
            actor_token: "t1".into(),
            role: "officer".into(),
            action: action.into(),
            target: "v-1".into(),
            detail: serde_json::json!({}),
        }
    }

    async fn count(store: &Store, table: &'static str) -> i64 {
        let sql = match table {
            "reviews" => "SELECT COUNT(*) AS n FROM reviews",
            "audit_log" => "SELECT COUNT(*) AS n FROM audit_log",
            _ => "SELECT COUNT(*) AS n FROM config_versions",
        };
        sqlx::query(sql)
            .fetch_one(store.pool())
            .await
            .unwrap()
            .try_get("n")
            .unwrap()
    }

    /// The audit insert failing takes the change with it; the retry then
    /// records both once.
    #[tokio::test]
    async fn a_change_and_its_entry_commit_together() {
        let (_dir, store) = store().await;
        sqlx::query(
            "INSERT INTO violations (id, camera, zone, start_ms, confirmed_ms, last_obstructed_ms, peak_score, model_name, model_sha256, status)
             VALUES ('v-1', 'c', 'z', 0, 0, 0, 0.9, 'm', 'h', 'open')",
        )
        .execute(store.pool())
        .await
        .unwrap();
        let fail = "CREATE TRIGGER audit_down BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'audit down'); END";
        sqlx::query(fail).execute(store.pool()).await.unwrap();
        let review = ReviewRow {
            violation_id: "v-1".into(),
            status: "cited".into(),
            note: String::new(),
            actor: "olga".into(),
            actor_token: "t1".into(),
            role: "officer".into(),
            at_ms: 1000,
        };
        assert!(store.add_review(&review, &draft("review")).await.is_err());
        let v = sqlx::query("SELECT review_status FROM violations WHERE id = 'v-1'")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(v.try_get::<String, _>("review_status").unwrap(), "pending");
        assert_eq!(count(&store, "reviews").await, 0);
        let version = store
            .add_config_version(1000, "olga", "api", "h", "x = 1", Some(&draft("zone_save")))
            .await;
        assert!(version.is_err());
        assert_eq!(count(&store, "config_versions").await, 0);

        sqlx::query("DROP TRIGGER audit_down")
            .execute(store.pool())
            .await
            .unwrap();
        let entry = store.add_review(&review, &draft("review")).await.unwrap();
        assert_eq!(entry.unwrap().seq, 1);
        let id = store
            .add_config_version(1000, "olga", "api", "h", "x = 1", Some(&draft("zone_save")))
            .await
            .unwrap();
        assert_eq!(
            (
                count(&store, "reviews").await,
                count(&store, "audit_log").await
            ),
            (1, 2)
        );
        let entries = store.audit_entries(0, 10).await.unwrap();
        let detail: serde_json::Value = serde_json::from_str(&entries[1].detail).unwrap();
        assert_eq!(
            detail["version"], id,
            "the entry names the version it wrote"
        );
        assert_eq!(entries[1].prev_hash, entries[0].hash);
        // No such violation: nothing written, no entry.
        let mut other = review.clone();
        other.violation_id = "v-9".into();
        assert!(
            store
                .add_review(&other, &draft("review"))
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(count(&store, "audit_log").await, 2);
    }
}
