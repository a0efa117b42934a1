//! `GET /metrics`: the daemon's counters in the Prometheus text format, so
//! an operator's monitoring sees throughput, overload drops and errors.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{ApiError, ApiState};
use crate::api::auth::Caller;
use crate::ingest::FrameSlots;
use crate::ingest::clocks::{ClockReport, ClockStatus};
use crate::ingest::mqtt::IngestMetrics;
use crate::ingest::snapshot::PullReport;
use crate::pipeline::Metrics;

/// Where the counters live; set once the engine and ingest run.
pub struct MetricsSources {
    pub pipeline: Arc<Metrics>,
    pub ingest: Arc<IngestMetrics>,
    pub frames: Arc<FrameSlots>,
    pub recording_dropped: Option<Arc<AtomicU64>>,
    /// Cluster mode's counters.
    pub cluster: Option<Arc<crate::cluster::ClusterCounters>>,
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
    );
}

/// The exposition text.
pub fn render(m: &MetricsSources) -> String {
    let p = m.pipeline.snapshot();
    let mut out = String::new();
    counter(
        &mut out,
        "firelane_frames_total",
        "Frames scored.",
        p.frames,
    );
    counter(
        &mut out,
        "firelane_zone_crops_total",
        "Zone crops classified.",
        p.crops,
    );
    counter(
        &mut out,
        "firelane_sensor_readings_total",
        "Sensor readings applied.",
        p.sensor_readings,
    );
    counter(
        &mut out,
        "firelane_inputs_rejected_total",
        "Messages or frames refused (bad payload, unknown camera, corrupt JPEG, time running backwards).",
        p.rejected + m.ingest.rejected.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "firelane_frames_superseded_total",
        "Frames replaced by a newer frame of the same camera before scoring (overload policy).",
        m.frames.dropped(),
    );
    counter(
        &mut out,
        "firelane_sensor_readings_dropped_total",
        "Sensor readings dropped because the queue was full.",
        m.ingest.dropped_queue_full.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "firelane_recording_dropped_total",
        "Frames and readings the rolling recording could not keep up with.",
        m.recording_dropped
            .as_ref()
            .map_or(0, |d| d.load(Ordering::Relaxed)),
    );
    counter(
        &mut out,
        "firelane_mqtt_messages_total",
        "MQTT messages received.",
        m.ingest.messages.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "firelane_broker_connections_refused_total",
        "Connections the embedded broker refused or closed: bad login, a topic outside the user's rights, a malformed packet.",
        m.ingest.broker_refused.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "firelane_mqtt_reconnects_total",
        "MQTT connections lost.",
        m.ingest.reconnects.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "firelane_violations_opened_total",
        "Violations confirmed.",
        p.violations_opened,
    );
    counter(
        &mut out,
        "firelane_violations_ended_total",
        "Violations ended.",
        p.violations_ended,
    );
    counter(
        &mut out,
        "firelane_record_errors_total",
        "Database or evidence writes that failed.",
        p.record_errors,
    );
    counter(
        &mut out,
        "firelane_scoring_panics_total",
        "Frames whose scoring panicked (a bug); the camera went on.",
        p.scoring_panics,
    );
    let _ = writeln!(
        out,
        "# HELP firelane_mqtt_connected 1 while connected to the broker.\n# TYPE firelane_mqtt_connected gauge\nfirelane_mqtt_connected {}",
        u8::from(m.ingest.connected.load(Ordering::Relaxed))
    );
    let _ = writeln!(
        out,
        "# HELP firelane_stage_seconds_total Time spent per pipeline stage.\n# TYPE firelane_stage_seconds_total counter"
    );
    clocks(&mut out, &m.ingest.clocks);
    pulls(&mut out, &m.ingest.pulls);
    if let Some(c) = &m.cluster {
        for (name, kind, help, v) in [
            (
                "firelane_cluster_cameras_held",
                "gauge",
                "Cameras this instance holds and judges.",
                &c.held,
            ),
            (
                "firelane_cluster_members_live",
                "gauge",
                "Instances with a heartbeat within lease_s.",
                &c.live_members,
            ),
            (
                "firelane_cluster_cameras_taken_total",
                "counter",
                "Camera leases taken by this instance (start, handover, takeover).",
                &c.taken,
            ),
            (
                "firelane_cluster_heartbeat_failures_total",
                "counter",
                "Heartbeats that failed or timed out.",
                &c.heartbeat_failures,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP firelane_cluster_unwatched_seconds_total Time the cameras this instance took or resumed had been judged by no instance (GET /api/cluster lists the spans).\n# TYPE firelane_cluster_unwatched_seconds_total counter\nfirelane_cluster_unwatched_seconds_total {:.3}",
            c.unwatched_ms.load(Ordering::Relaxed) as f64 / 1000.0
        );
    }
    for (stage, ns) in [
        ("decode", p.decode_ns),
        ("crop", p.crop_ns),
        ("inference", p.inference_ns),
        ("tracking", p.tracking_ns),
        ("store", p.store_ns),
    ] {
        let _ = writeln!(
            out,
            "firelane_stage_seconds_total{{stage=\"{stage}\"}} {:.6}",
            ns as f64 / 1e9
        );
    }
    out
}

/// A metric family drawn from one row per source: name, type, help, value.
type Family<R> = (&'static str, &'static str, &'static str, fn(&R) -> f64);

/// Writes `families`, each with a line per row (its labels already
/// formatted, see [`label`]).
fn write_families<R>(out: &mut String, rows: &[(String, R)], families: &[Family<R>]) {
    for (name, kind, help, value) in families {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, r) in rows {
            let _ = writeln!(out, "{name}{{{labels}}} {}", value(r));
        }
    }
}

/// A label value, escaped for the exposition format.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Each source's clock: its offset from arrival, whether it is off, and
/// the inputs refused or re-stamped for it.
fn clocks(out: &mut String, book: &crate::ingest::clocks::ClockBook) {
    let rows: Vec<(String, ClockReport)> = book
        .all()
        .into_iter()
        .map(|(k, id, r)| (format!("kind=\"{}\",id=\"{}\"", k.as_str(), label(&id)), r))
        .collect();
    write_families(
        out,
        &rows,
        &[
            (
                "firelane_source_clock_offset_seconds",
                "gauge",
                "Capture time minus arrival time of the source's latest input.",
                |r| r.offset_s,
            ),
            (
                "firelane_source_clock_off",
                "gauge",
                "1 while the source's clock is outside [ingest] max_future_skew_s / max_past_skew_s.",
                |r| f64::from(u8::from(r.status != ClockStatus::Ok)),
            ),
            (
                "firelane_source_clock_refused_total",
                "counter",
                "Inputs refused because the source's clock was off.",
                |r| r.refused as f64,
            ),
            (
                "firelane_source_clock_restamped_total",
                "counter",
                "Inputs stamped with their arrival time because the source's clock was off.",
                |r| r.restamped as f64,
            ),
        ],
    );
}

/// Each pulled camera: frames pulled, failures, and whether it is failing.
fn pulls(out: &mut String, book: &crate::ingest::snapshot::PullBook) {
    let rows: Vec<(String, PullReport)> = book
        .all()
        .into_iter()
        .map(|(id, r)| (format!("camera=\"{}\"", label(&id)), r))
        .collect();
    write_families(
        out,
        &rows,
        &[
            (
                "firelane_snapshot_pulls_total",
                "counter",
                "Snapshots pulled from the camera and handed to the pipeline.",
                |r| r.pulls as f64,
            ),
            (
                "firelane_snapshot_failures_total",
                "counter",
                "Snapshot pulls that failed (timeout, HTTP error, login, not a JPEG, clock).",
                |r| r.failures as f64,
            ),
            (
                "firelane_snapshot_failing",
                "gauge",
                "Failed pulls in a row; 0 while the camera is healthy.",
                |r| r.failing_for as f64,
            ),
            (
                "firelane_snapshot_latency_seconds",
                "gauge",
                "Duration of the camera's latest pull.",
                |r| r.last_latency_ms.unwrap_or(0) as f64 / 1000.0,
            ),
        ],
    );
}

pub async fn metrics(State(state): State<ApiState>, caller: Caller) -> Result<Response, ApiError> {
    caller.require("getMetrics")?;
    let Some(sources) = state.metrics.get() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the pipeline is still starting",
        ));
    };
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        render(sources),
    )
        .into_response())
}
