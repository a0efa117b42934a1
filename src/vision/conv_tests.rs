//! Test helpers of the ops swapped into tract's plans ([`super::pool`],
//! [`super::stem`], [`super::direct`]): the shipped model, one-convolution
//! models and tract's values.
use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat, PaddingSpec, PoolSpec};
use tract_onnx::tract_core::ops::nn::DataFormat;

pub(crate) fn run(model: TypedModel, input: &Tensor) -> Tensor {
    model
        .into_runnable()
        .unwrap()
        .run(tvec!(input.clone().into()))
        .unwrap()
        .remove(0)
        .into_tensor()
}

/// The shipped model, decluttered, for a batch of three 64×64 crops.
pub(crate) fn shipped_typed() -> TypedModel {
    let bytes = crate::vision::model::BUILTIN_MODELS[0].onnx;
    tract_onnx::onnx()
        .model_for_read(&mut std::io::Cursor::new(bytes))
        .and_then(|m| m.with_input_fact(0, f32::fact([3, 3, 64, 64]).into()))
        .and_then(|m| m.into_typed())
        .and_then(|m| m.into_decluttered())
        .unwrap()
}

pub(crate) fn data(len: usize, seed: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((i * 2654435761 + seed) % 1000) as f32 / 250.0 - 2.0)
        .collect()
}

/// A one-convolution model: `[n, c, h, w]` in, kernel `[o, c, kh, kw]`.
pub(crate) fn conv_model(
    (n, c, h, w): (usize, usize, usize, usize),
    (o, kh, kw): (usize, usize, usize),
    padding: PaddingSpec,
    stride: usize,
) -> TypedModel {
    let mut model = TypedModel::default();
    let x = model.add_source("x", f32::fact([n, c, h, w])).unwrap();
    let kernel = Tensor::from_shape(&[o, c, kh, kw], &data(o * c * kh * kw, 7)).unwrap();
    let kernel = model.add_const("k", kernel).unwrap();
    let bias = model.add_const("b", tensor1(&data(o, 3))).unwrap();
    let spec = PoolSpec::new(
        DataFormat::NCHW,
        tvec![kh, kw],
        padding,
        None,
        Some(tvec![stride, stride]),
        c,
        o,
    );
    let conv = Conv::new(spec, KernelFormat::OIHW, 1, None);
    let y = model.wire_node("conv", conv, &[x, kernel, bias]).unwrap();
    model.select_output_outlets(&y).unwrap();
    model
}

pub(crate) fn values(t: &Tensor) -> Vec<f32> {
    t.try_as_plain_ram()
        .unwrap()
        .as_slice::<f32>()
        .unwrap()
        .to_vec()
}

/// Equal within rounding for sums of `terms` products of values under 2:
/// only the order of the additions differs from tract's.
pub(crate) fn assert_close(ours: &Tensor, theirs: &Tensor, terms: usize, what: &str) {
    assert_eq!(ours.shape(), theirs.shape(), "{what}");
    let tolerance = 1e-6 * terms as f32;
    for (i, (x, y)) in values(ours).iter().zip(values(theirs)).enumerate() {
        assert!(
            (x - y).abs() <= tolerance * (1.0 + y.abs()),
            "{what} [{i}]: {x} vs {y}"
        );
    }
}

/// A test convolution: input `[n, c, h, w]`, kernel `(o, kh, kw)`, padding.
pub(crate) type Case = (
    (usize, usize, usize, usize),
    (usize, usize, usize),
    PaddingSpec,
);

/// Each case as a one-convolution model at `stride`: `swap` replaces its
/// convolution, and the values are tract's, before and after tract's
/// optimiser.
pub(crate) fn assert_swapped_equal(
    cases: &[Case],
    stride: usize,
    terms: usize,
    swap: fn(&mut TypedModel) -> TractResult<usize>,
) {
    for (input_shape, kernel_shape, padding) in cases {
        let what = format!("{input_shape:?} {kernel_shape:?} {padding:?}");
        let (n, c, h, w) = *input_shape;
        let theirs = conv_model(*input_shape, *kernel_shape, padding.clone(), stride);
        let mut ours = theirs.clone();
        assert_eq!(swap(&mut ours).unwrap(), 1, "{what}");
        let input = Tensor::from_shape(&[n, c, h, w], &data(n * c * h * w, 11)).unwrap();
        let expected = run(theirs.into_optimized().unwrap(), &input);
        assert_close(&run(ours.clone(), &input), &expected, terms, &what);
        // tract's optimiser leaves the swapped op in place.
        assert_close(
            &run(ours.into_optimized().unwrap(), &input),
            &expected,
            terms,
            &what,
        );
    }
}
