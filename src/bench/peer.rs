//! The Python peer (`bench/peer.py`) on the same frames and zones, and
//! the Markdown table of every run.

use anyhow::{Context, bail};

use super::*;

/// Runs `bench/peer.py` on the prepared frames: `draft` lets Pillow decode
/// at the DCT scale the zones need (the careful peer), else full size.
pub fn run_peer(opts: &BenchOptions, draft: bool) -> anyhow::Result<BenchRow> {
    let repeat = (opts.frames / 24).max(1).to_string();
    let model = peer_model(opts)?;
    let mut cmd = std::process::Command::new(&opts.python);
    cmd.arg("bench/peer.py");
    if !draft {
        cmd.arg("--no-draft");
    }
    cmd.arg("--frames")
        .arg(opts.work_dir.join("frames"))
        .arg("--zones")
        .arg(opts.work_dir.join("zones.json"))
        .arg("--model")
        .arg(&model)
        .arg("--repeat")
        .arg(&repeat);
    let v = python_json(cmd, "bench/peer.py")?;
    let f = |k: &str| v[k].as_f64().unwrap_or(0.0);
    Ok(BenchRow {
        run: format!(
            "Python peer (Pillow{}, NumPy, onnxruntime {}), 1 thread",
            if draft { " draft()" } else { "" },
            v["onnxruntime"].as_str().unwrap_or("?")
        ),
        frames: f("frames") as u64,
        crops: f("crops") as u64,
        tiles: f("crops") as u64,
        crops_reused: 0,
        seconds: f("seconds"),
        frames_per_s: f("frames_per_s"),
        crops_per_s: f("crops_per_s"),
        frames_per_cpu_s: f("frames_per_s"),
        p50_ms: None,
        p99_ms: None,
        decode_ms: f("decode_ms"),
        crop_ms: f("crop_ms"),
        inference_ms: f("inference_ms"),
        tracking_ms: 0.0,
        store_ms: 0.0,
        peak_rss_mb: 0.0,
        dropped: 0,
    })
}

/// Runs a Python script of `bench/` and reads the JSON object on its last
/// line of output.
pub(super) fn python_json(
    mut cmd: std::process::Command,
    script: &str,
) -> anyhow::Result<serde_json::Value> {
    let out = cmd
        .output()
        .with_context(|| format!("running {:?} {script}", cmd.get_program()))?;
    if !out.status.success() {
        bail!("{script} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    serde_json::from_slice(
        out.stdout
            .split(|&b| b == b'\n')
            .rfind(|l| !l.is_empty())
            .unwrap_or_default(),
    )
    .with_context(|| format!("{script} output"))
}

/// The model as a file Python can open: a built-in model (`builtin:NAME`)
/// is written with its card into the work folder.
pub(super) fn peer_model(opts: &BenchOptions) -> anyhow::Result<std::path::PathBuf> {
    use crate::vision::model::{BUILTIN_MODELS, BUILTIN_PREFIX};
    let text = opts.model.to_string_lossy();
    let Some(name) = text.strip_prefix(BUILTIN_PREFIX) else {
        return Ok(opts.model.clone());
    };
    let m = BUILTIN_MODELS
        .iter()
        .find(|m| m.name == name)
        .with_context(|| format!("no built-in model {name}"))?;
    let onnx = opts.work_dir.join(format!("{name}.onnx"));
    std::fs::write(&onnx, m.onnx).with_context(|| format!("writing {}", onnx.display()))?;
    let card = onnx.with_extension("json");
    std::fs::write(&card, m.card).with_context(|| format!("writing {}", card.display()))?;
    Ok(onnx)
}

pub fn print_table(opts: &BenchOptions, rows: &[BenchRow]) {
    println!(
        "frames {}x{}, {} zones each, {} cameras, offered {}, {} frames",
        opts.width,
        opts.height,
        opts.zones,
        opts.cameras,
        if opts.fps > 0.0 {
            format!("{} frames/s", opts.fps)
        } else {
            "as fast as it goes".into()
        },
        opts.frames
    );
    // Which fast paths this build and CPU take: figures differ without them.
    let on = |yes: bool| if yes { "on" } else { "off" };
    println!(
        "libjpeg-turbo SIMD (scaled decodes) {}; direct convolutions (AVX-512) {}",
        on(crate::vision::decode::scaled_decode_simd()),
        on(crate::vision::direct::available())
    );
    println!(
        "| run | frames/s | crops/s | frames/CPU-s | p50 ms | p99 ms | decode ms | crop ms | inference ms | tracking ms | store ms | peak RSS MB | dropped | crops reused |"
    );
    println!(
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    let ms = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.1}"));
    for r in rows {
        println!(
            "| {} | {:.1} | {:.0} | {:.1} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} | {:.0} % |",
            r.run,
            r.frames_per_s,
            r.crops_per_s,
            r.frames_per_cpu_s,
            ms(r.p50_ms),
            ms(r.p99_ms),
            r.decode_ms,
            r.crop_ms,
            r.inference_ms,
            r.tracking_ms,
            r.store_ms,
            if r.peak_rss_mb > 0.0 {
                format!("{:.0}", r.peak_rss_mb)
            } else {
                "-".into()
            },
            r.dropped,
            // Reuse is per tile: a long zone's tiles are kept one by one.
            if r.tiles > 0 {
                100.0 * r.crops_reused as f64 / r.tiles as f64
            } else {
                0.0
            }
        );
    }
    for peer in rows.iter().filter(|r| r.run.starts_with("Python")) {
        for r in rows.iter().filter(|r| !r.run.starts_with("Python")) {
            if peer.frames_per_cpu_s > 0.0 {
                println!(
                    "{}: {:.2}x the frames per CPU-second of {}",
                    r.run,
                    r.frames_per_cpu_s / peer.frames_per_cpu_s,
                    peer.run
                );
            }
        }
    }
}
