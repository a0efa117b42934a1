//! Presence-sensor readings applied to their zones, and time passing for
//! zones that sensors speak for while their camera is silent.

use crate::base::input::{SensorReading, Source};
use crate::base::time::{Millis, format_rfc3339};
use crate::tracking::SensorVote;

use super::{InputError, Metrics, Pipeline, PipelineError, RecordError, SensorOutcome};

impl Pipeline {
    pub(super) async fn sensor_inner(
        &mut self,
        reading: &SensorReading,
    ) -> Result<SensorOutcome, PipelineError> {
        let Some((zone, last)) = self.sensors.get_mut(&reading.sensor) else {
            return Err(InputError::UnknownSensor(reading.sensor.clone()).into());
        };
        // The broker delivers a reading again when its acknowledgement was
        // lost (a crash after the commit): the same fact is applied once.
        if *last
            == Some(SensorVote {
                occupied: reading.occupied,
                measured_at: reading.measured_at,
            })
        {
            return Ok(SensorOutcome::Repeated);
        }
        if let Some(prev) = last
            && reading.measured_at < prev.measured_at
        {
            return Err(InputError::Backwards {
                what: format!("sensor \"{}\" reading", reading.sensor),
                at: format_rfc3339(reading.measured_at),
                previous: format_rfc3339(prev.measured_at),
            }
            .into());
        }
        // The reading is a fact whether or not the step below commits.
        *last = Some(SensorVote {
            occupied: reading.occupied,
            measured_at: reading.measured_at,
        });
        let zone = *zone;
        Metrics::inc(&self.metrics.sensor_readings, 1);
        self.step_zone(zone, reading.measured_at, None, Some(reading))
            .await?;
        self.update_live(zone, reading.measured_at);
        Ok(SensorOutcome::Applied)
    }

    /// Records a sensor's reading on its own, when the step it caused could
    /// not be: the zone steps on its next input with the vote in memory,
    /// and a restart finds the vote stored.
    pub async fn record_sensor_state(&self, reading: &SensorReading) -> Result<(), RecordError> {
        let store = &self.committer.store;
        store
            .save_sensor_state(&reading.sensor, reading.occupied, reading.measured_at)
            .await?;
        Ok(())
    }

    /// Advances zones that sensors speak for while their camera is silent,
    /// so time passing alone can confirm or end a violation, every source
    /// at event time `at` (a replay's clock).
    pub async fn tick(&mut self, at: Millis) -> Result<(), PipelineError> {
        self.tick_by(|_| Some(at)).await
    }

    /// As [`Self::tick`], with each zone at the latest time of its own
    /// sources (`clock` gives a source's time now, `None` if it never
    /// spoke): one camera's clock never moves another camera's zones.
    pub async fn tick_by(
        &mut self,
        clock: impl Fn(Source<'_>) -> Option<Millis>,
    ) -> Result<(), PipelineError> {
        let mut first_error = None;
        for i in 0..self.zones.len() {
            let z = &self.zones[i];
            if z.zone.sensors.is_empty() {
                continue;
            }
            let sources = std::iter::once(Source::Camera(&z.zone.camera))
                .chain(z.zone.sensors.iter().map(|s| Source::Sensor(s)));
            let Some(at) = sources.filter_map(&clock).max() else {
                continue;
            };
            let camera_fresh = z
                .camera_score
                .is_some_and(|(_, t)| at - t <= z.zone.params.camera_stale_ms);
            if camera_fresh || z.state.tracker.last_at.is_some_and(|l| l >= at) {
                continue;
            }
            if let Err(e) = self.step_zone(i, at, None, None).await {
                first_error.get_or_insert(e);
            }
        }
        let result = first_error.map_or(Ok(()), |e| Err(e.into()));
        self.count_error(&result);
        result
    }
}
