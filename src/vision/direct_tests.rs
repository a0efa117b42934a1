//! Tests of [`super`]: values against tract's own convolution.
use super::*;
use crate::vision::conv_tests::{
    assert_swapped_equal, conv_model, data, run, shipped_typed, values,
};
use tract_onnx::tract_core::ops::cnn::{Conv, PaddingSpec};

/// The largest kernel below: 64×3×3 products per output.
const MOST_TERMS: usize = 576;

fn pad(before: usize, after: usize) -> PaddingSpec {
    PaddingSpec::Explicit(tvec![before, before], tvec![after, after])
}

/// The same values as tract's convolution, within rounding, over kernel
/// sizes, paddings, odd and even sizes, channel counts that do and do not
/// fill a block, and batches; on any machine (the portable path without
/// AVX-512).
#[test]
fn equals_tracts_convolution() {
    let cases = [
        // The shipped model's widest convolution.
        ((1, 32, 16, 16), (64, 3, 3), pad(1, 1)),
        ((2, 5, 17, 23), (13, 3, 3), PaddingSpec::SameUpper),
        (
            (3, 1, 9, 30),
            (8, 5, 5),
            PaddingSpec::Explicit(tvec![2, 1], tvec![2, 2]),
        ),
        ((1, 4, 10, 31), (40, 1, 1), PaddingSpec::Valid),
        ((1, 2, 20, 20), (3, 3, 2), PaddingSpec::Valid),
        // The shipped model's two narrow ones: every lane an output.
        ((1, 64, 8, 8), (64, 3, 3), pad(1, 1)),
        ((2, 64, 4, 4), (128, 3, 3), pad(1, 1)),
        // A copy with columns past the image on both sides.
        ((1, 3, 6, 5), (17, 3, 5), pad(2, 2)),
        // Padding wider than the kernel: some copies are all padding.
        (
            (1, 2, 10, 1),
            (4, 3, 4),
            PaddingSpec::Explicit(tvec![1, 5], tvec![1, 0]),
        ),
    ];
    assert_swapped_equal(&cases, 1, MOST_TERMS, swap_in_always);
    // Both layouts were among them.
    let layouts: Vec<Layout> = cases
        .iter()
        .map(|(i, k, p)| layout_of(&conv_model(*i, *k, p.clone(), 1)))
        .collect();
    assert!(layouts.contains(&Layout::Rows) && layouts.contains(&Layout::Shifted));
}

/// The layout a case gets.
fn layout_of(model: &TypedModel) -> Layout {
    let node = model.nodes().iter().find(|n| n.op_is::<Conv>()).unwrap();
    direct_for(model, node).unwrap().unwrap().layout
}

/// The portable path gives the same bits as the one this host takes, in
/// both layouts: both fuse each multiply-add, in the same order.
#[test]
fn portable_path_equals_the_detected_one() {
    let cases = [
        ((1, 6, 13, 21), (19, 3, 3), Layout::Shifted),
        ((1, 3, 8, 32), (5, 3, 3), Layout::Rows),
    ];
    for (input, kernel, layout) in cases {
        let (_, c, h, w) = input;
        let model = conv_model(input, kernel, pad(1, 1), 1);
        assert_eq!(layout_of(&model), layout);
        let node = model.nodes().iter().find(|n| n.op_is::<Conv>()).unwrap();
        let direct = direct_for(&model, node).unwrap().unwrap();
        let mut prepared = vec![0f32; direct.input_len()];
        direct.prepare(&data(c * h * w, 13), &mut prepared);
        let (taps, steps) = (direct.tap_offsets(), direct.steps());
        let mut detected = vec![0f32; kernel.0 * direct.plane()];
        let mut portable = detected.clone();
        direct.convolve(&prepared, &taps, &steps, &mut detected);
        direct.convolve_portable(&prepared, &taps, &steps, &mut portable);
        assert_eq!(detected, portable, "{layout:?}");
    }
}

/// Strides other than 1, groups, and shapes where under 3/4 of the
/// vector lanes would be outputs stay tract's.
#[test]
fn leaves_other_convolutions_alone() {
    // (input, kernel, padding, stride, why)
    let cases = [
        ((1, 32, 16, 16), (64, 3, 3), pad(1, 1), 2, "stride 2"),
        (
            (1, 64, 2, 5),
            (128, 3, 3),
            pad(1, 1),
            1,
            "2x5: 10 of 16 lanes",
        ),
        (
            (1, 8, 3, 20),
            (8, 3, 3),
            PaddingSpec::Valid,
            1,
            "one short row",
        ),
    ];
    for (input, kernel, padding, stride, why) in cases {
        let mut m = conv_model(input, kernel, padding, stride);
        assert_eq!(swap_in_always(&mut m).unwrap(), 0, "{why}");
    }
    let mut grouped = conv_model((1, 4, 16, 16), (4, 3, 3), pad(1, 1), 1);
    let id = grouped
        .nodes()
        .iter()
        .find(|n| n.op_is::<Conv>())
        .unwrap()
        .id;
    let conv = grouped.node_mut(id).op_as_mut::<Conv>().unwrap();
    conv.group = 2;
    assert!(direct_for(&grouped, grouped.node(id)).unwrap().is_none());
}

/// The shipped model's two wide convolutions are swapped where AVX-512
/// runs them, and the plan the daemon runs scores as tract's own plan
/// does, within rounding.
#[test]
fn shipped_model_scores_unchanged() {
    let typed = shipped_typed();
    // 32→64 at 16x16, 64→64 at 8x8 and 64→128 at 4x4.
    assert_eq!(swap_in_always(&mut typed.clone()).unwrap(), 3);
    let theirs = typed.clone().into_optimized().unwrap();
    let ours = crate::vision::model::optimise(typed).unwrap();
    let direct = ours
        .nodes()
        .iter()
        .filter(|n| n.op_is::<DirectConv>())
        .count();
    assert_eq!(direct, if available() { 3 } else { 0 });
    let input = Tensor::from_shape(&[3, 3, 64, 64], &data(3 * 3 * 64 * 64, 5)).unwrap();
    let (ours, theirs) = (run(ours, &input), run(theirs, &input));
    assert_eq!(ours.shape(), &[3, 1]);
    for (x, y) in values(&ours).iter().zip(values(&theirs)) {
        assert!((x - y).abs() < 1e-5, "score {x} vs tract's {y}");
    }
}
