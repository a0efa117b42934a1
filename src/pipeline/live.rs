//! What each zone is doing now and each camera's latest frame, for the
//! zone editor's live overlay. Written by the pipeline, read by the API.

use std::collections::HashMap;
use std::sync::Arc;

use crate::base::time::{Millis, rfc3339};

#[derive(Debug, Clone, serde::Serialize)]
pub struct ZoneLive {
    /// `clear`, `obstructed`, `violation`, or `inactive` (outside its schedule).
    pub state: &'static str,
    pub score: Option<f64>,
    /// A long zone's tile scores (see `ZonePolygon::tiles`), in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tiles: Vec<f32>,
    #[serde(with = "rfc3339::option")]
    pub at: Option<Millis>,
    pub violation_id: Option<String>,
}

/// A camera's latest frame, as received.
#[derive(Debug, Clone)]
pub struct LatestFrame {
    pub captured_at: Millis,
    pub jpeg: Arc<Vec<u8>>,
    pub width: u32,
    pub height: u32,
}

#[derive(Debug, Default)]
pub struct LiveView {
    pub zones: HashMap<String, ZoneLive>,
    /// Only kept when asked for (`Pipeline::keep_latest_frames`): a JPEG
    /// per camera is memory a site of hundreds of cameras may not spare.
    pub frames: HashMap<String, LatestFrame>,
    /// Cameras whose threshold was calibrated from their sensors.
    pub calibration: HashMap<String, super::CameraCalibration>,
}
