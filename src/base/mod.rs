//! Leaf types every layer shares and that import nothing of firelane:
//! event time, digests, derived ids, zone geometry, the input types and
//! the enums stored as text.

pub mod digest;
pub mod durable;
pub mod errors;
pub mod geometry;
pub mod ids;
pub mod input;
pub mod kinds;
pub mod redact;
pub mod tiles;
pub mod time;
pub mod topics;
