//! The obstruction classifier: an ONNX model run by tract, described by its
//! card. The file's SHA-256 must match the card, so evidence can name the
//! exact model that judged it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use image::RgbImage;
use tract_onnx::prelude::*;

use crate::base::digest::sha256_hex;
use crate::base::geometry::ZonePolygon;

use super::card::{CardError, ModelCard};
use super::crop;
use super::reuse::{ReuseRule, ScoreCache, Signature};
use crate::base::time::Millis;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    Card(#[from] CardError),
    #[error("model {path}: cannot read: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "model {path}: SHA-256 {actual} does not match its card ({expected}); the file was changed or the card is stale — refusing to run an unknown model"
    )]
    HashMismatch {
        path: String,
        expected: String,
        actual: String,
    },
    #[error("model {path}: cannot load ONNX: {message}")]
    Onnx { path: String, message: String },
    #[error("model builtin:{name}: no such model is built in (built in: {known})")]
    UnknownBuiltin { name: String, known: String },
    #[error("inference failed: {0}")]
    Inference(String),
}

type Plan = Arc<TypedRunnableModel>;

/// How `[model] path` names a model built into the binary.
pub const BUILTIN_PREFIX: &str = "builtin:";

/// A model and its card compiled into the binary, so the daemon and its
/// commands run from any folder and after `cargo install`.
pub struct BuiltinModel {
    pub name: &'static str,
    pub card: &'static str,
    pub onnx: &'static [u8],
}

pub const BUILTIN_MODELS: &[BuiltinModel] = &[BuiltinModel {
    name: "obstruction-v2",
    card: include_str!("../../models/obstruction-v2.json"),
    onnx: include_bytes!("../../models/obstruction-v2.onnx"),
}];

fn builtin_names() -> String {
    let names: Vec<String> = BUILTIN_MODELS
        .iter()
        .map(|m| format!("{BUILTIN_PREFIX}{}", m.name))
        .collect();
    names.join(", ")
}

/// Plans kept per batch size (zones per camera: a handful of sizes).
const MAX_PLANS: usize = 32;

/// A loaded, verified classifier. Cheap to share across threads.
pub struct Classifier {
    pub card: ModelCard,
    pub path: PathBuf,
    pub sha256: String,
    /// The decluttered model with a symbolic batch `N`.
    model: TypedModel,
    batch: Symbol,
    /// Optimised plans, one per concrete batch size: tract runs a model with
    /// its batch fixed about twice as fast per crop as with `N` left open.
    plans: std::sync::Mutex<std::collections::HashMap<usize, Plan>>,
}

impl std::fmt::Debug for Classifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Classifier")
            .field("name", &self.card.name)
            .field("sha256", &self.sha256)
            .finish()
    }
}

/// A decluttered model with its batch fixed, as firelane runs it: the
/// activations moved after the pools, the stem and the wide stride-1
/// convolutions swapped ([`super::pool`], [`super::stem`],
/// [`super::direct`]), optimised by tract, then its 2×2 pools swapped.
pub fn optimise(mut model: TypedModel) -> TractResult<TypedModel> {
    super::pool::clamp_after_pool(&mut model)?;
    super::stem::swap_in(&mut model)?;
    super::direct::swap_in(&mut model)?;
    let mut model = model.into_optimized()?;
    super::pool::swap_in(&mut model)?;
    model.into_compact()
}

impl Classifier {
    /// Loads `path`: an `.onnx` file (or its `.json` card), or a model built
    /// into the binary (`builtin:NAME`, see [`BUILTIN_MODELS`]).
    pub fn load(path: &Path) -> Result<Classifier, ModelError> {
        let text = path.to_string_lossy();
        if let Some(name) = text.strip_prefix(BUILTIN_PREFIX) {
            let Some(m) = BUILTIN_MODELS.iter().find(|m| m.name == name) else {
                return Err(ModelError::UnknownBuiltin {
                    name: name.to_string(),
                    known: builtin_names(),
                });
            };
            let card = ModelCard::parse(m.card, &text)?;
            return Self::from_bytes(card, path.to_path_buf(), m.onnx);
        }
        let card_path = ModelCard::path_for(path);
        let card = ModelCard::load(&card_path)?;
        let onnx_path = card_path.with_file_name(&card.file);
        let bytes = std::fs::read(&onnx_path).map_err(|source| ModelError::Read {
            path: onnx_path.display().to_string(),
            source,
        })?;
        Self::from_bytes(card, onnx_path, &bytes)
    }

    /// Checks `bytes` against the card's hash, then prepares the model.
    fn from_bytes(card: ModelCard, path: PathBuf, bytes: &[u8]) -> Result<Classifier, ModelError> {
        let p = path.display().to_string();
        let actual = sha256_hex(bytes);
        if !actual.eq_ignore_ascii_case(card.sha256.trim()) {
            return Err(ModelError::HashMismatch {
                path: p,
                expected: card.sha256.clone(),
                actual,
            });
        }
        let onnx_err = |e: TractError| ModelError::Onnx {
            path: p.clone(),
            message: format!("{e:#}"),
        };
        let (w, h) = (card.input.width as usize, card.input.height as usize);
        let model = tract_onnx::onnx()
            .model_for_read(&mut std::io::Cursor::new(bytes))
            .map_err(onnx_err)?;
        let batch = model.symbols.sym("N");
        let shape = ShapeFact::from(&[
            TDim::from(batch.clone()),
            TDim::from(3),
            TDim::from(h as i64),
            TDim::from(w as i64),
        ]);
        let model = model
            .with_input_fact(0, f32::fact(shape).into())
            .and_then(|m| m.into_typed())
            .and_then(|m| m.into_decluttered())
            .map_err(onnx_err)?;
        let classifier = Classifier {
            card,
            path,
            sha256: actual,
            model,
            batch,
            plans: Default::default(),
        };
        // Fail on load, not on the first frame, if the model cannot run.
        classifier.plan(1).map_err(|e| ModelError::Onnx {
            path: p.clone(),
            message: e.to_string(),
        })?;
        Ok(classifier)
    }

    fn plan(&self, n: usize) -> Result<Plan, ModelError> {
        let mut plans = self.plans.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = plans.get(&n) {
            return Ok(p.clone());
        }
        let subs = std::collections::HashMap::from([(self.batch.clone(), TDim::from(n as i64))]);
        let plan = self
            .model
            .set_symbols(&subs)
            .and_then(optimise)
            .and_then(|m| m.into_runnable())
            .map_err(|e| ModelError::Inference(format!("preparing batch of {n}: {e:#}")))?;
        if plans.len() >= MAX_PLANS {
            plans.clear();
        }
        plans.insert(n, plan.clone());
        Ok(plan)
    }

    pub fn name(&self) -> &str {
        &self.card.name
    }

    pub fn threshold(&self) -> f64 {
        self.card.threshold
    }

    /// Scores a batch of already-normalised crops laid out back to back.
    pub fn score_tensor(&self, data: Vec<f32>, n: usize) -> Result<Vec<f32>, ModelError> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let (w, h) = (
            self.card.input.width as usize,
            self.card.input.height as usize,
        );
        let input = tract_ndarray::Array4::from_shape_vec((n, 3, h, w), data)
            .map_err(|e| ModelError::Inference(e.to_string()))?;
        let out = self
            .plan(n)?
            .run(tvec!(Tensor::from(input).into()))
            .map_err(|e| ModelError::Inference(format!("{e:#}")))?;
        let view = out[0]
            .to_plain_array_view::<f32>()
            .map_err(|e| ModelError::Inference(format!("{e:#}")))?;
        let scores: Vec<f32> = view.iter().copied().collect();
        if scores.len() != n {
            return Err(ModelError::Inference(format!(
                "model gave {} scores for {n} crops",
                scores.len()
            )));
        }
        Ok(scores)
    }

    /// Scores every zone of one decoded frame (see [`Self::score_zones_timed`]).
    pub fn score_zones<'a>(
        &self,
        frame: &RgbImage,
        zones: impl ExactSizeIterator<Item = &'a ZonePolygon>,
    ) -> Result<Vec<f32>, ModelError> {
        self.score_zones_timed(frame, zones, usize::MAX)
            .map(|s| s.zones)
    }

    /// Crops every tile of every zone (a long zone is cut into near-square
    /// tiles, see [`ZonePolygon::tiles`]), runs the model on chunks of at
    /// most `chunk` crops, and scores each zone as its highest tile: one
    /// car anywhere in a lane obstructs it.
    pub fn score_zones_timed<'a>(
        &self,
        frame: &RgbImage,
        zones: impl ExactSizeIterator<Item = &'a ZonePolygon>,
        chunk: usize,
    ) -> Result<FrameScores, ModelError> {
        let zones: Vec<(u64, &ZonePolygon)> = zones.map(|z| (0, z)).collect();
        self.score_zones_reusing(frame, &zones, chunk, None)
    }

    /// [`Self::score_zones_timed`], keeping the score of a tile whose crop
    /// has not changed since it was last scored (see [`super::reuse`]):
    /// `zones` are (cache key, polygon), `reuse` the camera's cache, the
    /// frame's capture time and the rule.
    pub fn score_zones_reusing(
        &self,
        frame: &RgbImage,
        zones: &[(u64, &ZonePolygon)],
        chunk: usize,
        mut reuse: Option<(&mut ScoreCache, Millis, ReuseRule)>,
    ) -> Result<FrameScores, ModelError> {
        let started = std::time::Instant::now();
        let (fw, fh) = frame.dimensions();
        let len = crop::crop_len(&self.card.input);
        let mut per_zone = Vec::with_capacity(zones.len());
        // Every tile's score, known (reused) or to come from the model.
        let mut known: Vec<Option<f32>> = Vec::new();
        // Where each tile to run came from: (zone key, tile, tiles in zone).
        let mut pending = Vec::new();
        // One input per crop to run: a chunk of one goes to the model as
        // it is, not copied out of a frame-sized buffer that grows.
        let mut inputs: Vec<Vec<f32>> = Vec::new();
        let unit = crop::byte_units(&self.card.input);
        for (key, zone) in zones {
            let tiles = zone.tiles(fw, fh);
            per_zone.push(tiles.len());
            let count = tiles.len();
            for (t, tile) in tiles.into_iter().enumerate() {
                let c = crop::tile_crop(frame, zone, tile, &self.card.input);
                let sig = reuse.as_ref().map(|_| Signature::of(&c));
                let kept = reuse
                    .as_ref()
                    .zip(sig.as_ref())
                    .and_then(|((cache, at, rule), sig)| {
                        cache.lookup(*key, t, sig, unit, *at, rule)
                    });
                if kept.is_none() {
                    let mut input = vec![0.0; len];
                    crop::normalise_into(&c, &self.card.input, &mut input);
                    inputs.push(input);
                    pending.push((*key, t, count, sig));
                }
                known.push(kept);
            }
        }
        let cropped = std::time::Instant::now();
        let n = inputs.len();
        let chunk = chunk.clamp(1, n.max(1));
        let mut flat = Vec::with_capacity(n);
        for part in inputs.chunks_mut(chunk) {
            let batch = match part {
                [one] => std::mem::take(one),
                _ => part.concat(),
            };
            flat.extend(self.score_tensor(batch, part.len())?);
        }
        if let Some((cache, at, _)) = reuse.as_mut() {
            for ((key, t, count, sig), score) in pending.into_iter().zip(&flat) {
                if let Some(sig) = sig {
                    cache.keep(key, t, count, sig, *score, *at);
                }
            }
            let keys: Vec<u64> = zones.iter().map(|(k, _)| *k).collect();
            cache.retain(&keys);
        }
        let reused = known.iter().filter(|k| k.is_some()).count();
        let mut fresh = flat.into_iter();
        let all: Vec<f32> = known
            .into_iter()
            .map(|k| k.or_else(|| fresh.next()).unwrap_or(0.0))
            .collect();
        let mut rest = all.as_slice();
        let mut out = FrameScores {
            zones: Vec::with_capacity(per_zone.len()),
            tiles: Vec::with_capacity(per_zone.len()),
            reused,
            times: StageTimes {
                crop: cropped - started,
                inference: cropped.elapsed(),
            },
        };
        for k in per_zone {
            let (tiles, tail) = rest.split_at(k);
            rest = tail;
            out.zones.push(tiles.iter().copied().fold(0.0, f32::max));
            out.tiles.push(tiles.to_vec());
        }
        Ok(out)
    }

    /// The model's input side in pixels (the smaller of width and height).
    pub fn input_px(&self) -> u32 {
        self.card.input.width.min(self.card.input.height)
    }

    /// Scores whole images (patches), each resized to the input size.
    pub fn score_images(&self, images: &[RgbImage]) -> Result<Vec<f32>, ModelError> {
        let whole = ZonePolygon::new(vec![[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
            .expect("unit square is valid");
        let len = crop::crop_len(&self.card.input);
        let mut data = vec![0.0f32; images.len() * len];
        for (img, out) in images.iter().zip(data.chunks_exact_mut(len)) {
            let c = crop::zone_crop(img, &whole, &self.card.input);
            crop::normalise_into(&c, &self.card.input, out);
        }
        self.score_tensor(data, images.len())
    }
}

/// A frame's zones scored: each zone's score (its highest tile) and
/// every tile's, in [`ZonePolygon::tiles`] order.
#[derive(Debug, Clone, Default)]
pub struct FrameScores {
    pub zones: Vec<f32>,
    pub tiles: Vec<Vec<f32>>,
    /// Tiles whose kept score was reused instead of running the model.
    pub reused: usize,
    pub times: StageTimes,
}

/// Where a frame's scoring time went.
#[derive(Debug, Clone, Copy, Default)]
pub struct StageTimes {
    pub crop: std::time::Duration,
    pub inference: std::time::Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The built-in model is the shipped file, and its card's hash holds.
    #[test]
    fn builtin_model_is_the_shipped_file() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        for m in BUILTIN_MODELS {
            let file = std::fs::read(root.join(format!("models/{}.onnx", m.name))).unwrap();
            assert_eq!(sha256_hex(&file), sha256_hex(m.onnx), "{}", m.name);
            let c = Classifier::load(Path::new(&format!("{BUILTIN_PREFIX}{}", m.name))).unwrap();
            assert_eq!(c.sha256, sha256_hex(&file));
        }
    }
}
