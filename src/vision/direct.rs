//! A stride-1 convolution run directly, sixteen output positions at a time.
//!
//! tract lowers a 3×3 convolution to a gather (lazy im2col) feeding its
//! packed matrix product. On the shipped model's widest convolution (32→64
//! channels, 16×16) that ran at 31 GMAC/s where a direct loop reaches 50–58:
//! the gather is redone for every 16 output channels. [`DirectConv`] lays
//! 16 output positions along a vector, so every tap is one contiguous
//! 16-wide load, times 16 output channels' weights held in registers. The
//! positions follow the output rows of the padded input where a row is a
//! whole number of vectors wide ([`Layout::Rows`]); else they run through
//! the whole output, every lane an output, over copies of the input
//! shifted by each kernel column ([`Layout::Shifted`]). The copies cost
//! about 5 % at 16×16 and win at 8×8 and 4×4, where a row-wise run would
//! leave 20–50 % of the lanes idle (BENCHMARKS.md). It is swapped in
//! ([`swap_in`]) only where at least 3/4 of the lanes are
//! outputs, and only where AVX-512 runs it.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use super::conv::{self, Blocked, ConvShape};

/// Output channels per block, and positions per vector.
const LANES: usize = 16;

/// How output positions are laid along the vectors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layout {
    /// Within each output row (the row a whole number of vectors wide, or
    /// nearly): stored straight into the output.
    Rows,
    /// Along the output as one run of positions, every lane an output:
    /// the input copied once per kernel column, shifted by it and cut to
    /// the output's width, so output `p` reads `p + ky·ow` of a copy.
    Shifted,
}

/// A vector of output positions: where tap (0, 0, 0) reads for its first
/// lane, where its first lane is stored, and how many lanes are outputs.
#[derive(Clone, Copy)]
struct Step {
    input: usize,
    output: usize,
    lanes: usize,
}

/// A stride-1, group-1, f32 NCHW convolution with its padding built in.
#[derive(Clone, PartialEq, Eq)]
pub struct DirectConv {
    conv: ConvShape,
    layout: Layout,
    /// Weights in blocks of [`LANES`] output channels.
    blocked: Blocked,
}

/// Shapes only: tract prints ops in plans and errors.
impl std::fmt::Debug for DirectConv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.conv;
        write!(
            f,
            "DirectConv {}→{} {}x{} on {}x{} pad {:?} by {:?}",
            c.c_in, c.c_out, c.kh, c.kw, c.h, c.w, c.pad, self.layout
        )
    }
}

impl DirectConv {
    /// The padded input's height and width.
    fn padded(&self) -> (usize, usize) {
        (
            self.conv.h + self.conv.pad[0] + self.conv.pad[2],
            self.conv.w + self.conv.pad[1] + self.conv.pad[3],
        )
    }

    /// The layout's vectors, in the order they are computed.
    fn steps(&self) -> Vec<Step> {
        let (oh, ow, pw) = (self.conv.oh, self.conv.ow, self.padded().1);
        match self.layout {
            Layout::Rows => (0..oh)
                .flat_map(|y| {
                    (0..ow).step_by(LANES).map(move |x| Step {
                        input: y * pw + x,
                        output: y * ow + x,
                        lanes: (ow - x).min(LANES),
                    })
                })
                .collect(),
            Layout::Shifted => {
                let len = oh * ow;
                (0..len)
                    .step_by(LANES)
                    .map(|p| Step {
                        input: p,
                        output: p,
                        lanes: (len - p).min(LANES),
                    })
                    .collect()
            }
        }
    }

    /// Values per output channel.
    fn plane(&self) -> usize {
        self.conv.oh * self.conv.ow
    }

    /// The share of the vectors' lanes that are outputs.
    fn lanes_used(&self) -> f64 {
        let steps = self.steps();
        (self.conv.oh * self.conv.ow) as f64 / (steps.len() * LANES) as f64
    }

    /// Values of the input as the layout reads it.
    fn input_len(&self) -> usize {
        let (ph, pw) = self.padded();
        match self.layout {
            Layout::Rows => self.conv.c_in * ph * pw,
            Layout::Shifted => self.conv.kw * self.conv.c_in * ph * self.conv.ow,
        }
    }

    /// Copies one image into `input` as the layout reads it.
    fn prepare(&self, image: &[f32], input: &mut [f32]) {
        match self.layout {
            Layout::Rows => self.pad_into(image, input),
            Layout::Shifted => self.shift_into(image, input),
        }
    }

    /// Copies one image into `shifted`, `[kx][channel][padded row][ow]`:
    /// value `x` of copy `kx` is padded column `x + kx` (zero borders).
    fn shift_into(&self, image: &[f32], shifted: &mut [f32]) {
        let c = &self.conv;
        let (ph, ow, left) = (self.padded().0, c.ow, c.pad[1]);
        shifted.fill(0.0);
        for kx in 0..c.kw {
            // Output columns whose padded column `x + kx` is in the image:
            // none where the padding is wider than the rest of the kernel.
            let lo = left.saturating_sub(kx).min(ow);
            let hi = (c.w + left).saturating_sub(kx).min(ow);
            if lo >= hi {
                continue;
            }
            // The image column output column `lo` reads, in every row.
            let from = lo + kx - left;
            for (ch, plane) in image.chunks_exact(c.h * c.w).enumerate() {
                for (y, row) in plane.chunks_exact(c.w).enumerate() {
                    let at = ((kx * c.c_in + ch) * ph + y + c.pad[0]) * ow;
                    shifted[at + lo..at + hi].copy_from_slice(&row[from..from + hi - lo]);
                }
            }
        }
    }

    /// Copies one image's channels into `padded` (zero borders).
    fn pad_into(&self, image: &[f32], padded: &mut [f32]) {
        let (ph, pw) = self.padded();
        padded.fill(0.0);
        for (c, plane) in image.chunks_exact(self.conv.h * self.conv.w).enumerate() {
            for (y, row) in plane.chunks_exact(self.conv.w).enumerate() {
                let at = (c * ph + y + self.conv.pad[0]) * pw + self.conv.pad[1];
                padded[at..at + self.conv.w].copy_from_slice(row);
            }
        }
    }

    /// Where tap (c, ky, kx) reads, relative to the step's input.
    fn tap_offsets(&self) -> Vec<usize> {
        let (ph, pw) = self.padded();
        let mut offsets = Vec::with_capacity(self.conv.taps());
        for c in 0..self.conv.c_in {
            for ky in 0..self.conv.kh {
                for kx in 0..self.conv.kw {
                    offsets.push(match self.layout {
                        Layout::Rows => (c * ph + ky) * pw + kx,
                        Layout::Shifted => ((kx * self.conv.c_in + c) * ph + ky) * self.conv.ow,
                    });
                }
            }
        }
        offsets
    }

    /// The convolution of one prepared image ([`Self::prepare`]) into
    /// `dst`, [`Self::plane`] values per output channel.
    fn convolve(&self, input: &[f32], taps: &[usize], steps: &[Step], dst: &mut [f32]) {
        // Every read is `tap + step.input .. + step.lanes`, every write
        // `channel plane + step.output .. + step.lanes`.
        let reach = |f: fn(&Step) -> usize| steps.iter().map(|s| f(s) + s.lanes).max();
        let last_tap = taps.iter().max().copied().unwrap_or(0);
        assert!(
            reach(|s| s.input).is_none_or(|r| last_tap + r <= input.len()),
            "direct conv: input too short"
        );
        let plane = self.plane();
        assert!(
            reach(|s| s.output).is_none_or(|r| (self.conv.c_out - 1) * plane + r <= dst.len()),
            "direct conv: output too short"
        );
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: the feature was just detected; the reads and writes
            // are in bounds by the assertions above.
            unsafe { self.convolve_avx512(input, taps, steps, dst) };
            return;
        }
        self.convolve_portable(input, taps, steps, dst);
    }

    fn convolve_portable(&self, input: &[f32], taps: &[usize], steps: &[Step], dst: &mut [f32]) {
        let plane = self.plane();
        for block in 0..self.blocked.blocks() {
            let weights = self.blocked.block(block, taps.len());
            for lane in 0..LANES.min(self.conv.c_out - block * LANES) {
                let co = block * LANES + lane;
                for step in steps {
                    let out = &mut dst[co * plane + step.output..][..step.lanes];
                    out.fill(self.blocked.bias[co]);
                    for (t, &off) in taps.iter().enumerate() {
                        let k = weights[t * LANES + lane];
                        let src = &input[off + step.input..][..step.lanes];
                        for (o, &s) in out.iter_mut().zip(src) {
                            *o = k.mul_add(s, *o);
                        }
                    }
                }
            }
        }
    }

    /// # Safety
    /// AVX-512F must be present, and the reads and writes in bounds as
    /// [`Self::convolve`] asserts.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn convolve_avx512(
        &self,
        input: &[f32],
        taps: &[usize],
        steps: &[Step],
        dst: &mut [f32],
    ) {
        use std::arch::x86_64::*;
        let plane = self.plane();
        for block in 0..self.blocked.blocks() {
            let weights = self.blocked.block(block, taps.len());
            let channels = LANES.min(self.conv.c_out - block * LANES);
            for step in steps {
                let mask: __mmask16 = if step.lanes == LANES {
                    u16::MAX
                } else {
                    (1 << step.lanes) - 1
                };
                // SAFETY: AVX-512F is enabled on this function; the masked
                // reads and writes are in bounds (the caller's assertions),
                // and `weights` holds LANES per tap. No closures: they
                // would not inherit the target feature.
                unsafe {
                    let src = input.as_ptr().add(step.input);
                    let mut acc = [_mm512_setzero_ps(); LANES];
                    for (lane, a) in acc.iter_mut().enumerate() {
                        *a = _mm512_set1_ps(self.blocked.bias[block * LANES + lane]);
                    }
                    for (t, &off) in taps.iter().enumerate() {
                        let s = _mm512_maskz_loadu_ps(mask, src.add(off));
                        let k = weights.as_ptr().add(t * LANES);
                        for (lane, a) in acc.iter_mut().enumerate() {
                            *a = _mm512_fmadd_ps(_mm512_set1_ps(*k.add(lane)), s, *a);
                        }
                    }
                    for (lane, a) in acc.iter().enumerate().take(channels) {
                        let co = block * LANES + lane;
                        let out = dst.as_mut_ptr().add(co * plane + step.output);
                        _mm512_mask_storeu_ps(out, mask, *a);
                    }
                }
            }
        }
    }
}

impl Op for DirectConv {
    fn name(&self) -> StaticName {
        "firelane.DirectConv".into()
    }

    op_as_typed_op!();
}

impl EvalOp for DirectConv {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let mut prepared = vec![0f32; self.input_len()];
        let (taps, steps) = (self.tap_offsets(), self.steps());
        let out = self.conv.eval_images("DirectConv", &input, |image, out| {
            self.prepare(image, &mut prepared);
            self.convolve(&prepared, &taps, &steps, out);
        })?;
        Ok(tvec!(out.into_tvalue()))
    }
}

impl TypedOp for DirectConv {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        self.conv.output_facts(inputs)
    }

    as_op!();
}

/// The [`DirectConv`] for a node, if it is a stride-1 convolution
/// ([`conv::match_conv`]) that op computes well: in the layout that uses
/// more of the vectors' lanes, at least 3/4 of them (measured before the
/// shifted layout: with 89 % of lanes 1.6x as fast as tract, 80 % 1.2x,
/// 50 % 0.85x; shifted, all lanes: 1.5x on the 4×4 one; BENCHMARKS.md).
fn direct_for(model: &TypedModel, node: &TypedNode) -> TractResult<Option<DirectConv>> {
    let Some((conv, blocked)) = conv::match_conv(model, node, 1, LANES)? else {
        return Ok(None);
    };
    let mut direct = DirectConv {
        conv,
        layout: Layout::Rows,
        blocked,
    };
    // The output is what a stride-1 window over the padded input gives.
    let (ph, pw) = direct.padded();
    let c = &direct.conv;
    if (ph + 1).checked_sub(c.kh) != Some(c.oh) || (pw + 1).checked_sub(c.kw) != Some(c.ow) {
        return Ok(None);
    }
    // Rows where they fill as many lanes: they skip the copies.
    let rows = direct.lanes_used();
    direct.layout = Layout::Shifted;
    if rows >= direct.lanes_used() {
        direct.layout = Layout::Rows;
    }
    Ok((direct.lanes_used() >= 0.75).then_some(direct))
}

/// Whether this machine runs [`DirectConv`] faster than tract's own path.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Replaces each convolution of a decluttered `model` that [`DirectConv`]
/// computes well; returns how many were replaced. Before
/// `into_optimized`, which lowers convolutions out of reach. Does nothing
/// without AVX-512, where tract's path is the faster one.
pub fn swap_in(model: &mut TypedModel) -> TractResult<usize> {
    if !available() {
        return Ok(0);
    }
    swap_in_always(model)
}

/// [`swap_in`] whatever the machine (tests compare both paths).
fn swap_in_always(model: &mut TypedModel) -> TractResult<usize> {
    conv::swap_each(model, direct_for)
}

#[cfg(test)]
#[path = "direct_tests.rs"]
mod tests;
