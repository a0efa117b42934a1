//! Tests of [`super`]: values against tract's own convolution.
use super::*;
use crate::vision::conv_tests::{
    assert_swapped_equal, conv_model, data, run, shipped_typed, values,
};
use tract_onnx::tract_core::ops::cnn::{Conv, PaddingSpec};

/// The largest kernel below: 4×5×5 products per output.
const MOST_TERMS: usize = 100;

/// The same values as tract's convolution, within rounding, over
/// kernel sizes, paddings, odd and even sizes, channel counts that do
/// and do not fill a block, and batches.
#[test]
fn equals_tracts_convolution() {
    let cases = [
        (
            (1, 3, 64, 64),
            (32, 3, 3),
            PaddingSpec::Explicit(tvec![0, 0], tvec![1, 1]),
        ),
        ((2, 3, 17, 23), (13, 3, 3), PaddingSpec::SameUpper),
        (
            (3, 1, 9, 8),
            (8, 5, 5),
            PaddingSpec::Explicit(tvec![2, 1], tvec![2, 2]),
        ),
        ((1, 4, 10, 31), (40, 1, 1), PaddingSpec::Valid),
        ((1, 2, 5, 5), (3, 3, 2), PaddingSpec::Valid),
        ((1, 3, 3, 3), (1, 3, 3), PaddingSpec::Valid),
    ];
    assert_swapped_equal(&cases, 2, MOST_TERMS, swap_in);
}

/// The portable path (hosts without AVX2 and FMA) gives the same bits as
/// the one this host takes, and as the AVX2 one where this host has it:
/// all fuse each multiply-add, in the same order. Rows shorter and longer
/// than a vector.
#[test]
fn portable_path_equals_the_detected_one() {
    for (h, w) in [(19, 22), (9, 45)] {
        let model = conv_model(
            (1, 3, h, w),
            (11, 3, 3),
            PaddingSpec::Explicit(tvec![1, 0], tvec![1, 1]),
            2,
        );
        let node = model.nodes().iter().find(|n| n.op_is::<Conv>()).unwrap();
        let stem = stem_for(&model, node).unwrap().unwrap();
        let image = data(3 * h * w, 13);
        let mut split = vec![0f32; 3 * 2 * stem.split_rows() * stem.split_width()];
        stem.split(&image, &mut split);
        let taps = stem.tap_offsets();
        let mut detected = vec![0f32; 11 * stem.conv.oh * stem.conv.ow];
        let mut portable = detected.clone();
        stem.convolve(&split, &taps, &mut detected);
        stem.convolve_portable(&split, &taps, &mut portable);
        assert_eq!(detected, portable, "{h}x{w}");
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            let mut avx2 = vec![0f32; portable.len()];
            // SAFETY: the features were just detected.
            unsafe { stem.convolve_avx2(&split, &taps, &mut avx2) };
            assert_eq!(avx2, portable, "{h}x{w}, AVX2");
        }
    }
}

/// Stride 1, or more input channels than a stem has, stays tract's.
#[test]
fn leaves_other_convolutions_alone() {
    let cases = [
        ((1, 3, 16, 16), (8, 3, 3), 1),
        ((1, 5, 16, 16), (8, 3, 3), 2),
        ((1, 32, 16, 16), (64, 3, 3), 2),
    ];
    for (input, kernel, stride) in cases {
        let mut m = conv_model(input, kernel, PaddingSpec::Valid, stride);
        assert_eq!(swap_in(&mut m).unwrap(), 0, "{input:?} stride {stride}");
    }
}

/// The shipped model's stem is swapped, and the plan the daemon runs
/// scores as tract's own plan does, within rounding.
#[test]
fn shipped_model_scores_unchanged() {
    let typed = shipped_typed();
    let mut swapped = typed.clone();
    assert_eq!(swap_in(&mut swapped).unwrap(), 1);
    let theirs = typed.clone().into_optimized().unwrap();
    let ours = crate::vision::model::optimise(typed).unwrap();
    assert!(
        ours.nodes().iter().any(|n| n.op_is::<StemConv>()),
        "the daemon's plan runs the stem directly"
    );
    let input = Tensor::from_shape(&[3, 3, 64, 64], &data(3 * 3 * 64 * 64, 5)).unwrap();
    let (ours, theirs) = (run(ours, &input), run(theirs, &input));
    assert_eq!(ours.shape(), &[3, 1]);
    for (x, y) in values(&ours).iter().zip(values(&theirs)) {
        assert!((x - y).abs() < 1e-5, "score {x} vs tract's {y}");
    }
}
