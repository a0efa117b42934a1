//! A model's first convolution, run directly instead of as a matrix product.
//!
//! A stem sees the three colour channels. As tract lowers it (im2col, then a
//! packed matrix product) its depth is 3×3×3 = 27, a poor shape for the
//! packed kernels: the shipped model's stem took a fifth of a crop's time
//! for a tenth of its MACs, plus a padding copy. [`StemConv`] computes a
//! stride-2 convolution over a few input channels directly: the input's
//! columns are split by parity, so that every tap reads a contiguous row,
//! and each step keeps eight outputs of eight channels in registers.
//! [`swap_in`] puts it in place of tract's convolution where the shape fits.

use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat};
use tract_onnx::tract_core::ops::nn::DataFormat;

/// Output channels computed together, and outputs of a row per step.
const LANES: usize = 8;
/// Above this many input channels the matrix product has depth enough.
const MAX_INPUT_CHANNELS: usize = 4;

/// A stride-2, group-1, f32 NCHW convolution with its padding built in.
#[derive(Clone)]
pub struct StemConv {
    c_in: usize,
    c_out: usize,
    /// Kernel height and width.
    kh: usize,
    kw: usize,
    /// Input height and width, and padding top, left, bottom, right.
    h: usize,
    w: usize,
    pad: [usize; 4],
    oh: usize,
    ow: usize,
    /// `[channel block][tap][LANES]`, taps in (input channel, ky, kx)
    /// order, the last block's missing channels zero.
    weights: Arc<Vec<f32>>,
    /// One per output channel, padded like the weights.
    bias: Arc<Vec<f32>>,
}

/// Shapes only: tract prints ops in plans and errors.
impl std::fmt::Debug for StemConv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "StemConv {}→{} {}x{} stride 2 on {}x{} pad {:?}",
            self.c_in, self.c_out, self.kh, self.kw, self.h, self.w, self.pad
        )
    }
}

/// tract compares ops (to merge equal nodes): equal when every field is,
/// the floats bit for bit.
impl PartialEq for StemConv {
    fn eq(&self, other: &Self) -> bool {
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        (
            self.c_in, self.c_out, self.kh, self.kw, self.h, self.w, self.pad, self.oh, self.ow,
        ) == (
            other.c_in,
            other.c_out,
            other.kh,
            other.kw,
            other.h,
            other.w,
            other.pad,
            other.oh,
            other.ow,
        ) && bits(&self.weights) == bits(&other.weights)
            && bits(&self.bias) == bits(&other.bias)
    }
}

impl Eq for StemConv {}

impl StemConv {
    fn blocks(&self) -> usize {
        self.c_out.div_ceil(LANES)
    }

    fn taps(&self) -> usize {
        self.c_in * self.kh * self.kw
    }

    /// Row length of a split plane: every tap's eight-wide read in bounds.
    fn split_width(&self) -> usize {
        self.ow.div_ceil(LANES) * LANES + self.kw / 2
    }

    fn split_rows(&self) -> usize {
        self.h + self.pad[0] + self.pad[2]
    }

    /// Copies one image's channels, padded, into `split`: per channel the
    /// even columns' plane, then the odd columns'.
    fn split(&self, image: &[f32], split: &mut [f32]) {
        let (rows, sw) = (self.split_rows(), self.split_width());
        split.fill(0.0);
        let left = self.pad[1];
        for (c, plane) in image.chunks_exact(self.h * self.w).enumerate() {
            for (y, row) in plane.chunks_exact(self.w).enumerate() {
                let py = y + self.pad[0];
                let even = ((c * 2) * rows + py) * sw;
                let odd = ((c * 2 + 1) * rows + py) * sw;
                let (evens, odds) = split.split_at_mut(odd);
                let (evens, odds) = (&mut evens[even..even + sw], &mut odds[..sw]);
                if left.is_multiple_of(2) {
                    // Column pairs land side by side: the loop the
                    // compiler vectorises (shuffles, no index arithmetic).
                    let pairs = row.chunks_exact(2);
                    let last = pairs.remainder().first();
                    let (e, o) = (&mut evens[left / 2..], &mut odds[left / 2..]);
                    let n = pairs.len().min(e.len());
                    for ((pair, e), o) in pairs.take(n).zip(&mut e[..n]).zip(&mut o[..n]) {
                        *e = pair[0];
                        *o = pair[1];
                    }
                    if let (Some(&v), Some(e)) = (last, e.get_mut(n)) {
                        *e = v;
                    }
                } else {
                    for (x, &v) in row.iter().enumerate() {
                        let px = x + left;
                        let plane = if px.is_multiple_of(2) {
                            &mut *evens
                        } else {
                            &mut *odds
                        };
                        if let Some(d) = plane.get_mut(px / 2) {
                            *d = v;
                        }
                    }
                }
            }
        }
    }

    /// Where each tap's row starts in the split planes, for output row 0.
    fn tap_offsets(&self) -> Vec<usize> {
        let (rows, sw) = (self.split_rows(), self.split_width());
        let mut offsets = Vec::with_capacity(self.taps());
        for c in 0..self.c_in {
            for ky in 0..self.kh {
                for kx in 0..self.kw {
                    offsets.push(((c * 2 + kx % 2) * rows + ky) * sw + kx / 2);
                }
            }
        }
        offsets
    }

    /// The convolution of one image: `split` as [`Self::split`] left it,
    /// `out` its `[c_out, oh, ow]` planes.
    fn convolve(&self, split: &[f32], taps: &[usize], out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the features were just detected; `convolve_avx2`
            // reads only within `split` and `out` (checked there).
            unsafe { self.convolve_avx2(split, taps, out) };
            return;
        }
        self.convolve_portable(split, taps, out);
    }

    fn convolve_portable(&self, split: &[f32], taps: &[usize], out: &mut [f32]) {
        let plane = self.oh * self.ow;
        let sw = self.split_width();
        for block in 0..self.blocks() {
            let weights = &self.weights[block * taps.len() * LANES..][..taps.len() * LANES];
            for oy in 0..self.oh {
                for x0 in (0..self.ow).step_by(LANES) {
                    let mut acc = [[0f32; LANES]; LANES];
                    for (lane, a) in acc.iter_mut().enumerate() {
                        *a = [self.bias[block * LANES + lane]; LANES];
                    }
                    for (t, &off) in taps.iter().enumerate() {
                        let src = &split[off + 2 * oy * sw + x0..][..LANES];
                        for (a, &k) in acc.iter_mut().zip(&weights[t * LANES..][..LANES]) {
                            for (v, &s) in a.iter_mut().zip(src) {
                                *v = k.mul_add(s, *v);
                            }
                        }
                    }
                    self.store(&acc, block, oy, x0, plane, out);
                }
            }
        }
    }

    /// Writes one step's outputs that exist (channels and columns).
    fn store(
        &self,
        acc: &[[f32; LANES]; LANES],
        block: usize,
        oy: usize,
        x0: usize,
        plane: usize,
        out: &mut [f32],
    ) {
        let n = LANES.min(self.ow - x0);
        for (lane, a) in acc.iter().enumerate() {
            let co = block * LANES + lane;
            if co < self.c_out {
                out[co * plane + oy * self.ow + x0..][..n].copy_from_slice(&a[..n]);
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn convolve_avx2(&self, split: &[f32], taps: &[usize], out: &mut [f32]) {
        use std::arch::x86_64::*;
        let plane = self.oh * self.ow;
        let sw = self.split_width();
        // Every read below is `off + 2 * oy * sw + x0 .. + LANES` with
        // x0 + LANES <= split_width - kw / 2 and off's column <= kw / 2.
        let last = taps.iter().max().copied().unwrap_or(0)
            + 2 * (self.oh.max(1) - 1) * sw
            + self.ow.div_ceil(LANES) * LANES;
        assert!(last <= split.len(), "stem split planes too short");
        for block in 0..self.blocks() {
            let weights = &self.weights[block * taps.len() * LANES..][..taps.len() * LANES];
            for oy in 0..self.oh {
                for x0 in (0..self.ow).step_by(LANES) {
                    // SAFETY: AVX2 and FMA are enabled on this function;
                    // the reads are in bounds by the assertion above, and
                    // `weights` holds LANES per tap.
                    // No closures here: they would not inherit the target
                    // features, and the accumulators would leave registers.
                    let mut acc = [[0f32; LANES]; LANES];
                    unsafe {
                        let mut v = [_mm256_setzero_ps(); LANES];
                        for (lane, a) in v.iter_mut().enumerate() {
                            *a = _mm256_set1_ps(self.bias[block * LANES + lane]);
                        }
                        for (t, &off) in taps.iter().enumerate() {
                            let s = _mm256_loadu_ps(split.as_ptr().add(off + 2 * oy * sw + x0));
                            let k = weights.as_ptr().add(t * LANES);
                            for (lane, a) in v.iter_mut().enumerate() {
                                *a = _mm256_fmadd_ps(_mm256_broadcast_ss(&*k.add(lane)), s, *a);
                            }
                        }
                        for (a, r) in v.iter().zip(acc.iter_mut()) {
                            _mm256_storeu_ps(r.as_mut_ptr(), *a);
                        }
                    }
                    self.store(&acc, block, oy, x0, plane, out);
                }
            }
        }
    }
}

impl Op for StemConv {
    fn name(&self) -> StaticName {
        "firelane.StemConv".into()
    }

    op_as_typed_op!();
}

impl EvalOp for StemConv {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let &[n, c, h, w] = input.shape() else {
            bail!("StemConv wants a rank-4 input, got {:?}", input.shape());
        };
        ensure!(
            (c, h, w) == (self.c_in, self.h, self.w),
            "StemConv planned for {}x{}x{}, got {c}x{h}x{w}",
            self.c_in,
            self.h,
            self.w
        );
        let view = input.try_as_plain_ram()?;
        let src = view.as_slice::<f32>()?;
        let mut out = Tensor::zero::<f32>(&[n, self.c_out, self.oh, self.ow])?;
        let mut split = vec![0f32; self.c_in * 2 * self.split_rows() * self.split_width()];
        let taps = self.tap_offsets();
        {
            let mut dst = out.try_as_plain_ram_mut()?;
            let dst = dst.as_slice_mut::<f32>()?;
            for (image, out) in src
                .chunks_exact(c * h * w)
                .zip(dst.chunks_exact_mut(self.c_out * self.oh * self.ow))
            {
                self.split(image, &mut split);
                self.convolve(&split, &taps, out);
            }
        }
        Ok(tvec!(out.into_tvalue()))
    }
}

impl TypedOp for StemConv {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs[0].rank() == 4 && inputs[0].datum_type == f32::datum_type());
        Ok(tvec!(f32::fact([
            inputs[0].shape[0].clone(),
            self.c_out.to_dim(),
            self.oh.to_dim(),
            self.ow.to_dim(),
        ])))
    }

    as_op!();
}

/// The [`StemConv`] for a node, if it is a convolution that op computes:
/// f32, NCHW with OIHW kernel, group 1, stride 2, no dilation, at most
/// [`MAX_INPUT_CHANNELS`] inputs, constant kernel and bias, concrete size.
fn stem_for(model: &TypedModel, node: &TypedNode) -> TractResult<Option<StemConv>> {
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
        || shape[1] > MAX_INPUT_CHANNELS
        || spec.strides()[..] != [2, 2]
        || spec.dilations()[..] != [1, 1]
    {
        return Ok(None);
    }
    let &[c_out, c_in, kh, kw] = kernel.shape() else {
        return Ok(None);
    };
    if c_in != shape[1] || kh == 0 || kw == 0 || !(bias.len() == 1 || bias.len() == c_out) {
        return Ok(None);
    }
    let padding = spec.computed_padding(&shape[2..]);
    let (oh, ow) = (padding[0].convoluted, padding[1].convoluted);
    let mut stem = StemConv {
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
        oh,
        ow,
        weights: Default::default(),
        bias: Default::default(),
    };
    // Reads must stay inside the padded input, as tract's output size says.
    if oh == 0 || ow == 0 || 2 * (oh - 1) + kh > stem.split_rows() {
        return Ok(None);
    }
    let (kernel, bias) = (kernel.try_as_plain_ram()?, bias.try_as_plain_ram()?);
    let (k, b) = (kernel.as_slice::<f32>()?, bias.as_slice::<f32>()?);
    let taps = stem.taps();
    let mut weights = vec![0f32; stem.blocks() * taps * LANES];
    let mut padded_bias = vec![0f32; stem.blocks() * LANES];
    for co in 0..c_out {
        let (block, lane) = (co / LANES, co % LANES);
        for t in 0..taps {
            weights[(block * taps + t) * LANES + lane] = k[co * taps + t];
        }
        padded_bias[co] = if b.len() == 1 { b[0] } else { b[co] };
    }
    stem.weights = Arc::new(weights);
    stem.bias = Arc::new(padded_bias);
    Ok(Some(stem))
}

/// Replaces each convolution of a decluttered `model` that [`StemConv`]
/// computes; returns how many were replaced. Before `into_optimized`,
/// which lowers convolutions out of reach.
pub fn swap_in(model: &mut TypedModel) -> TractResult<usize> {
    let mut swapped = 0;
    for id in model.eval_order()? {
        let node = model.node(id);
        if let Some(stem) = stem_for(model, node)? {
            let input = [node.inputs[0]];
            TypedModelPatch::replace_single_op(model, node, &input, stem)?.apply(model)?;
            swapped += 1;
        }
    }
    Ok(swapped)
}

#[cfg(test)]
#[path = "stem_tests.rs"]
mod tests;
