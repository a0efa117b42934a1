//! firelane keeps fire lanes clear.
//!
//! # Layout
//! The modules follow the data as it flows through the daemon; each imports
//! only modules listed before it.
//!
//! - [`base`]: leaf types: event time, digests, derived ids, zone geometry
//!   and tiles, input types (`Frame`, `SensorReading`), stored enums.
//! - [`config`]: the TOML file (`raw`), its validation per section, the
//!   resolved typed [`config::Config`]; schedules, sites, comment-keeping edits.
//! - [`vision`]: JPEG decode, zone and tile crops, the ONNX obstruction
//!   classifier (tract) driven by its model card, `classify --eval`.
//! - [`tracking`]: pure decisions on event time: the per-zone state
//!   machine, sensor fusion, and the zone core ([`tracking::zone::decide`])
//!   that turns an observation into the next state plus effects.
//! - [`store`]: SQL (SQLite or PostgreSQL via sqlx): violations, evidence
//!   records, zone and sensor state, outbox, tokens, reviews, audit rows;
//!   one transaction type for the pipeline's writes.
//! - [`evidence`]: content-addressed frames, annotated copies and
//!   close-ups, signed bundles, the site key.
//! - [`audit`]: the hash-chained log of evidence access and reviews.
//! - [`recording`]: the rolling window of recent frames and readings.
//! - [`ingest`]: MQTT in: the client, the embedded broker, payload parsing,
//!   latest-frame slots.
//! - [`alerts`]: violation messages, the outbox's routing per site and its
//!   dispatcher (MQTT, webhooks, email), Home Assistant discovery.
//! - [`pipeline`]: scoring, then decide → commit (one transaction) for every
//!   zone a frame or reading touches; resume and reconfiguration.
//! - [`reload`]: the live, versioned configuration (API edits, file edits).
//! - [`api`]: the HTTP API and the officers' page and zone editor.
//! - [`runtime`]: the one assembly of the parts, the engine (parallel
//!   scoring, one tracker), and the daemon (`firelane run`).
//! - [`replay`], [`whatif`], [`bench`]: scenario folders and their report,
//!   a scenario under two configs, the pipeline under load.
//! - [`cli`]: the command line, one file per command.

pub mod alerts;
pub mod api;
pub mod audit;
pub mod base;
pub mod bench;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod demo;
pub mod evidence;
pub mod ingest;
pub mod pipeline;
pub mod recording;
pub mod reload;
pub mod replay;
pub mod runtime;
pub mod store;
pub mod tracking;
pub mod vision;
pub mod whatif;
