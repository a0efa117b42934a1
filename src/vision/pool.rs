//! A 2×2, stride-2 max pool for tract plans.
//!
//! tract 0.23 runs this pool (every classic CNN's downsampling step, three
//! times in the shipped model) one output at a time with bounds checks:
//! 0.18 of the 0.38 ms a crop takes, more than all the convolutions. This
//! op computes the same values (a max is exact) plane by plane over
//! contiguous rows, which the compiler vectorises, and [`swap_in`] puts it
//! in place of tract's where the pool has exactly that shape.
//! [`clamp_after_pool`] moves the activation before a pool to after it.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::cnn::{MaxPool, OptMaxPool, PoolSpec};
use tract_onnx::tract_core::ops::nn::DataFormat;

/// Max over each 2×2 block of an `[N, C, H, W]` f32 tensor, no padding;
/// an odd last row or column is dropped, as a valid pool does.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MaxPool2x2;

impl Op for MaxPool2x2 {
    fn name(&self) -> StaticName {
        "firelane.MaxPool2x2".into()
    }

    op_as_typed_op!();
}

impl EvalOp for MaxPool2x2 {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let &[n, c, h, w] = input.shape() else {
            bail!("MaxPool2x2 wants a rank-4 input, got {:?}", input.shape());
        };
        let (oh, ow) = (h / 2, w / 2);
        let view = input.try_as_plain_ram()?;
        let mut out = Tensor::zero::<f32>(&[n, c, oh, ow])?;
        {
            let mut dst = out.try_as_plain_ram_mut()?;
            pool_planes(view.as_slice::<f32>()?, dst.as_slice_mut::<f32>()?, h, w);
        }
        Ok(tvec!(out.into_tvalue()))
    }
}

impl TypedOp for MaxPool2x2 {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let s = &inputs[0].shape;
        ensure!(s.rank() == 4 && inputs[0].datum_type == f32::datum_type());
        let half = |d: &TDim| -> TractResult<TDim> { Ok(TDim::from((d.to_usize()? / 2) as i64)) };
        Ok(tvec!(f32::fact([
            s[0].clone(),
            s[1].clone(),
            half(&s[2])?,
            half(&s[3])?,
        ])))
    }

    as_op!();
}

/// Pools every `h`×`w` plane of `src` into `out` (planes back to back).
fn pool_planes(src: &[f32], out: &mut [f32], h: usize, w: usize) {
    let (oh, ow) = (h / 2, w / 2);
    if oh == 0 || ow == 0 {
        return;
    }
    for (plane, dst) in src.chunks_exact(h * w).zip(out.chunks_exact_mut(oh * ow)) {
        for (y, row_out) in dst.chunks_exact_mut(ow).enumerate() {
            let top = &plane[2 * y * w..2 * y * w + 2 * ow];
            let bottom = &plane[(2 * y + 1) * w..(2 * y + 1) * w + 2 * ow];
            for ((o, t), b) in row_out
                .iter_mut()
                .zip(top.chunks_exact(2))
                .zip(bottom.chunks_exact(2))
            {
                *o = t[0].max(t[1]).max(b[0].max(b[1]));
            }
        }
    }
}

/// Whether tract's pool is exactly ours: NCHW, f32, 2×2 kernel, stride 2,
/// no dilation, no padding, no index output, concrete spatial size.
fn is_plain_2x2(spec: &PoolSpec, with_index: bool, input: &TypedFact) -> bool {
    let Some(shape) = input.shape.as_concrete() else {
        return false;
    };
    if with_index
        || input.datum_type != f32::datum_type()
        || spec.data_format != DataFormat::NCHW
        || shape.len() != 4
        || spec.kernel_shape[..] != [2, 2]
        || spec.strides()[..] != [2, 2]
        || spec.dilations()[..] != [1, 1]
    {
        return false;
    }
    spec.computed_padding(&shape[2..])
        .iter()
        .zip(&shape[2..])
        .all(|(p, &d)| p.pad_before == 0 && p.pad_after == 0 && p.convoluted == d / 2)
}

/// Replaces each plain 2×2 max pool of `model` (declutter or optimised form)
/// with [`MaxPool2x2`]; returns how many were replaced.
pub fn swap_in(model: &mut TypedModel) -> TractResult<usize> {
    let mut swapped = 0;
    for id in model.eval_order()? {
        let node = model.node(id);
        let pool = if let Some(p) = node.op_as::<OptMaxPool>() {
            Some((&p.pool_spec, p.with_index_outputs.is_some()))
        } else {
            node.op_as::<MaxPool>()
                .map(|p| (&p.pool_spec, p.with_index_outputs.is_some()))
        };
        let plain = match pool {
            Some((spec, with_index)) => {
                is_plain_2x2(spec, with_index, model.outlet_fact(node.inputs[0])?)
            }
            None => false,
        };
        if plain {
            let inputs = node.inputs.clone();
            TypedModelPatch::replace_single_op(model, node, &inputs, MaxPool2x2)?.apply(model)?;
            swapped += 1;
        }
    }
    Ok(swapped)
}

/// Moves each max or min against a constant (ReLU, ReLU6) that feeds
/// only a plain 2×2 max pool to after the pool: both are monotone, so
/// pooling first gives the same values, clamped on a quarter of the
/// elements. For the decluttered model with its batch fixed, before it is
/// optimised; returns how many ops moved.
pub fn clamp_after_pool(model: &mut TypedModel) -> TractResult<usize> {
    let mut moved = 0;
    // One move per pass: a patch renumbers what follows it.
    while let Some(patch) = next_clamp_move(model)? {
        patch.apply(model)?;
        moved += 1;
    }
    Ok(moved)
}

fn next_clamp_move(model: &TypedModel) -> TractResult<Option<TypedModelPatch>> {
    for id in model.eval_order()? {
        let pool = model.node(id);
        let Some(p) = pool.op_as::<MaxPool>() else {
            continue;
        };
        let wire = pool.inputs[0];
        if !is_plain_2x2(
            &p.pool_spec,
            p.with_index_outputs.is_some(),
            model.outlet_fact(wire)?,
        ) || model.outlet_successors(wire).len() != 1
        {
            continue;
        }
        let act = model.node(wire.node);
        let Some(bin) = act.op_as::<TypedBinOp>() else {
            continue;
        };
        if !matches!(bin.0.name(), "Max" | "Min") || act.outputs.len() != 1 {
            continue;
        }
        let facts = model.node_input_facts(act.id)?;
        let (var, uniform) = match (&facts[0].uniform, &facts[1].uniform) {
            (None, Some(u)) => (0, u.clone()),
            (Some(u), None) => (1, u.clone()),
            _ => continue,
        };
        if uniform.datum_type() != f32::datum_type() {
            continue;
        }
        let mut patch = TypedModelPatch::default();
        let x = patch.tap_model(model, act.inputs[var])?;
        let pooled = patch.wire_node(format!("{}.first", pool.name), pool.op.clone(), &[x])?[0];
        let bound = (*uniform).clone().broadcast_into_rank(4)?;
        let bound = patch.add_const(format!("{}.after_pool.bound", act.name), bound)?;
        let inputs = if var == 0 {
            [pooled, bound]
        } else {
            [bound, pooled]
        };
        let out = patch.wire_node(format!("{}.after_pool", act.name), act.op.clone(), &inputs)?[0];
        patch.shunt_outside(model, id.into(), out)?;
        return Ok(Some(patch));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vision::conv_tests::{run, shipped_typed};

    /// The same values as tract's own pool, on odd and even sizes, at every
    /// batch size the pipeline uses.
    #[test]
    fn equals_tracts_pool() {
        for (n, c, h, w) in [(1, 3, 8, 8), (2, 5, 7, 9), (4, 32, 32, 32), (1, 1, 2, 2)] {
            let mut model = TypedModel::default();
            let x = model.add_source("x", f32::fact([n, c, h, w])).unwrap();
            let spec = PoolSpec::new(
                DataFormat::NCHW,
                tvec![2, 2],
                tract_onnx::tract_core::ops::cnn::PaddingSpec::Valid,
                None,
                Some(tvec![2, 2]),
                c,
                c,
            );
            let y = model
                .wire_node("pool", MaxPool::new(spec, None), &[x])
                .unwrap();
            model.select_output_outlets(&y).unwrap();
            let theirs = model.clone().into_optimized().unwrap();
            let mut ours = theirs.clone();
            assert_eq!(swap_in(&mut ours).unwrap(), 1);
            let data: Vec<f32> = (0..n * c * h * w)
                .map(|i| ((i * 7919) % 1013) as f32 - 500.0)
                .collect();
            let input = Tensor::from_shape(&[n, c, h, w], &data).unwrap();
            assert_eq!(run(ours, &input), run(theirs, &input), "{n}x{c}x{h}x{w}");
        }
    }

    /// The shipped model gives bit-identical scores with its activations
    /// moved after the pools and the pools swapped, every one of them.
    #[test]
    fn shipped_model_scores_unchanged() {
        let typed = shipped_typed();
        let theirs = typed.clone().into_optimized().unwrap();
        let mut ours = typed;
        // ReLU6 (a max and a min) and two ReLUs.
        assert_eq!(clamp_after_pool(&mut ours).unwrap(), 4);
        let mut ours = ours.into_optimized().unwrap();
        assert_eq!(swap_in(&mut ours).unwrap(), 3);
        let data: Vec<f32> = (0..3 * 3 * 64 * 64)
            .map(|i| ((i * 2654435761usize) % 1000) as f32 / 250.0 - 2.0)
            .collect();
        let input = Tensor::from_shape(&[3, 3, 64, 64], &data).unwrap();
        assert_eq!(run(ours, &input), run(theirs, &input));
    }

    /// A pool with padding or another stride is left to tract.
    #[test]
    fn leaves_other_pools_alone() {
        use tract_onnx::tract_core::ops::cnn::PaddingSpec;
        for (padding, stride) in [
            (PaddingSpec::SameUpper, 2),
            (PaddingSpec::Valid, 1),
            (PaddingSpec::Explicit(tvec![1, 1], tvec![1, 1]), 2),
        ] {
            let mut model = TypedModel::default();
            let x = model.add_source("x", f32::fact([1, 2, 7, 7])).unwrap();
            let spec = PoolSpec::new(
                DataFormat::NCHW,
                tvec![2, 2],
                padding.clone(),
                None,
                Some(tvec![stride, stride]),
                2,
                2,
            );
            let y = model
                .wire_node("pool", MaxPool::new(spec, None), &[x])
                .unwrap();
            model.select_output_outlets(&y).unwrap();
            let mut m = model.into_optimized().unwrap();
            assert_eq!(swap_in(&mut m).unwrap(), 0, "{padding:?} stride {stride}");
        }
    }
}
