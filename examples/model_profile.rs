//! Where tract spends a crop's time: each node of a model's optimised plan,
//! timed over many runs at a fixed batch.
//!
//! `cargo run --release --example model_profile -- [MODEL.onnx] [BATCH] [RUNS]`
//! with `FIRELANE=1` for the plan the daemon runs (`vision::model::optimise`:
//! its pools and stem swapped in). Input 64×64, as the shipped models.
use std::collections::BTreeMap;
use std::time::Instant;
use tract_onnx::prelude::*;

fn main() -> TractResult<()> {
    let args: Vec<String> = std::env::args().collect();
    let path = args
        .get(1)
        .cloned()
        .unwrap_or("models/obstruction-v2.onnx".into());
    let n: usize = args.get(2).map(|s| s.parse().unwrap()).unwrap_or(1);
    let iters: usize = args.get(3).map(|s| s.parse().unwrap()).unwrap_or(200);
    let model = tract_onnx::onnx()
        .model_for_path(&path)?
        .with_input_fact(0, f32::fact([n, 3, 64, 64]).into())?
        .into_typed()?
        .into_decluttered()?;
    let model = if std::env::var("FIRELANE").is_ok() {
        firelane::vision::model::optimise(model)?
    } else {
        model.into_optimized()?
    };
    for node in model.nodes() {
        println!("{:>3} {:<40} {:?}", node.id, node.name, node.op);
    }
    let plan = model.into_runnable()?;
    let input: Tensor =
        tract_ndarray::Array4::<f32>::from_shape_fn((n, 3, 64, 64), |(a, b, c, d)| {
            ((a * 7 + b * 13 + c * 3 + d) % 17) as f32 / 17.0
        })
        .into();
    let mut state = plan.spawn()?;
    let mut per: BTreeMap<usize, (String, f64)> = BTreeMap::new();
    let t0 = Instant::now();
    for _ in 0..iters {
        state.run_plan_with_eval(
            tvec!(input.clone().into()),
            |session, op_state, node, inputs| {
                let t = Instant::now();
                let r = tract_onnx::tract_core::plan::eval(session, op_state, node, inputs);
                let e = per
                    .entry(node.id)
                    .or_insert((format!("{} {}", node.name, node.op.name()), 0.0));
                e.1 += t.elapsed().as_secs_f64();
                r
            },
        )?;
    }
    let total = t0.elapsed().as_secs_f64();
    println!(
        "total per run {:.3} ms, per crop {:.3} ms",
        total * 1e3 / iters as f64,
        total * 1e3 / (iters * n) as f64
    );
    for (id, (name, t)) in per {
        println!(
            "{id:>3} {:>8.3} ms/crop  {name}",
            t * 1e3 / (iters * n) as f64
        );
    }
    Ok(())
}
