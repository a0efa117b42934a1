//! A stride-1 convolution run directly, sixteen output positions at a time.
//!
//! tract lowers a 3×3 convolution to a gather (lazy im2col) feeding its
//! packed matrix product. On the shipped model's widest convolution (32→64
//! channels, 16×16) that ran at 31 GMAC/s where a direct loop reaches 50:
//! the gather is redone for every 16 output channels. [`DirectConv`] pads
//! the input once and computes outputs along the padded rows as one run of
//! positions (output `p` reads input `p + ky·width + kx`), so every tap is
//! one contiguous 16-wide load, times 16 output channels' weights in
//! registers. The columns past a row's end are computed and dropped, so it
//! is swapped in ([`swap_in`]) only where at least 3/4 of the lanes are
//! outputs, and only where AVX-512 runs it.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use super::conv::{self, Blocked, ConvShape};

/// Output channels per block, and positions per vector.
const LANES: usize = 16;

/// A stride-1, group-1, f32 NCHW convolution with its padding built in.
#[derive(Clone, PartialEq, Eq)]
pub struct DirectConv {
    conv: ConvShape,
    /// Weights in blocks of [`LANES`] output channels.
    blocked: Blocked,
}

/// Shapes only: tract prints ops in plans and errors.
impl std::fmt::Debug for DirectConv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "DirectConv {}→{} {}x{} on {}x{} pad {:?}",
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

impl DirectConv {
    /// The padded input's height and width.
    fn padded(&self) -> (usize, usize) {
        (
            self.conv.h + self.conv.pad[0] + self.conv.pad[2],
            self.conv.w + self.conv.pad[1] + self.conv.pad[3],
        )
    }

    /// Output positions computed per channel: `oh` rows of the padded
    /// width, the last one cut at `ow`.
    fn run_len(&self) -> usize {
        (self.conv.oh - 1) * self.padded().1 + self.conv.ow
    }

    /// Whether enough of each vector's lanes are outputs for the direct
    /// loop to beat tract's (measured: with 89 % of lanes 1.6x as fast,
    /// 80 % 1.2x, 50 % 0.85x; BENCHMARKS.md, *Direct stride-1*).
    fn lanes_well_used(&self) -> bool {
        let lanes = self.run_len().div_ceil(LANES) * LANES;
        4 * self.conv.oh * self.conv.ow >= 3 * lanes
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

    /// Where tap (c, ky, kx) reads, relative to the output position.
    fn tap_offsets(&self) -> Vec<usize> {
        let (ph, pw) = self.padded();
        let mut offsets = Vec::with_capacity(self.conv.taps());
        for c in 0..self.conv.c_in {
            for ky in 0..self.conv.kh {
                for kx in 0..self.conv.kw {
                    offsets.push((c * ph + ky) * pw + kx);
                }
            }
        }
        offsets
    }

    /// The convolution of one padded image into `rows`: per output
    /// channel `oh` rows of the padded width (see [`Self::run_len`]).
    fn convolve(&self, padded: &[f32], taps: &[usize], rows: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: the feature was just detected; `convolve_avx512`
            // reads only within `padded` and `rows` (checked there).
            unsafe { self.convolve_avx512(padded, taps, rows) };
            return;
        }
        self.convolve_portable(padded, taps, rows);
    }

    fn convolve_portable(&self, padded: &[f32], taps: &[usize], rows: &mut [f32]) {
        let (len, plane) = (self.run_len(), self.conv.oh * self.padded().1);
        for block in 0..self.blocked.blocks() {
            let weights = self.blocked.block(block, taps.len());
            for lane in 0..LANES.min(self.conv.c_out - block * LANES) {
                let co = block * LANES + lane;
                let out = &mut rows[co * plane..][..len];
                out.fill(self.blocked.bias[co]);
                for (t, &off) in taps.iter().enumerate() {
                    let k = weights[t * LANES + lane];
                    for (o, &s) in out.iter_mut().zip(&padded[off..off + len]) {
                        *o = k.mul_add(s, *o);
                    }
                }
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn convolve_avx512(&self, padded: &[f32], taps: &[usize], rows: &mut [f32]) {
        use std::arch::x86_64::*;
        let (len, plane) = (self.run_len(), self.conv.oh * self.padded().1);
        // Every read is `off + p .. + LANES`, masked to p < len; the last
        // tap's last one ends at the padded image's end.
        let last = taps.iter().max().copied().unwrap_or(0) + len;
        assert!(last <= padded.len(), "direct conv: padded input too short");
        assert!(
            (self.conv.c_out - 1) * plane + len <= rows.len(),
            "output too short"
        );
        for block in 0..self.blocked.blocks() {
            let weights = self.blocked.block(block, taps.len());
            let channels = LANES.min(self.conv.c_out - block * LANES);
            for p in (0..len).step_by(LANES) {
                let left = (len - p).min(LANES);
                let mask: __mmask16 = if left == LANES {
                    u16::MAX
                } else {
                    (1 << left) - 1
                };
                // SAFETY: AVX-512F is enabled on this function; the masked
                // reads and writes are in bounds by the assertions above,
                // and `weights` holds LANES per tap. No closures: they
                // would not inherit the target feature.
                unsafe {
                    let mut acc = [_mm512_setzero_ps(); LANES];
                    for (lane, a) in acc.iter_mut().enumerate() {
                        *a = _mm512_set1_ps(self.blocked.bias[block * LANES + lane]);
                    }
                    for (t, &off) in taps.iter().enumerate() {
                        let s = _mm512_maskz_loadu_ps(mask, padded.as_ptr().add(off + p));
                        let k = weights.as_ptr().add(t * LANES);
                        for (lane, a) in acc.iter_mut().enumerate() {
                            *a = _mm512_fmadd_ps(_mm512_set1_ps(*k.add(lane)), s, *a);
                        }
                    }
                    for (lane, a) in acc.iter().enumerate().take(channels) {
                        let co = block * LANES + lane;
                        _mm512_mask_storeu_ps(rows.as_mut_ptr().add(co * plane + p), mask, *a);
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
        let (ph, pw) = self.padded();
        let mut padded = vec![0f32; self.conv.c_in * ph * pw];
        let mut rows = vec![0f32; self.conv.c_out * self.conv.oh * pw];
        let taps = self.tap_offsets();
        let out = self.conv.eval_images("DirectConv", &input, |image, out| {
            self.pad_into(image, &mut padded);
            self.convolve(&padded, &taps, &mut rows);
            // Keep each row's first `ow` positions.
            for (o, r) in out
                .chunks_exact_mut(self.conv.ow)
                .zip(rows.chunks_exact(pw))
            {
                o.copy_from_slice(&r[..self.conv.ow]);
            }
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
/// ([`conv::match_conv`]) that op computes well.
fn direct_for(model: &TypedModel, node: &TypedNode) -> TractResult<Option<DirectConv>> {
    let Some((conv, blocked)) = conv::match_conv(model, node, 1, LANES)? else {
        return Ok(None);
    };
    let direct = DirectConv { conv, blocked };
    // The output is what a stride-1 window over the padded input gives.
    let (ph, pw) = direct.padded();
    let (c, window) = (&direct.conv, (ph + 1).checked_sub(direct.conv.kh));
    let fits = window == Some(c.oh) && (pw + 1).checked_sub(c.kw) == Some(c.ow);
    Ok((fits && direct.lanes_well_used()).then_some(direct))
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
