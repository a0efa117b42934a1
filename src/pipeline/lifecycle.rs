//! A pipeline's life around its inputs: picking up where the database left
//! off after a restart, and switching to a new configuration between two
//! inputs. Both end a violation whose zone was redrawn, moved or removed
//! (`zone_changed`, `zone_removed`): it was judged on a picture that no
//! longer applies.

use std::collections::HashMap;
use std::sync::Arc;

use super::commit::ZoneKey;
use super::{Pipeline, PipelineError, RecordError, ZoneRuntime, scorer};
use crate::base::kinds::EndReason;
use crate::config::Config;
use crate::tracking::SensorVote;
use crate::tracking::zone::{FirstFrame, ZoneState, detach};

impl Pipeline {
    /// Rebuilds every index of zones, cameras and sensors from `config`
    /// and the current zone list; sensor votes already known are kept.
    pub(super) fn index(&mut self, config: &Config) {
        self.zone_index = self
            .zones
            .iter()
            .enumerate()
            .map(|(i, z)| (z.zone.id.clone(), i))
            .collect();
        *self.camera_zones.write().expect("camera zones lock") =
            Arc::new(scorer::camera_zones(config));
        let mut votes: HashMap<String, Option<SensorVote>> = self
            .sensors
            .drain()
            .map(|(id, (_, vote))| (id, vote))
            .collect();
        self.sensors = config
            .sensors
            .iter()
            .map(|s| {
                let vote = votes.remove(&s.id).flatten();
                (s.id.clone(), (self.zone_index[&s.zone], vote))
            })
            .collect();
        self.keep_last_jpeg = config
            .zones
            .iter()
            .filter(|z| !z.sensors.is_empty())
            .map(|z| z.camera.clone())
            .collect();
        self.last_jpeg
            .retain(|camera, _| self.keep_last_jpeg.contains(camera));
        self.scaled_decode = config.ingest.scaled_decode;
        self.max_pixels = config.ingest.max_frame_pixels;
        self.reuse.configure(config);
        self.calibration.configure(config);
        self.apply_calibration();
        self.committer.context.config_sha256 = config.sha256.clone();
        self.committer.context.sites = super::RecordContext::sites_of(config);
        let mut live = self.live.write().expect("live lock");
        live.zones.retain(|id, _| self.zone_index.contains_key(id));
        live.frames
            .retain(|camera, _| config.cameras.iter().any(|c| &c.id == camera));
    }

    /// Switches to `config` between two inputs. Zones whose camera and
    /// polygon are unchanged keep their state and open violation.
    pub async fn reconfigure(&mut self, config: Arc<Config>) -> Result<(), PipelineError> {
        let mut old: HashMap<String, ZoneRuntime> = self
            .zones
            .drain(..)
            .map(|z| (z.zone.id.clone(), z))
            .collect();
        let mut ended = Vec::new();
        for z in &config.zones {
            match old.remove(&z.id) {
                Some(mut rt) if rt.zone.camera == z.camera && rt.zone.polygon == z.polygon => {
                    rt.zone = z.clone();
                    self.zones.push(rt);
                }
                Some(rt) => {
                    ended.push((rt.zone, rt.state, EndReason::ZoneChanged));
                    self.zones.push(ZoneRuntime::new(z.clone()));
                }
                None => self.zones.push(ZoneRuntime::new(z.clone())),
            }
        }
        ended.extend(
            old.into_values()
                .map(|rt| (rt.zone, rt.state, EndReason::ZoneRemoved)),
        );
        self.index(&config);
        let mut first_error = None;
        for (zone, state, reason) in ended {
            if let Err(e) = self.end_detached((&zone).into(), &state, reason).await {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), |e| Err(e.into()))
    }

    /// Ends what a zone that left the configuration (or was redrawn) had
    /// open, and resets its stored state.
    async fn end_detached(
        &mut self,
        zone: ZoneKey<'_>,
        state: &ZoneState,
        reason: EndReason,
    ) -> Result<(), RecordError> {
        self.committer
            .commit(zone, &detach(state, reason), None)
            .await
    }

    /// Picks up where the database left off: open obstructions and
    /// violations continue, so a restart neither duplicates nor loses one.
    pub async fn resume(&mut self) -> Result<usize, RecordError> {
        let owned = self.owned.clone();
        self.resume_cameras(owned.as_ref()).await
    }

    /// [`Self::resume`] for `cameras` only (all with `None`): a camera
    /// another instance holds is left alone, its violations included.
    pub(super) async fn resume_cameras(
        &mut self,
        cameras: Option<&std::collections::HashSet<String>>,
    ) -> Result<usize, RecordError> {
        let store = self.committer.store.clone();
        let mut resumed = 0;
        let ours = |camera: &str| cameras.is_none_or(|c| c.contains(camera));
        for row in store.zone_states().await? {
            if !ours(&row.camera) {
                continue;
            }
            let first = row.first_sha256.clone().map(|sha256| FirstFrame {
                sha256,
                captured_at: row.first_captured_ms.unwrap_or_default(),
                score: row.first_score,
            });
            let state = ZoneState::resumed(
                row.phase.clone(),
                row.last_at_ms,
                row.violation_id.clone(),
                first,
            );
            let known = self.zone_index.get(&row.zone).copied();
            // A violation judged on a picture that changed while the daemon
            // was down (zone redrawn, moved or removed) ends, as it would
            // have with the daemon running; the zone starts afresh.
            let changed = match known {
                None => Some(EndReason::ZoneRemoved),
                Some(i) => {
                    let z = &self.zones[i].zone;
                    let polygon =
                        serde_json::to_string(z.polygon.points()).expect("points serialise");
                    let drawn = match &row.violation_id {
                        Some(id) => store.violation(id).await?.map(|v| v.zone_polygon),
                        None => None,
                    };
                    (z.camera != row.camera || drawn.is_some_and(|d| d != polygon))
                        .then_some(EndReason::ZoneChanged)
                }
            };
            if let Some(reason) = changed {
                if row.violation_id.is_some() {
                    // The zone as it was stored: its id and camera are what
                    // the ended violation and the reset state name.
                    let site = match known {
                        Some(i) => self.zones[i].zone.site.clone(),
                        None => self.default_site().to_string(),
                    };
                    let key = ZoneKey {
                        id: &row.zone,
                        camera: &row.camera,
                        site: &site,
                    };
                    self.end_detached(key, &state, reason).await?;
                }
                continue;
            }
            let Some(i) = known else { continue };
            if !matches!(row.phase, crate::tracking::Phase::Clear) {
                resumed += 1;
            }
            self.zones[i].state = state;
        }
        self.load_calibration().await?;
        // A camera's frames older than what was judged before the restart
        // are still refused as running backwards.
        for (camera, at) in store.camera_times().await? {
            if ours(&camera)
                && self
                    .camera_zones
                    .read()
                    .expect("camera zones lock")
                    .contains_key(&camera)
            {
                self.last_frame_at.insert(camera.clone(), at);
                self.camera_times_saved.insert(camera, at);
            }
        }
        // Votes of sensors whatever their camera: each is a fact, and only
        // the zones of cameras held here are stepped.
        for (sensor, occupied, measured_at) in store.sensor_states().await? {
            if let Some((_, vote)) = self.sensors.get_mut(&sensor) {
                *vote = Some(SensorVote {
                    occupied,
                    measured_at,
                });
            }
        }
        Ok(resumed)
    }

    /// Stores each camera's latest capture time that moved since the last
    /// save (called now and then, and at shutdown, not per frame).
    pub async fn save_camera_times(&mut self) -> Result<usize, RecordError> {
        let moved: Vec<(String, crate::base::time::Millis)> = self
            .last_frame_at
            .iter()
            .filter(|(c, at)| self.camera_times_saved.get(*c).is_none_or(|s| s < *at))
            .map(|(c, at)| (c.clone(), *at))
            .collect();
        if moved.is_empty() {
            return Ok(0);
        }
        self.committer
            .store
            .save_camera_times(&moved, crate::base::time::wall_clock_ms())
            .await?;
        let n = moved.len();
        self.camera_times_saved.extend(moved);
        Ok(n)
    }

    fn default_site(&self) -> &str {
        self.committer
            .context
            .sites
            .keys()
            .next()
            .map_or("default", String::as_str)
    }
}
