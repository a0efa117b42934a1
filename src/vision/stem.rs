//! A model's first convolution, run directly instead of as a matrix product.
//!
//! A stem sees the three colour channels. As tract lowers it (im2col, then a
//! packed matrix product) its depth is 3×3×3 = 27, a poor shape for the
//! packed kernels: the shipped model's stem took a fifth of a crop's time
//! for a tenth of its MACs, plus a padding copy. [`StemConv`] computes a
//! stride-2 convolution over a few input channels directly: the input's
//! columns are split by parity, so that every tap reads a contiguous row,
//! and each step keeps eight channels of eight outputs (AVX2) or sixteen
//! (AVX-512: 0.035 → 0.021 ms a crop) in registers. [`swap_in`] puts it in
//! place of tract's convolution where the shape fits.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use super::conv::{self, Blocked, ConvShape};

/// Output channels computed together, and outputs of a row per step.
const LANES: usize = 8;
/// Above this many input channels the matrix product has depth enough.
const MAX_INPUT_CHANNELS: usize = 4;

/// A stride-2, group-1, f32 NCHW convolution with its padding built in.
#[derive(Clone, PartialEq, Eq)]
pub struct StemConv {
    conv: ConvShape,
    /// Weights in blocks of [`LANES`] output channels.
    blocked: Blocked,
}

/// Shapes only: tract prints ops in plans and errors.
impl std::fmt::Debug for StemConv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "StemConv {}→{} {}x{} stride 2 on {}x{} pad {:?}",
            self.conv.c_in,
            self.conv.c_out,
            self.conv.kh,
            self.conv.kw,
            self.conv.h,
            self.conv.w,
            self.conv.pad
        )
    }
}

impl StemConv {
    /// Row length of a split plane: every tap's eight-wide read in bounds.
    fn split_width(&self) -> usize {
        self.conv.ow.div_ceil(LANES) * LANES + self.conv.kw / 2
    }

    fn split_rows(&self) -> usize {
        self.conv.h + self.conv.pad[0] + self.conv.pad[2]
    }

    /// Copies one image's channels, padded, into `split`: per channel the
    /// even columns' plane, then the odd columns'.
    fn split(&self, image: &[f32], split: &mut [f32]) {
        let (rows, sw) = (self.split_rows(), self.split_width());
        split.fill(0.0);
        let left = self.conv.pad[1];
        for (c, plane) in image.chunks_exact(self.conv.h * self.conv.w).enumerate() {
            for (y, row) in plane.chunks_exact(self.conv.w).enumerate() {
                let py = y + self.conv.pad[0];
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
        let mut offsets = Vec::with_capacity(self.conv.taps());
        for c in 0..self.conv.c_in {
            for ky in 0..self.conv.kh {
                for kx in 0..self.conv.kw {
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
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: the feature was just detected; `convolve_avx512`
            // reads only within `split` and `out` (checked there).
            unsafe { self.convolve_avx512(split, taps, out) };
            return;
        }
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
        let plane = self.conv.oh * self.conv.ow;
        let sw = self.split_width();
        for block in 0..self.blocked.blocks() {
            let weights = self.blocked.block(block, taps.len());
            for oy in 0..self.conv.oh {
                for x0 in (0..self.conv.ow).step_by(LANES) {
                    let mut acc = [[0f32; LANES]; LANES];
                    for (lane, a) in acc.iter_mut().enumerate() {
                        *a = [self.blocked.bias[block * LANES + lane]; LANES];
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
        let n = LANES.min(self.conv.ow - x0);
        for (lane, a) in acc.iter().enumerate() {
            let co = block * LANES + lane;
            if co < self.conv.c_out {
                out[co * plane + oy * self.conv.ow + x0..][..n].copy_from_slice(&a[..n]);
            }
        }
    }

    /// [`Self::convolve_avx2`] sixteen positions wide, stored straight
    /// into `out` (masked at a row's end): a stem's rows are 16 or 32
    /// outputs wide, so no lane is idle.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn convolve_avx512(&self, split: &[f32], taps: &[usize], out: &mut [f32]) {
        use std::arch::x86_64::*;
        const WIDE: usize = 16;
        let (oh, ow) = (self.conv.oh, self.conv.ow);
        let (plane, sw) = (oh * ow, self.split_width());
        // Every read is `off + 2 * oy * sw + x0 + i` for the lanes i < ow - x0
        // the mask keeps, and off's column <= kw / 2.
        let last = taps.iter().max().copied().unwrap_or(0) + 2 * (oh.max(1) - 1) * sw + ow;
        assert!(last <= split.len(), "stem split planes too short");
        assert!(
            self.conv.c_out * plane <= out.len(),
            "stem output too short"
        );
        for block in 0..self.blocked.blocks() {
            let weights = self.blocked.block(block, taps.len());
            for oy in 0..oh {
                for x0 in (0..ow).step_by(WIDE) {
                    let n = (ow - x0).min(WIDE);
                    let mask: __mmask16 = if n == WIDE { u16::MAX } else { (1 << n) - 1 };
                    // SAFETY: AVX-512F is enabled on this function; the
                    // masked reads and writes are in bounds by the
                    // assertions above, and `weights` holds LANES per tap.
                    // No closures: they would not inherit the feature.
                    unsafe {
                        let src = split.as_ptr().add(2 * oy * sw + x0);
                        let mut v = [_mm512_setzero_ps(); LANES];
                        for (lane, a) in v.iter_mut().enumerate() {
                            *a = _mm512_set1_ps(self.blocked.bias[block * LANES + lane]);
                        }
                        for (t, &off) in taps.iter().enumerate() {
                            let s = _mm512_maskz_loadu_ps(mask, src.add(off));
                            let k = weights.as_ptr().add(t * LANES);
                            for (lane, a) in v.iter_mut().enumerate() {
                                *a = _mm512_fmadd_ps(_mm512_set1_ps(*k.add(lane)), s, *a);
                            }
                        }
                        for (lane, a) in v.iter().enumerate() {
                            let co = block * LANES + lane;
                            if co < self.conv.c_out {
                                let at = out.as_mut_ptr().add(co * plane + oy * ow + x0);
                                _mm512_mask_storeu_ps(at, mask, *a);
                            }
                        }
                    }
                }
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn convolve_avx2(&self, split: &[f32], taps: &[usize], out: &mut [f32]) {
        use std::arch::x86_64::*;
        let plane = self.conv.oh * self.conv.ow;
        let sw = self.split_width();
        // Every read below is `off + 2 * oy * sw + x0 .. + LANES` with
        // x0 + LANES <= split_width - kw / 2 and off's column <= kw / 2.
        let last = taps.iter().max().copied().unwrap_or(0)
            + 2 * (self.conv.oh.max(1) - 1) * sw
            + self.conv.ow.div_ceil(LANES) * LANES;
        assert!(last <= split.len(), "stem split planes too short");
        for block in 0..self.blocked.blocks() {
            let weights = self.blocked.block(block, taps.len());
            for oy in 0..self.conv.oh {
                for x0 in (0..self.conv.ow).step_by(LANES) {
                    // SAFETY: AVX2 and FMA are enabled on this function;
                    // the reads are in bounds by the assertion above, and
                    // `weights` holds LANES per tap.
                    // No closures here: they would not inherit the target
                    // features, and the accumulators would leave registers.
                    let mut acc = [[0f32; LANES]; LANES];
                    unsafe {
                        let mut v = [_mm256_setzero_ps(); LANES];
                        for (lane, a) in v.iter_mut().enumerate() {
                            *a = _mm256_set1_ps(self.blocked.bias[block * LANES + lane]);
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
        let mut split = vec![0f32; self.conv.c_in * 2 * self.split_rows() * self.split_width()];
        let taps = self.tap_offsets();
        let out = self.conv.eval_images("StemConv", &input, |image, out| {
            self.split(image, &mut split);
            self.convolve(&split, &taps, out);
        })?;
        Ok(tvec!(out.into_tvalue()))
    }
}

impl TypedOp for StemConv {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        self.conv.output_facts(inputs)
    }

    as_op!();
}

/// The [`StemConv`] for a node, if it is a convolution that op computes
/// ([`conv::match_conv`]) with stride 2 and at most
/// [`MAX_INPUT_CHANNELS`] inputs.
fn stem_for(model: &TypedModel, node: &TypedNode) -> TractResult<Option<StemConv>> {
    let Some((conv, blocked)) = conv::match_conv(model, node, 2, LANES)? else {
        return Ok(None);
    };
    let stem = StemConv { conv, blocked };
    // Reads must stay inside the padded input, as tract's output size says.
    let fits = 2 * (stem.conv.oh - 1) + stem.conv.kh <= stem.split_rows();
    Ok((stem.conv.c_in <= MAX_INPUT_CHANNELS && fits).then_some(stem))
}

/// Replaces each convolution of a decluttered `model` that [`StemConv`]
/// computes; returns how many were replaced.
pub fn swap_in(model: &mut TypedModel) -> TractResult<usize> {
    conv::swap_each(model, stem_for)
}

#[cfg(test)]
#[path = "stem_tests.rs"]
mod tests;
