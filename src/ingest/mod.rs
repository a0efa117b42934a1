//! Ingest: what arrives over MQTT, checked and turned into pipeline input.
//!
//! - [`payload`]: frame and sensor payloads → [`Inbound`], with a reason for
//!   every refusal (pure, no I/O).
//! - [`clocks`]: each source's capture times against arrival; a wrong
//!   clock is refused or re-stamped, and reported.
//! - [`mqtt`]: the client — subscriptions, reconnects with backoff,
//!   availability with a last will, and the bounded queue to the pipeline;
//!   [`receipt`]: a reading is acknowledged to the broker once recorded.
//! - [`broker`]: the embedded MQTT broker for sites with none of their own,
//!   behind the [`gate`] (logins, per-user topic rights, TLS).
//! - [`snapshot`]: cameras firelane pulls over HTTP(S), logging in with
//!   [`login`] (Basic, Digest); their frames join the MQTT ones.

pub mod broker;
pub mod clocks;
pub mod gate;
pub mod login;
pub mod mqtt;
pub mod payload;
pub mod receipt;
pub mod slots;
pub mod snapshot;

pub use payload::{Inbound, PayloadError, TopicRouter};
pub use slots::FrameSlots;
