//! Saved configuration versions (`config_versions`).

use sqlx::Row;

use super::{Store, StoreError};
use crate::base::time::Millis;

#[derive(Debug, Clone, PartialEq)]
pub struct ConfigVersionRow {
    pub id: i64,
    pub at_ms: Millis,
    pub actor: String,
    /// `start`, `api`, `file`, `restore` or `apply`.
    pub source: String,
    /// SHA-256 of the TOML text.
    pub sha256: String,
    /// The text; empty in listings.
    pub toml: String,
    pub bytes: i64,
}

fn row(r: &sqlx::any::AnyRow, with_text: bool) -> Result<ConfigVersionRow, sqlx::Error> {
    Ok(ConfigVersionRow {
        id: r.try_get("id")?,
        at_ms: r.try_get("at_ms")?,
        actor: r.try_get("actor")?,
        source: r.try_get("source")?,
        sha256: r.try_get("sha256")?,
        toml: if with_text {
            r.try_get("toml")?
        } else {
            String::new()
        },
        bytes: r.try_get("bytes")?,
    })
}

impl Store {
    /// Newest first, without the text.
    pub async fn config_versions(&self, limit: i64) -> Result<Vec<ConfigVersionRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, at_ms, actor, source, sha256, CAST(LENGTH(toml) AS BIGINT) AS bytes FROM config_versions ORDER BY id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| row(r, false))
            .collect::<Result<_, _>>()?)
    }

    pub async fn config_version(&self, id: i64) -> Result<Option<ConfigVersionRow>, StoreError> {
        let r = sqlx::query(
            "SELECT id, at_ms, actor, source, sha256, toml, CAST(LENGTH(toml) AS BIGINT) AS bytes FROM config_versions WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(r.as_ref().map(|r| row(r, true)).transpose()?)
    }

    /// Announces `version` to the other instances (cluster mode,
    /// PostgreSQL's `NOTIFY`).
    pub async fn notify_config(&self, version: i64) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_notify('firelane_config', $1)")
            .bind(version.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
