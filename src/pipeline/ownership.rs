//! Cluster mode: a pipeline judges only the cameras its instance holds.
//! A camera gained is resumed from the stored zone state, exactly as after
//! a restart; a camera given up is forgotten in memory only, its open
//! violations left for the new holder to continue (never ended here).

use std::collections::HashSet;
use std::sync::Arc;

use tokio::sync::watch;

use super::{Pipeline, RecordError, ZoneRuntime};

/// The cameras held, as the cluster task sends them.
pub type Updates = watch::Receiver<Arc<HashSet<String>>>;

impl Pipeline {
    /// Cluster mode: judge nothing until `updates` says which cameras are
    /// held here, then follow it (the engine applies each change between
    /// two inputs).
    pub fn follow_ownership(&mut self, updates: Updates) {
        self.owned = Some(HashSet::new());
        self.ownership = Some(updates);
    }

    /// The updates to follow, for the engine's loop.
    pub fn take_ownership_updates(&mut self) -> Option<Updates> {
        self.ownership.take()
    }

    /// Judges from now on only `cameras` (`None`: every camera, the
    /// single-instance default).
    pub async fn set_owned(&mut self, cameras: Option<HashSet<String>>) -> Result<(), RecordError> {
        let all: HashSet<String> = self.zones.iter().map(|z| z.zone.camera.clone()).collect();
        let before = self.owned.clone().unwrap_or_else(|| all.clone());
        let after = cameras.clone().unwrap_or(all);
        let lost: HashSet<&String> = before.difference(&after).collect();
        let gained: HashSet<String> = after.difference(&before).cloned().collect();
        for z in &mut self.zones {
            if lost.contains(&z.zone.camera) {
                *z = ZoneRuntime::new(z.zone.clone());
            }
        }
        for camera in &lost {
            self.last_frame_at.remove(*camera);
            self.camera_times_saved.remove(*camera);
            self.last_jpeg.remove(*camera);
            self.live.write().expect("live lock").frames.remove(*camera);
        }
        if !lost.is_empty() || !gained.is_empty() {
            tracing::info!(gained = ?sorted(&gained), lost = ?sorted(&lost.iter().map(|c| (*c).clone()).collect()), "cameras judged here changed");
        }
        self.owned = cameras;
        if !gained.is_empty()
            && let Err(e) = self.resume_cameras(Some(&gained)).await
        {
            // Judging a gained camera from a clear state would announce
            // its open violation again: it waits until its state loads.
            if let Some(o) = &mut self.owned {
                o.retain(|c| !gained.contains(c));
            }
            for z in &mut self.zones {
                if gained.contains(&z.zone.camera) {
                    *z = ZoneRuntime::new(z.zone.clone());
                }
            }
            return Err(e);
        }
        Ok(())
    }

    /// Whether this pipeline judges `camera` now.
    pub fn owns(&self, camera: &str) -> bool {
        self.owned.as_ref().is_none_or(|o| o.contains(camera))
    }
}

fn sorted(set: &HashSet<String>) -> Vec<&String> {
    let mut v: Vec<&String> = set.iter().collect();
    v.sort();
    v
}
