//! Vision: decode a frame once, cut every zone out of it, score the crops.
//!
//! - [`card`]: the model card (`models/*.json`) — preprocessing comes from it.
//! - [`decode`]: JPEG bytes → RGB image, refusing corrupt or truncated files.
//! - [`crop`]: zone polygon → bounding-box crop → resize → normalised tensor.
//! - [`model`]: the ONNX classifier on tract, all zones of a frame in one batch.
//! - [`pool`]: a 2×2 max pool tract runs slowly, swapped into its plans.
//! - [`stem`]: the first convolution (three input channels), run directly.
//! - [`direct`]: stride-1 convolutions run directly where AVX-512 pays;
//!   `conv` holds what it shares with [`stem`].
//! - [`reuse`]: a tile's score kept while its crop does not change.
//! - [`eval`]: `firelane classify` — scores of image files and accuracy on
//!   labelled folders.

pub mod card;
mod conv;
#[cfg(test)]
mod conv_tests;
pub mod crop;
pub mod decode;
pub mod direct;
pub mod eval;
pub mod model;
pub mod pool;
pub mod reuse;
pub mod stem;

pub use card::ModelCard;
pub use decode::{DecodeError, decode_jpeg};
pub use model::{Classifier, FrameScores, ModelError};
