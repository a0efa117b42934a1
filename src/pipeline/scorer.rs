//! The CPU-heavy half of a frame: decode, crop and classify every zone of
//! its camera. Cheap to clone and safe on any thread, so frames of
//! different cameras are scored in parallel; the pipeline then applies
//! the results one at a time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use image::RgbImage;

use super::InputError;
use crate::base::geometry::ZonePolygon;
use crate::base::input::Frame;
use crate::base::time::format_rfc3339;
use crate::config::Config;
use crate::vision::Classifier;
use crate::vision::decode::{
    decode_jpeg_for_zones, decode_jpeg_into, jpeg_dimensions, scaled_decode_worth_it,
};
use crate::vision::reuse::{ReuseRule, ScoreCache, zone_key};

/// A frame after scoring: its zones' scores.
#[derive(Debug)]
pub struct ScoredFrame {
    pub frame: Frame,
    /// The zones as they were when scored (a config change may come between).
    pub(super) zones: Arc<CameraZones>,
    /// Full width and height, read from the header once while scoring.
    pub(super) size: (u32, u32),
    pub(super) scores: Vec<f32>,
    /// Tiles whose kept score was reused.
    pub(super) reused: usize,
    /// Each zone's tile scores (one for a zone scored whole).
    pub(super) tiles: Vec<Vec<f32>>,
    pub times: FrameTimes,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct FrameTimes {
    pub decode: Duration,
    pub crop: Duration,
    pub inference: Duration,
}

/// A camera's zones and their polygons, built once per configuration so a
/// frame's scoring borrows them instead of copying.
#[derive(Debug)]
pub(super) struct CameraZones {
    pub zone_ids: Vec<String>,
    pub polygons: Vec<ZonePolygon>,
    /// Bounding boxes as fractions, for the decode scale.
    pub bounds: Vec<[f64; 4]>,
}

/// Each camera's zones, swapped whole when the configuration changes.
pub(super) type SharedCameraZones = Arc<RwLock<Arc<HashMap<String, Arc<CameraZones>>>>>;

pub(super) fn camera_zones(config: &Config) -> HashMap<String, Arc<CameraZones>> {
    config
        .cameras
        .iter()
        .map(|c| {
            let of_camera: Vec<_> = config.zones.iter().filter(|z| z.camera == c.id).collect();
            let polygons: Vec<_> = of_camera.iter().map(|z| z.polygon.clone()).collect();
            let bounds = polygons.iter().map(|p| p.fraction_bounds()).collect();
            let zones = CameraZones {
                zone_ids: of_camera.iter().map(|z| z.id.clone()).collect(),
                polygons,
                bounds,
            };
            (c.id.clone(), Arc::new(zones))
        })
        .collect()
}

#[derive(Clone)]
pub struct Scorer {
    pub(super) classifier: Arc<Classifier>,
    pub(super) cameras: SharedCameraZones,
    pub(super) scaled_decode: bool,
    pub(super) max_pixels: u64,
    pub(super) reuse: Arc<Reuse>,
}

/// Scores kept for unchanged crops: the rule (from `[ingest]`, swapped on
/// a configuration change) and each camera's cache. A camera's cache is
/// taken out while one of its frames is scored (one at a time per camera).
#[derive(Default)]
pub(super) struct Reuse {
    pub rule: RwLock<ReuseRule>,
    caches: Mutex<HashMap<String, ScoreCache>>,
}

impl Reuse {
    /// Takes `config`'s rule and forgets the caches of cameras it no
    /// longer has (so they are bounded by the configuration).
    pub fn configure(&self, config: &Config) {
        *self.rule.write().expect("reuse lock") = ReuseRule {
            max_diff: config.ingest.reuse_max_diff as f32,
            max_age_ms: crate::base::time::secs_to_ms(config.ingest.reuse_max_age_s),
        };
        let mut caches = self.caches.lock().expect("reuse lock");
        caches.retain(|camera, _| config.cameras.iter().any(|c| &c.id == camera));
    }
}

thread_local! {
    /// Each scoring thread's frame buffer, reused frame after frame.
    static FRAME_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Crops per inference call: tract runs this small network fastest per
/// crop one at a time (`cargo bench --bench vision`).
const INFERENCE_CHUNK: usize = 1;

impl Scorer {
    pub fn score(&self, frame: Frame) -> Result<ScoredFrame, InputError> {
        let zones = self
            .cameras
            .read()
            .expect("camera zones lock")
            .get(&frame.camera)
            .cloned();
        let Some(zones) = zones else {
            return Err(InputError::UnknownCamera(frame.camera));
        };
        let started = Instant::now();
        let decode_error = |source| InputError::Decode {
            camera: frame.camera.clone(),
            at: format_rfc3339(frame.captured_at),
            source,
        };
        // The header alone first: a frame declaring more pixels than any
        // camera here sends is refused before a buffer is sized for it.
        // A frame whose header cannot be read is refused here too: no
        // decoder gets a frame the pixel limit has not seen.
        let Some((width, height)) = jpeg_dimensions(&frame.jpeg) else {
            return Err(decode_error(crate::vision::DecodeError::Corrupt(
                "the JPEG header (SOF) cannot be read".into(),
            )));
        };
        let header = Some((width, height));
        if u64::from(width) * u64::from(height) > self.max_pixels {
            return Err(InputError::Decode {
                camera: frame.camera.clone(),
                at: format_rfc3339(frame.captured_at),
                source: crate::vision::DecodeError::TooLarge {
                    width,
                    height,
                    max: self.max_pixels,
                },
            });
        }
        let header = header.filter(|_| self.scaled_decode);
        let scaled = header.is_some_and(|(w, h)| {
            scaled_decode_worth_it(w, h, &zones.bounds, self.classifier.input_px())
        });
        let (image, size) = if let (true, Some(size)) = (scaled, header) {
            let image =
                decode_jpeg_for_zones(&frame.jpeg, &zones.bounds, self.classifier.input_px())
                    .map_err(decode_error)?
                    .0;
            (image, size)
        } else {
            // Full size into this thread's reused buffer, given back below.
            let mut buf = FRAME_BUFFER.with(|b| std::mem::take(&mut *b.borrow_mut()));
            let (w, h) = decode_jpeg_into(&frame.jpeg, &mut buf).map_err(decode_error)?;
            (
                RgbImage::from_raw(w, h, buf).expect("decoded size matches"),
                (w, h),
            )
        };
        let decode = started.elapsed();
        let rule = *self.reuse.rule.read().expect("reuse lock");
        let (w, h) = image.dimensions();
        let keyed: Vec<(u64, &ZonePolygon)> = zones
            .zone_ids
            .iter()
            .zip(&zones.polygons)
            .map(|(id, p)| (zone_key(id, p, w, h), p))
            .collect();
        let mut cache = rule.enabled().then(|| {
            let mut caches = self.reuse.caches.lock().expect("reuse lock");
            caches.remove(&frame.camera).unwrap_or_default()
        });
        let scored = self
            .classifier
            .score_zones_reusing(
                &image,
                &keyed,
                INFERENCE_CHUNK,
                cache.as_mut().map(|c| (c, frame.captured_at, rule)),
            )
            .map_err(|source| InputError::Model {
                camera: frame.camera.clone(),
                source,
            });
        if let Some(c) = cache {
            let mut caches = self.reuse.caches.lock().expect("reuse lock");
            caches.insert(frame.camera.clone(), c);
        }
        if !scaled {
            FRAME_BUFFER.with(|b| *b.borrow_mut() = image.into_raw());
        }
        let scored = scored?;
        Ok(ScoredFrame {
            frame,
            zones,
            size,
            scores: scored.zones,
            tiles: scored.tiles,
            reused: scored.reused,
            times: FrameTimes {
                decode,
                crop: scored.times.crop,
                inference: scored.times.inference,
            },
        })
    }
}
