//! Per-camera rows: the threshold each camera learned from its sensors,
//! and the latest capture time each camera reached, so a restart keeps both
//! what the camera learned and the rule that its time never runs backwards.

use sqlx::Row;

use super::{Store, StoreError};
use crate::base::time::Millis;

impl Store {
    /// A camera's calibrated threshold (see `tracking::calibration`).
    pub async fn save_calibration(
        &self,
        camera: &str,
        threshold: f64,
        samples: usize,
        at_ms: Millis,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO camera_calibration (camera, threshold, samples, updated_ms) VALUES ($1, $2, $3, $4)
             ON CONFLICT (camera) DO UPDATE SET threshold = excluded.threshold, samples = excluded.samples, updated_ms = excluded.updated_ms",
        )
        .bind(camera)
        .bind(threshold)
        .bind(samples as i64)
        .bind(at_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every camera's calibration: (camera, threshold, samples).
    pub async fn calibrations(&self) -> Result<Vec<(String, f64, usize)>, StoreError> {
        let rows = sqlx::query(
            "SELECT camera, threshold, samples FROM camera_calibration ORDER BY camera",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let samples: i64 = r.try_get("samples")?;
            out.push((
                r.try_get("camera")?,
                r.try_get("threshold")?,
                samples as usize,
            ));
        }
        Ok(out)
    }

    /// Forgets calibrations (all, or one camera's): back to the configured threshold.
    pub async fn reset_calibration(&self, camera: Option<&str>) -> Result<u64, StoreError> {
        let done = match camera {
            Some(c) => {
                sqlx::query("DELETE FROM camera_calibration WHERE camera = $1")
                    .bind(c)
                    .execute(&self.pool)
                    .await?
            }
            None => {
                sqlx::query("DELETE FROM camera_calibration")
                    .execute(&self.pool)
                    .await?
            }
        };
        Ok(done.rows_affected())
    }

    /// Saves cameras' latest capture times (camera, captured_ms) at wall
    /// time `saved_ms`. A stored time never moves back.
    pub async fn save_camera_times(
        &self,
        times: &[(String, Millis)],
        saved_ms: Millis,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for (camera, captured) in times {
            sqlx::query(
                "INSERT INTO camera_clock (camera, last_captured_ms, saved_ms) VALUES ($1, $2, $3)
                 ON CONFLICT (camera) DO UPDATE SET last_captured_ms = excluded.last_captured_ms, saved_ms = excluded.saved_ms
                 WHERE camera_clock.last_captured_ms <= excluded.last_captured_ms",
            )
            .bind(camera)
            .bind(*captured)
            .bind(saved_ms)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Every camera's latest stored capture time: (camera, captured_ms).
    pub async fn camera_times(&self) -> Result<Vec<(String, Millis)>, StoreError> {
        let rows = sqlx::query("SELECT camera, last_captured_ms FROM camera_clock ORDER BY camera")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("camera")?, r.try_get("last_captured_ms")?)))
            .collect()
    }
}
