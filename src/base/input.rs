//! What arrives from outside, before any judgement: camera frames and
//! presence-sensor readings, each stamped with its capture time.

use std::sync::Arc;
use std::time::Instant;

use super::time::Millis;

/// A camera frame as received: the JPEG bytes, untouched.
#[derive(Debug, Clone)]
pub struct Frame {
    pub camera: String,
    pub captured_at: Millis,
    pub jpeg: Arc<Vec<u8>>,
    /// When it reached firelane (for the latency metric only).
    pub arrived: Option<Instant>,
}

/// A presence sensor's reading at its measurement time.
#[derive(Debug, Clone, PartialEq)]
pub struct SensorReading {
    pub sensor: String,
    pub measured_at: Millis,
    pub occupied: bool,
}

/// Where an input came from: each source keeps its own event clock, so a
/// camera with a wrong clock moves only its own zones' time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source<'a> {
    Camera(&'a str),
    Sensor(&'a str),
}
