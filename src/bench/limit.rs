//! The physical limit of a frame (`bench/limit.py`), beside the runs: the
//! same frames decoded only, at the scale the zones need, plus the model on
//! one frame's crops at the best rate measured on this core (onnxruntime,
//! one thread). What any pipeline that scores every crop can reach here.

use super::peer::{peer_model, python_json};
use super::{BenchOptions, BenchRow};

#[derive(Debug, Clone)]
pub struct Limit {
    /// The DCT scale decoded at (1, 2, 4 or 8), the careful peer's.
    pub scale: u32,
    pub decode_ms: f64,
    /// One frame's crops in one onnxruntime call, best of 15.
    pub model_ms: f64,
    pub zones: u64,
}

impl Limit {
    pub fn ms(&self) -> f64 {
        self.decode_ms + self.model_ms
    }

    pub fn frames_per_s(&self) -> f64 {
        1e3 / self.ms()
    }
}

/// Runs `bench/limit.py` on the prepared frames, zones and model.
pub fn run_limit(opts: &BenchOptions) -> anyhow::Result<Limit> {
    let mut cmd = std::process::Command::new(&opts.python);
    cmd.arg("bench/limit.py")
        .arg("--frames")
        .arg(opts.work_dir.join("frames"))
        .arg("--zones")
        .arg(opts.work_dir.join("zones.json"))
        .arg("--model")
        .arg(peer_model(opts)?)
        // numpy's BLAS is not used for the limit, but keep it from
        // starting threads on the other core while decode is timed.
        .env("OPENBLAS_NUM_THREADS", "1");
    let v = python_json(cmd, "bench/limit.py")?;
    let f = |k: &str| v[k].as_f64().unwrap_or(0.0);
    Ok(Limit {
        scale: f("scale") as u32,
        decode_ms: f("decode_ms"),
        model_ms: f("model_ms"),
        zones: f("zones") as u64,
    })
}

/// The limit's parts, each firelane run's share of it, and what the limit
/// is against each peer: the ceiling of a firelane ÷ peer ratio when every
/// crop is scored.
pub fn print_limit(limit: &Limit, rows: &[BenchRow]) {
    println!(
        "physical limit, 1 thread: decode only at 1/{} {:.2} ms + the model on {} crops \
         (one onnxruntime call, best of 15) {:.2} ms = {:.2} ms, {:.1} frames/s",
        limit.scale,
        limit.decode_ms,
        limit.zones,
        limit.model_ms,
        limit.ms(),
        limit.frames_per_s()
    );
    let (peers, ours): (Vec<&BenchRow>, Vec<&BenchRow>) =
        rows.iter().partition(|r| r.run.starts_with("Python"));
    for r in ours {
        println!(
            "{}: {:.0} % of the physical limit{}",
            r.run,
            100.0 * r.frames_per_cpu_s / limit.frames_per_s(),
            if r.crops_reused > 0 {
                " (crops reused: the limit scores every crop)"
            } else {
                ""
            }
        );
    }
    for p in peers.iter().filter(|p| p.frames_per_cpu_s > 0.0) {
        println!(
            "the physical limit is {:.2}x the frames per CPU-second of {}",
            limit.frames_per_s() / p.frames_per_cpu_s,
            p.run
        );
    }
}
