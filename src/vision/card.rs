//! The model card: what the classifier expects and how good it is.

use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct ModelCard {
    pub name: String,
    /// ONNX file name, beside the card.
    pub file: String,
    /// SHA-256 of the ONNX file; checked on load.
    pub sha256: String,
    pub input: CardInput,
    pub output: CardOutput,
    /// Decision threshold on the output probability.
    pub threshold: f64,
    #[serde(default)]
    pub metrics: serde_json::Value,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CardInput {
    pub name: String,
    pub layout: String,
    pub channel_order: String,
    pub width: u32,
    pub height: u32,
    pub resize: String,
    pub scale: f32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    pub mask_outside_polygon: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CardOutput {
    pub name: String,
    pub kind: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CardError {
    #[error("model card {path}: cannot read: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("model card {path}: {message}")]
    Invalid { path: String, message: String },
}

impl ModelCard {
    /// The card path for a model: `x.onnx` → `x.json`.
    pub fn path_for(model: &Path) -> PathBuf {
        model.with_extension("json")
    }

    pub fn load(path: &Path) -> Result<ModelCard, CardError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| CardError::Read {
            path: p.clone(),
            source,
        })?;
        Self::parse(&text, &p)
    }

    /// Parses and checks a card's JSON; `p` names it in errors.
    pub fn parse(text: &str, p: &str) -> Result<ModelCard, CardError> {
        let p = p.to_string();
        let card: ModelCard = serde_json::from_str(text).map_err(|e| CardError::Invalid {
            path: p.clone(),
            message: e.to_string(),
        })?;
        let bad = |message: String| {
            Err(CardError::Invalid {
                path: p.clone(),
                message,
            })
        };
        if card.input.layout != "NCHW" {
            return bad(format!(
                "input.layout `{}` is not supported (only NCHW)",
                card.input.layout
            ));
        }
        if card.input.channel_order != "RGB" && card.input.channel_order != "BGR" {
            return bad(format!(
                "input.channel_order `{}` must be RGB or BGR",
                card.input.channel_order
            ));
        }
        if card.input.resize != "bilinear" {
            return bad(format!(
                "input.resize `{}` is not supported (only bilinear)",
                card.input.resize
            ));
        }
        if card.input.width == 0
            || card.input.height == 0
            || card.input.width > 1024
            || card.input.height > 1024
        {
            return bad("input.width/height must be within 1..1024".into());
        }
        if card.input.std.iter().any(|s| *s <= 0.0) {
            return bad("input.std must be positive".into());
        }
        if card.output.kind != "probability" {
            return bad(format!(
                "output.kind `{}` is not supported (only probability)",
                card.output.kind
            ));
        }
        if !(card.threshold > 0.0 && card.threshold < 1.0) {
            return bad(format!(
                "threshold {} must lie strictly between 0 and 1",
                card.threshold
            ));
        }
        Ok(card)
    }
}
