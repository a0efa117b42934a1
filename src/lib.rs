//! firelane keeps fire lanes clear.
//!
//! # Layout
//! The modules follow the data as it flows through the daemon:
//!
//! - [`config`]: the TOML configuration, its defaults and its validation
//!   (file, zone and field named in every message); zone polygons and
//!   schedules; edits that keep comments; the live, versioned config.
//! - [`ingest`]: MQTT in — the client with reconnects and availability, the
//!   embedded broker, and parsing of frame and sensor payloads.
//! - [`vision`]: JPEG decode, per-zone crop/resize/normalise, the ONNX
//!   obstruction classifier (tract) driven by its model card.
//! - [`tracking`]: the pure per-zone state machine on event time (grace,
//!   hysteresis, sensor fusion). No I/O.
//! - [`store`]: violations and zone state in SQL (SQLite or PostgreSQL via
//!   sqlx), written on state changes only.
//! - [`evidence`]: content-addressed original and annotated frames.
//! - [`alerts`]: MQTT violation events and retained zone state.
//! - [`audit`]: the hash-chained log of evidence access and reviews.
//! - [`api`]: the HTTP API (tokens and roles, violations, evidence, bundles,
//!   reviews) and the officers' web page.
//! - [`pipeline`]: one frame or reading through decode → classify → track →
//!   store/evidence/alerts; shared by the daemon and the replay.
//! - [`engine`]: runs the pipeline on live input — parallel scoring
//!   workers, latest frame per camera, one tracker in order.
//! - [`daemon`]: `firelane run` — wires MQTT ingest to the engine.
//! - [`recording`]: the rolling window of recent frames and readings, and
//!   `firelane record`, which exports it as a scenario.
//! - [`replay`]: scenario folders (`FORMAT.md`), the replay report and scoring.
//! - [`whatif`]: `firelane whatif` — a scenario under two configs, compared.
//! - [`bench`]: `firelane bench` — the pipeline under load beside a peer.
//! - [`cli`]: the command line.

pub mod alerts;
pub mod api;
pub mod audit;
pub mod bench;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod engine;
pub mod evidence;
pub mod ingest;
pub mod pipeline;
pub mod recording;
pub mod replay;
pub mod store;
pub mod time;
pub mod tracking;
pub mod vision;
pub mod whatif;
