//! What the directly-run convolutions ([`super::stem`], [`super::direct`])
//! share: finding a convolution they can take in a decluttered model, its
//! shape, its weights in channel blocks, and the op's tract plumbing.

use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat};
use tract_onnx::tract_core::ops::nn::DataFormat;

/// A convolution's sizes: channels, kernel, input, padding, output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConvShape {
    pub c_in: usize,
    pub c_out: usize,
    /// Kernel height and width.
    pub kh: usize,
    pub kw: usize,
    /// Input height and width, and padding top, left, bottom, right.
    pub h: usize,
    pub w: usize,
    pub pad: [usize; 4],
    pub oh: usize,
    pub ow: usize,
}

impl ConvShape {
    pub fn taps(&self) -> usize {
        self.c_in * self.kh * self.kw
    }

    /// `[batch, c_out, oh, ow]` for an input fact.
    pub fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs[0].rank() == 4 && inputs[0].datum_type == f32::datum_type());
        Ok(tvec!(f32::fact([
            inputs[0].shape[0].clone(),
            self.c_out.to_dim(),
            self.oh.to_dim(),
            self.ow.to_dim(),
        ])))
    }

    /// Runs `each(image, out)` over a batch: the input checked against
    /// the planned size, the output zeroed.
    pub fn eval_images(
        &self,
        op: &str,
        input: &Tensor,
        mut each: impl FnMut(&[f32], &mut [f32]),
    ) -> TractResult<Tensor> {
        let &[n, c, h, w] = input.shape() else {
            bail!("{op} wants a rank-4 input, got {:?}", input.shape());
        };
        ensure!(
            (c, h, w) == (self.c_in, self.h, self.w),
            "{op} planned for {}x{}x{}, got {c}x{h}x{w}",
            self.c_in,
            self.h,
            self.w
        );
        let view = input.try_as_plain_ram()?;
        let src = view.as_slice::<f32>()?;
        let mut out = Tensor::zero::<f32>(&[n, self.c_out, self.oh, self.ow])?;
        {
            let mut dst = out.try_as_plain_ram_mut()?;
            let dst = dst.as_slice_mut::<f32>()?;
            for (image, out) in src
                .chunks_exact(c * h * w)
                .zip(dst.chunks_exact_mut(self.c_out * self.oh * self.ow))
            {
                each(image, out);
            }
        }
        Ok(out)
    }
}

/// Weights as `[channel block][tap][lanes]` (taps in input channel, ky,
/// kx order) and one bias per output channel, both padded to whole blocks
/// with zeros.
#[derive(Clone, Default)]
pub struct Blocked {
    pub lanes: usize,
    pub weights: Arc<Vec<f32>>,
    pub bias: Arc<Vec<f32>>,
}

impl Blocked {
    pub fn blocks(&self) -> usize {
        self.bias.len() / self.lanes.max(1)
    }

    /// One block's weights.
    pub fn block(&self, block: usize, taps: usize) -> &[f32] {
        &self.weights[block * taps * self.lanes..][..taps * self.lanes]
    }
}

/// tract compares ops (to merge equal nodes): equal when the floats are,
/// bit for bit.
impl PartialEq for Blocked {
    fn eq(&self, other: &Self) -> bool {
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        self.lanes == other.lanes
            && bits(&self.weights) == bits(&other.weights)
            && bits(&self.bias) == bits(&other.bias)
    }
}

impl Eq for Blocked {}

/// The shape and blocked weights of `node` if it is a convolution the
/// direct ops take: f32, NCHW with OIHW kernel, group 1, `stride` both
/// ways, no dilation, constant kernel and bias, concrete size, a non-empty
/// output.
pub fn match_conv(
    model: &TypedModel,
    node: &TypedNode,
    stride: usize,
    lanes: usize,
) -> TractResult<Option<(ConvShape, Blocked)>> {
    let Some(conv) = node.op_as::<Conv>() else {
        return Ok(None);
    };
    let spec = &conv.pool_spec;
    let facts = model.node_input_facts(node.id)?;
    let Some(shape) = facts[0].shape.as_concrete() else {
        return Ok(None);
    };
    let (Some(kernel), Some(bias)) = (&facts[1].konst, &facts[2].konst) else {
        return Ok(None);
    };
    if conv.q_params.is_some()
        || conv.group != 1
        || conv.kernel_fmt != KernelFormat::OIHW
        || spec.data_format != DataFormat::NCHW
        || facts[0].datum_type != f32::datum_type()
        || kernel.datum_type() != f32::datum_type()
        || bias.datum_type() != f32::datum_type()
        || shape.len() != 4
        || spec.strides()[..] != [stride, stride]
        || spec.dilations()[..] != [1, 1]
    {
        return Ok(None);
    }
    let &[c_out, c_in, kh, kw] = kernel.shape() else {
        return Ok(None);
    };
    if c_in != shape[1]
        || c_out == 0
        || kh == 0
        || kw == 0
        || !(bias.len() == 1 || bias.len() == c_out)
    {
        return Ok(None);
    }
    let padding = spec.computed_padding(&shape[2..]);
    let conv = ConvShape {
        c_in,
        c_out,
        kh,
        kw,
        h: shape[2],
        w: shape[3],
        pad: [
            padding[0].pad_before,
            padding[1].pad_before,
            padding[0].pad_after,
            padding[1].pad_after,
        ],
        oh: padding[0].convoluted,
        ow: padding[1].convoluted,
    };
    if conv.oh == 0 || conv.ow == 0 {
        return Ok(None);
    }
    let (kernel, bias) = (kernel.try_as_plain_ram()?, bias.try_as_plain_ram()?);
    let (k, b) = (kernel.as_slice::<f32>()?, bias.as_slice::<f32>()?);
    let (taps, blocks) = (conv.taps(), c_out.div_ceil(lanes));
    let mut weights = vec![0f32; blocks * taps * lanes];
    let mut padded_bias = vec![0f32; blocks * lanes];
    for co in 0..c_out {
        let (block, lane) = (co / lanes, co % lanes);
        for t in 0..taps {
            weights[(block * taps + t) * lanes + lane] = k[co * taps + t];
        }
        padded_bias[co] = if b.len() == 1 { b[0] } else { b[co] };
    }
    let blocked = Blocked {
        lanes,
        weights: Arc::new(weights),
        bias: Arc::new(padded_bias),
    };
    Ok(Some((conv, blocked)))
}

/// Replaces each node of a decluttered `model` for which `op_for` gives
/// an op (fed the node's first input); returns how many were replaced.
/// Before `into_optimized`, which lowers convolutions out of reach.
pub fn swap_each<O: TypedOp>(
    model: &mut TypedModel,
    op_for: impl Fn(&TypedModel, &TypedNode) -> TractResult<Option<O>>,
) -> TractResult<usize> {
    let mut swapped = 0;
    for id in model.eval_order()? {
        let node = model.node(id);
        if let Some(op) = op_for(model, node)? {
            let input = [node.inputs[0]];
            TypedModelPatch::replace_single_op(model, node, &input, op)?.apply(model)?;
            swapped += 1;
        }
    }
    Ok(swapped)
}
