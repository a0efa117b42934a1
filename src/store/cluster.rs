//! Cluster rows (PostgreSQL only): instances and their heartbeats, camera
//! leases with a fencing epoch, and the fence a commit checks.
//!
//! Every time here is the database's clock (`clock_timestamp()`), so the
//! instances' own clocks never have to agree.

use std::collections::HashMap;
use std::sync::RwLock;

use serde::Serialize;
use sqlx::Row;

use super::{Store, StoreError};
use crate::base::time::Millis;

const DB_NOW: &str = "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)";

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemberRow {
    pub id: String,
    pub api_url: Option<String>,
    pub started_ms: Millis,
    pub heartbeat_ms: Millis,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LeaseRow {
    pub camera: String,
    pub owner: String,
    pub epoch: i64,
    pub expires_ms: Millis,
    pub taken_ms: Millis,
}

/// Who holds a camera now, and where its API is.
#[derive(Debug, Clone, PartialEq)]
pub struct Holder {
    pub camera: String,
    pub owner: String,
    pub api_url: Option<String>,
}

/// A lease just taken.
#[derive(Debug, Clone, PartialEq)]
pub struct Taken {
    pub epoch: i64,
    /// Since when no one judged the camera; none for a camera never held.
    pub unwatched: Option<UnwatchedRow>,
}

/// Why a camera was judged by no one for a while.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UnwatchedCause {
    /// Its holder let it go (a clean stop, a handover) before the taker
    /// took it: at most one heartbeat.
    Released,
    /// Its holder went silent (died, cut off): from its last renewal, at
    /// most one heartbeat before it stopped judging, to the takeover.
    Silent,
    /// Its holder could not renew in time and stopped judging, then renewed
    /// it again with no one having taken it: from when it stopped to when
    /// it resumed.
    Lapsed,
}

impl UnwatchedCause {
    pub fn as_str(self) -> &'static str {
        match self {
            UnwatchedCause::Released => "released",
            UnwatchedCause::Silent => "silent",
            UnwatchedCause::Lapsed => "lapsed",
        }
    }

    /// The inverse of [`UnwatchedCause::as_str`], as the column holds it.
    fn from_db(s: &str) -> UnwatchedCause {
        [UnwatchedCause::Released, UnwatchedCause::Lapsed]
            .into_iter()
            .find(|c| c.as_str() == s)
            .unwrap_or(UnwatchedCause::Silent)
    }
}

/// A span in which no instance judged `camera` (database clock, ms).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnwatchedRow {
    pub camera: String,
    pub previous_owner: String,
    pub owner: String,
    pub cause: UnwatchedCause,
    pub from_ms: Millis,
    pub to_ms: Millis,
}

/// The cameras this instance holds and under which epoch. A commit for a
/// camera checks, in its own transaction, that the lease is still this
/// instance's with that epoch and unexpired: an instance cut off from the
/// database, or one whose camera was taken over, cannot record anything
/// for it (fencing).
#[derive(Debug, Default)]
pub struct Fence {
    pub owner: String,
    /// The held cameras' epochs, and until when they surely are held.
    epochs: RwLock<(HashMap<String, i64>, Option<std::time::Instant>)>,
}

impl Fence {
    pub fn new(owner: &str) -> Fence {
        Fence {
            owner: owner.to_string(),
            epochs: RwLock::default(),
        }
    }

    pub fn set(&self, epochs: HashMap<String, i64>, valid_until: Option<std::time::Instant>) {
        *self.epochs.write().expect("fence lock") = (epochs, valid_until);
    }

    /// `camera`'s epoch while it is held; none once the last renewal is
    /// too old to be sure (the local side of the fence).
    pub fn epoch(&self, camera: &str) -> Option<i64> {
        let (epochs, valid_until) = &*self.epochs.read().expect("fence lock");
        if valid_until.is_none_or(|v| std::time::Instant::now() > v) {
            return None;
        }
        epochs.get(camera).copied()
    }
}

impl Store {
    /// The database's clock, in ms.
    pub async fn db_now(&self) -> Result<Millis, StoreError> {
        let sql = format!("SELECT {DB_NOW} AS now");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_one(self.pool())
            .await?;
        Ok(row.try_get("now")?)
    }

    /// Records this instance as alive now; returns the database's time.
    pub async fn heartbeat(
        &self,
        id: &str,
        api_url: Option<&str>,
        started_ms: Millis,
    ) -> Result<Millis, StoreError> {
        let sql = format!(
            "INSERT INTO cluster_members (id, api_url, started_ms, heartbeat_ms) VALUES ($1, $2, $3, {DB_NOW})
             ON CONFLICT (id) DO UPDATE SET api_url = excluded.api_url, heartbeat_ms = excluded.heartbeat_ms
             RETURNING heartbeat_ms"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(api_url)
            .bind(started_ms)
            .fetch_one(self.pool())
            .await?;
        Ok(row.try_get("heartbeat_ms")?)
    }

    pub async fn members(&self) -> Result<Vec<MemberRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, api_url, started_ms, heartbeat_ms FROM cluster_members ORDER BY id",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(MemberRow {
                    id: r.try_get("id")?,
                    api_url: r.try_get("api_url")?,
                    started_ms: r.try_get("started_ms")?,
                    heartbeat_ms: r.try_get("heartbeat_ms")?,
                })
            })
            .collect()
    }

    /// Forgets an instance (a clean stop) and instances silent for longer
    /// than `forget_after_ms` (so the table does not grow with restarts).
    pub async fn leave(&self, id: &str, forget_after_ms: Millis) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM cluster_members WHERE id = $1")
            .bind(id)
            .execute(self.pool())
            .await?;
        let sql = format!("DELETE FROM cluster_members WHERE heartbeat_ms < {DB_NOW} - $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(forget_after_ms)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn leases(&self) -> Result<Vec<LeaseRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT camera, owner, epoch, expires_ms, taken_ms FROM camera_leases ORDER BY camera",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(LeaseRow {
                    camera: r.try_get("camera")?,
                    owner: r.try_get("owner")?,
                    epoch: r.try_get("epoch")?,
                    expires_ms: r.try_get("expires_ms")?,
                    taken_ms: r.try_get("taken_ms")?,
                })
            })
            .collect()
    }

    /// Each camera whose lease is live by the database's clock, with its
    /// holder and the holder's advertised API (when it has one): one query,
    /// as the API asks it on every camera list and frame request.
    pub async fn live_holders(&self) -> Result<Vec<Holder>, StoreError> {
        let sql = format!(
            "SELECT l.camera, l.owner, m.api_url FROM camera_leases l
             LEFT JOIN cluster_members m ON m.id = l.owner
             WHERE l.expires_ms >= {DB_NOW} ORDER BY l.camera"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Holder {
                    camera: r.try_get("camera")?,
                    owner: r.try_get("owner")?,
                    api_url: r.try_get("api_url")?,
                })
            })
            .collect()
    }

    /// Takes `camera` when its lease is free or expired: a new epoch, so a
    /// former owner's commits are refused from now on. A camera held
    /// before was judged by no one from its release (or its silent
    /// holder's last renewal) until now: that span is recorded with the
    /// lease, in one transaction.
    pub async fn acquire_lease(
        &self,
        camera: &str,
        owner: &str,
        lease_ms: Millis,
    ) -> Result<Option<Taken>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let before = sqlx::query(
            "SELECT owner, expires_ms, released_ms, renewed_ms FROM camera_leases WHERE camera = $1 FOR UPDATE",
        )
        .bind(camera)
        .fetch_optional(&mut *tx)
        .await?;
        let sql = format!(
            "INSERT INTO camera_leases (camera, owner, epoch, expires_ms, taken_ms, renewed_ms)
               VALUES ($1, $2, 1, {DB_NOW} + $3, {DB_NOW}, {DB_NOW})
             ON CONFLICT (camera) DO UPDATE SET owner = excluded.owner,
               epoch = camera_leases.epoch + 1, expires_ms = excluded.expires_ms,
               taken_ms = excluded.taken_ms, renewed_ms = excluded.taken_ms, released_ms = NULL
             WHERE camera_leases.expires_ms < excluded.taken_ms
             RETURNING epoch, taken_ms"
        );
        let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(camera)
            .bind(owner)
            .bind(lease_ms)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(None);
        };
        let epoch: i64 = row.try_get("epoch")?;
        let taken_ms: Millis = row.try_get("taken_ms")?;
        let unwatched = match before {
            None => None,
            Some(b) => {
                let released: Option<Millis> = b.try_get("released_ms")?;
                let renewed: Option<Millis> = b.try_get("renewed_ms")?;
                let expires_ms: Millis = b.try_get("expires_ms")?;
                let (cause, from_ms) = match released {
                    Some(at) => (UnwatchedCause::Released, at),
                    // Leases from before renewals were stamped: this
                    // instance's lease length is the best guess.
                    None => (
                        UnwatchedCause::Silent,
                        renewed.unwrap_or(expires_ms - lease_ms),
                    ),
                };
                let u = UnwatchedRow {
                    camera: camera.to_string(),
                    previous_owner: b.try_get("owner")?,
                    owner: owner.to_string(),
                    cause,
                    from_ms: from_ms.min(taken_ms),
                    to_ms: taken_ms,
                };
                insert_unwatched(&mut tx, &u).await?;
                Some(u)
            }
        };
        tx.commit().await?;
        Ok(Some(Taken { epoch, unwatched }))
    }

    /// The newest `limit` spans in which a camera was judged by no one.
    pub async fn unwatched(&self, limit: i64) -> Result<Vec<UnwatchedRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT camera, previous_owner, owner, cause, from_ms, to_ms FROM camera_unwatched
             ORDER BY id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let cause: String = r.try_get("cause")?;
                Ok(UnwatchedRow {
                    camera: r.try_get("camera")?,
                    previous_owner: r.try_get("previous_owner")?,
                    owner: r.try_get("owner")?,
                    cause: UnwatchedCause::from_db(&cause),
                    from_ms: r.try_get("from_ms")?,
                    to_ms: r.try_get("to_ms")?,
                })
            })
            .collect()
    }

    /// Extends every lease `owner` still holds; returns them with their
    /// epochs. One no other instance took stays this one's even if it ran
    /// out meanwhile: nobody judged the camera in between. One it released
    /// stays released: renewing it would hold off the instance it was
    /// handed to until the next round gave it up again.
    pub async fn renew_leases(
        &self,
        owner: &str,
        lease_ms: Millis,
    ) -> Result<HashMap<String, i64>, StoreError> {
        let sql = format!(
            "UPDATE camera_leases SET expires_ms = {DB_NOW} + $2, renewed_ms = {DB_NOW}
             WHERE owner = $1 AND released_ms IS NULL RETURNING camera, epoch"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(owner)
            .bind(lease_ms)
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("camera")?, r.try_get("epoch")?)))
            .collect()
    }

    /// Records spans in which this instance held cameras but judged none of
    /// them (it could not renew in time), each ending at `to_ms`
    /// (database clock) and `for_ms` long.
    pub async fn record_lapsed(
        &self,
        owner: &str,
        cameras: &[String],
        to_ms: Millis,
        for_ms: Millis,
    ) -> Result<Vec<UnwatchedRow>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut out = Vec::new();
        for camera in cameras {
            let u = UnwatchedRow {
                camera: camera.clone(),
                previous_owner: owner.to_string(),
                owner: owner.to_string(),
                cause: UnwatchedCause::Lapsed,
                from_ms: to_ms - for_ms.max(0),
                to_ms,
            };
            insert_unwatched(&mut tx, &u).await?;
            out.push(u);
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Gives `camera` up at once (a handover or a clean stop).
    pub async fn release_lease(&self, camera: &str, owner: &str) -> Result<(), StoreError> {
        let sql = format!(
            "UPDATE camera_leases SET expires_ms = 0, released_ms = {DB_NOW} WHERE camera = $1 AND owner = $2"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(camera)
            .bind(owner)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}

async fn insert_unwatched(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    u: &UnwatchedRow,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO camera_unwatched (camera, previous_owner, owner, cause, from_ms, to_ms)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&u.camera)
    .bind(&u.previous_owner)
    .bind(&u.owner)
    .bind(u.cause.as_str())
    .bind(u.from_ms)
    .bind(u.to_ms)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The check a commit makes inside its transaction (see [`Fence`]).
pub(super) async fn check_fence(
    c: &mut sqlx::AnyConnection,
    camera: &str,
    owner: &str,
    epoch: i64,
) -> Result<(), StoreError> {
    let sql = format!(
        "SELECT epoch FROM camera_leases WHERE camera = $1 AND owner = $2 AND epoch = $3 AND expires_ms >= {DB_NOW} FOR SHARE"
    );
    let held = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(camera)
        .bind(owner)
        .bind(epoch)
        .fetch_optional(&mut *c)
        .await?;
    match held {
        Some(_) => Ok(()),
        None => Err(StoreError::Fenced {
            camera: camera.to_string(),
        }),
    }
}
