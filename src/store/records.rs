//! Violations, their evidence records, zone and sensor state: the rows the
//! pipeline writes, each query written once against a connection so it runs
//! the same inside a [`StoreTx`] or on its own.
//!
//! sqlx 0.9's `Any` driver binds a NULL `f64` as a `float4` (its `Null`
//! kinds for `Real` and `Double` are swapped), and PostgreSQL caches the
//! parameter types of a prepared statement: after a NULL, the next real
//! score is sent as 8 bytes for a 4-byte parameter and refused ("incorrect
//! binary data format"). Queries that bind an optional float are therefore
//! not kept prepared ([`Query::persistent`]`(false)`), so each execution
//! declares the types it binds.

use sqlx::AnyConnection;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::{Store, StoreError, VIOLATION_COLUMNS};
use crate::base::kinds::{EndReason, EvidenceKind, EvidenceVariant, ViolationStatus};
use crate::base::time::Millis;
use crate::tracking::Phase;

#[derive(Debug, Clone, PartialEq)]
pub struct ViolationRow {
    pub id: String,
    pub camera: String,
    pub zone: String,
    pub start_ms: Millis,
    pub confirmed_ms: Millis,
    pub cleared_ms: Option<Millis>,
    pub last_obstructed_ms: Millis,
    pub peak_score: f64,
    pub model_name: String,
    pub model_sha256: String,
    pub status: ViolationStatus,
    pub end_reason: Option<EndReason>,
    /// The zone's polygon (JSON, image fractions) when it was confirmed.
    pub zone_polygon: String,
    /// SHA-256 of the configuration it was confirmed under.
    pub config_sha256: String,
    /// `pending`, or an officer's latest review: `confirmed`, `dismissed`, `cited`.
    pub review_status: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EvidenceRow {
    pub violation_id: String,
    pub kind: EvidenceKind,
    pub variant: EvidenceVariant,
    pub sha256: String,
    /// Relative to the evidence folder.
    pub path: String,
    pub bytes: i64,
    pub captured_ms: Millis,
    pub score: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ZoneStateRow {
    pub zone: String,
    pub camera: String,
    pub phase: Phase,
    pub last_at_ms: Option<Millis>,
    pub violation_id: Option<String>,
    /// The original bytes of the first obstructed frame, already in the
    /// evidence store, so a restart keeps it.
    pub first_sha256: Option<String>,
    pub first_captured_ms: Option<Millis>,
    pub first_score: Option<f64>,
}

/// A stored word read back into its enum.
fn word<T: std::str::FromStr<Err = crate::base::kinds::UnknownWord>>(
    r: &AnyRow,
    column: &str,
) -> Result<T, sqlx::Error> {
    let text: String = r.try_get(column)?;
    text.parse().map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

pub(crate) fn violation_from_row(r: &AnyRow) -> Result<ViolationRow, sqlx::Error> {
    let end_reason: Option<String> = r.try_get("end_reason")?;
    Ok(ViolationRow {
        id: r.try_get("id")?,
        camera: r.try_get("camera")?,
        zone: r.try_get("zone")?,
        start_ms: r.try_get("start_ms")?,
        confirmed_ms: r.try_get("confirmed_ms")?,
        cleared_ms: r.try_get("cleared_ms")?,
        last_obstructed_ms: r.try_get("last_obstructed_ms")?,
        peak_score: r.try_get("peak_score")?,
        model_name: r.try_get("model_name")?,
        model_sha256: r.try_get("model_sha256")?,
        status: word(r, "status")?,
        end_reason: end_reason
            .map(|s| s.parse().map_err(|e| sqlx::Error::Decode(Box::new(e))))
            .transpose()?,
        zone_polygon: r.try_get("zone_polygon")?,
        config_sha256: r.try_get("config_sha256")?,
        review_status: r.try_get("review_status")?,
    })
}

/// Inserts a violation, or replaces it when the same id comes again (a
/// replay run twice, a retried step): ids derive from camera, zone and start.
async fn upsert_violation(c: &mut AnyConnection, v: &ViolationRow) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO violations (id, camera, zone, start_ms, confirmed_ms, cleared_ms, last_obstructed_ms, peak_score, model_name, model_sha256, status, end_reason, zone_polygon, config_sha256)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
         ON CONFLICT (id) DO UPDATE SET confirmed_ms = excluded.confirmed_ms, cleared_ms = excluded.cleared_ms,
           last_obstructed_ms = excluded.last_obstructed_ms, peak_score = excluded.peak_score,
           model_name = excluded.model_name, model_sha256 = excluded.model_sha256,
           status = excluded.status, end_reason = excluded.end_reason,
           zone_polygon = excluded.zone_polygon, config_sha256 = excluded.config_sha256",
    )
    .bind(&v.id)
    .bind(&v.camera)
    .bind(&v.zone)
    .bind(v.start_ms)
    .bind(v.confirmed_ms)
    .bind(v.cleared_ms)
    .bind(v.last_obstructed_ms)
    .bind(v.peak_score)
    .bind(&v.model_name)
    .bind(&v.model_sha256)
    .bind(v.status.as_str())
    .bind(v.end_reason.map(EndReason::as_str))
    .bind(&v.zone_polygon)
    .bind(&v.config_sha256)
    .execute(c)
    .await?;
    Ok(())
}

async fn update_progress(
    c: &mut AnyConnection,
    id: &str,
    last_obstructed_ms: Millis,
    peak: f64,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE violations SET last_obstructed_ms = $1, peak_score = $2 WHERE id = $3")
        .bind(last_obstructed_ms)
        .bind(peak)
        .bind(id)
        .execute(c)
        .await?;
    Ok(())
}

async fn end_violation(
    c: &mut AnyConnection,
    id: &str,
    cleared_ms: Millis,
    last_obstructed_ms: Millis,
    peak: f64,
    reason: EndReason,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE violations SET cleared_ms = $1, last_obstructed_ms = $2, peak_score = $3, status = $4, end_reason = $5 WHERE id = $6",
    )
    .bind(cleared_ms)
    .bind(last_obstructed_ms)
    .bind(peak)
    .bind(ViolationStatus::Cleared.as_str())
    .bind(reason.as_str())
    .bind(id)
    .execute(c)
    .await?;
    Ok(())
}

async fn add_evidence(c: &mut AnyConnection, e: &EvidenceRow) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO evidence (violation_id, kind, variant, sha256, path, bytes, captured_ms, score)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (violation_id, kind, variant) DO UPDATE SET sha256 = excluded.sha256, path = excluded.path,
           bytes = excluded.bytes, captured_ms = excluded.captured_ms, score = excluded.score",
    )
    .persistent(false)
    .bind(&e.violation_id)
    .bind(e.kind.as_str())
    .bind(e.variant.as_str())
    .bind(&e.sha256)
    .bind(&e.path)
    .bind(e.bytes)
    .bind(e.captured_ms)
    .bind(e.score)
    .execute(c)
    .await?;
    Ok(())
}

async fn violation(c: &mut AnyConnection, id: &str) -> Result<Option<ViolationRow>, StoreError> {
    let sql = format!("SELECT {VIOLATION_COLUMNS} FROM violations WHERE id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(c)
        .await?;
    Ok(row.as_ref().map(violation_from_row).transpose()?)
}

async fn save_zone_state(c: &mut AnyConnection, s: &ZoneStateRow) -> Result<(), StoreError> {
    let json = serde_json::to_string(&s.phase).expect("phase serialises");
    sqlx::query(
        "INSERT INTO zone_state (zone, camera, phase, phase_json, last_at_ms, violation_id, first_sha256, first_captured_ms, first_score)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (zone) DO UPDATE SET camera = excluded.camera, phase = excluded.phase, phase_json = excluded.phase_json,
           last_at_ms = excluded.last_at_ms, violation_id = excluded.violation_id, first_sha256 = excluded.first_sha256,
           first_captured_ms = excluded.first_captured_ms, first_score = excluded.first_score",
    )
    .persistent(false)
    .bind(&s.zone)
    .bind(&s.camera)
    .bind(s.phase.name())
    .bind(json)
    .bind(s.last_at_ms)
    .bind(&s.violation_id)
    .bind(&s.first_sha256)
    .bind(s.first_captured_ms)
    .bind(s.first_score)
    .execute(c)
    .await?;
    Ok(())
}

async fn save_sensor_state(
    c: &mut AnyConnection,
    sensor: &str,
    occupied: bool,
    measured_ms: Millis,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO sensor_state (sensor, occupied, measured_ms) VALUES ($1, $2, $3)
         ON CONFLICT (sensor) DO UPDATE SET occupied = excluded.occupied, measured_ms = excluded.measured_ms",
    )
    .bind(sensor)
    .bind(occupied as i64)
    .bind(measured_ms)
    .execute(c)
    .await?;
    Ok(())
}

/// One transaction of the pipeline's writes: everything a decision needs
/// lands together or not at all.
pub struct StoreTx {
    tx: Transaction<'static, Any>,
}

impl StoreTx {
    pub async fn upsert_violation(&mut self, v: &ViolationRow) -> Result<(), StoreError> {
        upsert_violation(&mut self.tx, v).await
    }
    pub async fn update_progress(
        &mut self,
        id: &str,
        last_obstructed_ms: Millis,
        peak: f64,
    ) -> Result<(), StoreError> {
        update_progress(&mut self.tx, id, last_obstructed_ms, peak).await
    }
    pub async fn end_violation(
        &mut self,
        id: &str,
        cleared_ms: Millis,
        last_obstructed_ms: Millis,
        peak: f64,
        reason: EndReason,
    ) -> Result<(), StoreError> {
        end_violation(
            &mut self.tx,
            id,
            cleared_ms,
            last_obstructed_ms,
            peak,
            reason,
        )
        .await
    }
    pub async fn add_evidence(&mut self, e: &EvidenceRow) -> Result<(), StoreError> {
        add_evidence(&mut self.tx, e).await
    }
    pub async fn violation(&mut self, id: &str) -> Result<Option<ViolationRow>, StoreError> {
        violation(&mut self.tx, id).await
    }
    pub async fn save_zone_state(&mut self, s: &ZoneStateRow) -> Result<(), StoreError> {
        save_zone_state(&mut self.tx, s).await
    }
    pub async fn save_sensor_state(
        &mut self,
        sensor: &str,
        occupied: bool,
        measured_ms: Millis,
    ) -> Result<(), StoreError> {
        save_sensor_state(&mut self.tx, sensor, occupied, measured_ms).await
    }
    pub async fn enqueue_outbox(&mut self, rows: &[super::OutboxRow]) -> Result<u64, StoreError> {
        super::outbox::enqueue(&mut self.tx, rows).await
    }
    /// Refuses the transaction unless `owner` still holds `camera`'s
    /// lease under `epoch` (cluster mode; see [`super::cluster::Fence`]).
    pub async fn check_fence(
        &mut self,
        camera: &str,
        owner: &str,
        epoch: i64,
    ) -> Result<(), StoreError> {
        super::cluster::check_fence(&mut self.tx, camera, owner, epoch).await
    }

    pub async fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().await?;
        Ok(())
    }
}

impl Store {
    /// Starts a transaction for a batch of writes.
    pub async fn begin(&self) -> Result<StoreTx, StoreError> {
        Ok(StoreTx {
            tx: self.pool.begin().await?,
        })
    }

    /// Runs `f` in a transaction of its own and commits it.
    async fn single<T>(
        &self,
        f: impl AsyncFnOnce(&mut StoreTx) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut tx = self.begin().await?;
        let out = f(&mut tx).await?;
        tx.commit().await?;
        Ok(out)
    }

    pub async fn upsert_violation(&self, v: &ViolationRow) -> Result<(), StoreError> {
        self.single(async |tx| tx.upsert_violation(v).await).await
    }
    pub async fn update_progress(
        &self,
        id: &str,
        last: Millis,
        peak: f64,
    ) -> Result<(), StoreError> {
        self.single(async |tx| tx.update_progress(id, last, peak).await)
            .await
    }
    pub async fn end_violation(
        &self,
        id: &str,
        cleared_ms: Millis,
        last_obstructed_ms: Millis,
        peak: f64,
        reason: EndReason,
    ) -> Result<(), StoreError> {
        self.single(async |tx| {
            tx.end_violation(id, cleared_ms, last_obstructed_ms, peak, reason)
                .await
        })
        .await
    }
    pub async fn add_evidence(&self, e: &EvidenceRow) -> Result<(), StoreError> {
        self.single(async |tx| tx.add_evidence(e).await).await
    }
    pub async fn save_zone_state(&self, s: &ZoneStateRow) -> Result<(), StoreError> {
        self.single(async |tx| tx.save_zone_state(s).await).await
    }
    pub async fn save_sensor_state(
        &self,
        sensor: &str,
        occupied: bool,
        measured_ms: Millis,
    ) -> Result<(), StoreError> {
        self.single(async |tx| tx.save_sensor_state(sensor, occupied, measured_ms).await)
            .await
    }

    pub async fn violation(&self, id: &str) -> Result<Option<ViolationRow>, StoreError> {
        let mut c = self.pool.acquire().await?;
        violation(&mut c, id).await
    }

    /// All violations, oldest start first.
    pub async fn violations(&self) -> Result<Vec<ViolationRow>, StoreError> {
        let sql = format!("SELECT {VIOLATION_COLUMNS} FROM violations ORDER BY start_ms, zone");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(violation_from_row)
            .collect::<Result<_, _>>()?)
    }

    pub async fn evidence(&self, violation_id: &str) -> Result<Vec<EvidenceRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT violation_id, kind, variant, sha256, path, bytes, captured_ms, score FROM evidence
             WHERE violation_id = $1 ORDER BY captured_ms, kind, variant",
        )
        .bind(violation_id)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push(EvidenceRow {
                violation_id: r.try_get("violation_id")?,
                kind: word(&r, "kind")?,
                variant: word(&r, "variant")?,
                sha256: r.try_get("sha256")?,
                path: r.try_get("path")?,
                bytes: r.try_get("bytes")?,
                captured_ms: r.try_get("captured_ms")?,
                score: r.try_get("score")?,
            });
        }
        Ok(out)
    }

    pub async fn zone_states(&self) -> Result<Vec<ZoneStateRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT zone, camera, phase_json, last_at_ms, violation_id, first_sha256, first_captured_ms, first_score FROM zone_state ORDER BY zone",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let zone: String = r.try_get("zone")?;
            let json: String = r.try_get("phase_json")?;
            let phase = serde_json::from_str(&json).map_err(|e| StoreError::BadState {
                zone: zone.clone(),
                message: e.to_string(),
            })?;
            out.push(ZoneStateRow {
                zone,
                camera: r.try_get("camera")?,
                phase,
                last_at_ms: r.try_get("last_at_ms")?,
                violation_id: r.try_get("violation_id")?,
                first_sha256: r.try_get("first_sha256")?,
                first_captured_ms: r.try_get("first_captured_ms")?,
                first_score: r.try_get("first_score")?,
            });
        }
        Ok(out)
    }

    /// Latest reading of every sensor: (sensor, occupied, measured_ms).
    pub async fn sensor_states(&self) -> Result<Vec<(String, bool, Millis)>, StoreError> {
        let rows =
            sqlx::query("SELECT sensor, occupied, measured_ms FROM sensor_state ORDER BY sensor")
                .fetch_all(&self.pool)
                .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let occupied: i64 = r.try_get("occupied")?;
            out.push((
                r.try_get("sensor")?,
                occupied != 0,
                r.try_get("measured_ms")?,
            ));
        }
        Ok(out)
    }
}
