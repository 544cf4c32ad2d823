"""Batches, channels, groups and dilation (the book's next section) on the active backend, against float64 oracles.

The oracles (conftest) are the book's own definitions with loops: each output channel the sum over its
group's input channels of 2-D cross-correlations, stacked; every example of a batch on its own.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import (
    assert_close,
    each_method,
    needs_float64,
    numeric_gradient,
    reference_corr2d,
    reference_multi_in_out,
)

import d2lconv as dc
from d2lconv._backend import active_adapter
from d2lconv._inputs import pad_amounts
from d2lconv.methods import dilated_shape

GENERAL = [method for method in dc.METHODS if method != "separable"]
DIFFERENTIABLE = [method for method in dc.METHODS if method not in ("loop", "separable")]
# The book's example for multiple input channels (its figure: the first output is 56)
BOOK_X = [[[0.0, 1, 2], [3, 4, 5], [6, 7, 8]], [[1, 2, 3], [4, 5, 6], [7, 8, 9]]]
BOOK_K = [[[0.0, 1], [2, 3]], [[1, 2], [3, 4]]]


def native(x):
    return active_adapter().is_native(x)


def pads_of(padding, input_shape, kernel_shape, stride, dilation):
    return pad_amounts(padding, input_shape, dilated_shape(kernel_shape, dilation), stride)


def to_layout(x, last):
    """A channels-first array in the layout of the test (channels last moves axis -3 to the end)."""
    return np.moveaxis(x, -3, -1) if last else x


def scale_of(K):
    return float(np.abs(K).sum()) * 4


# --------------------------------------------------------------------------------------- the book's section


@pytest.mark.parametrize("method", each_method(GENERAL))
def test_the_books_multi_input_example(method):
    Y = dc.corr2d_multi_in(BOOK_X, BOOK_K, method=method)
    assert native(Y)
    assert_close(Y, [[56.0, 72.0], [104.0, 120.0]])


@pytest.mark.parametrize("method", each_method(GENERAL))
def test_the_books_multi_output_example(method):
    K = np.array(BOOK_K, dtype=np.float32)
    Y = dc.corr2d_multi_in_out(BOOK_X, np.stack([K, K + 1, K + 2]), method=method)
    assert native(Y)
    assert dc.to_numpy(Y).shape == (3, 2, 2)
    assert_close(dc.to_numpy(Y)[0], [[56.0, 72.0], [104.0, 120.0]])  # the first channel is corr2d_multi_in's
    assert_close(Y, reference_multi_in_out(BOOK_X, np.stack([K, K + 1, K + 2])))


def test_the_books_1x1_convolution_equals_corr2d_multi_in_out(rng):
    X = rng.uniform(size=(3, 3, 3)).astype(np.float32)
    K = rng.uniform(size=(2, 3, 1, 1)).astype(np.float32)
    Y1, Y2 = dc.corr2d_multi_in_out_1x1(X, K), dc.corr2d_multi_in_out(X, K)
    assert native(Y1)
    assert float(np.linalg.norm(dc.to_numpy(Y1) - dc.to_numpy(Y2))) < 1e-6
    assert_close(Y1, reference_multi_in_out(X, K))


@pytest.mark.parametrize("last", [False, True], ids=["channels_first", "channels_last"])
@pytest.mark.parametrize(("padding", "stride"), [(0, 1), (1, 2), ((2, 0), (1, 3))])
def test_1x1_with_a_batch_padding_stride_and_a_2d_kernel(padding, stride, last, rng):
    X = rng.standard_normal((2, 4, 5, 6)).astype(np.float32)
    K = rng.standard_normal((3, 4)).astype(np.float32)
    strides = (stride, stride) if isinstance(stride, int) else stride
    pads = pads_of(padding, (5, 6), (1, 1), strides, (1, 1))
    expected = reference_multi_in_out(X, K[:, :, None, None], 1, pads, strides)
    layout = "channels_last" if last else "channels_first"
    for method in ("auto", "direct"):
        Y = dc.corr2d_multi_in_out_1x1(to_layout(X, last), K, padding=padding, stride=stride, data_format=layout,
                                       method=method)
        assert_close(Y, to_layout(expected, last), scale=scale_of(K))


# ------------------------------------------------------------------------------- random shapes against oracles

CASES = [  # (leading axes, C, O, groups, kernel, stride, dilation, padding)
    ((), 1, 1, 1, (3, 3), (1, 1), (1, 1), 0),
    ((3,), 1, 4, 1, (3, 2), (1, 1), (1, 1), 0),  # a filter bank on a batch
    ((2,), 3, 8, 1, (3, 3), (1, 1), (1, 1), 1),  # RGB to 8 channels
    ((2,), 4, 6, 2, (3, 2), (2, 1), (1, 2), 1),  # groups, stride, dilation
    ((2, 2), 6, 6, 6, (5, 5), (1, 1), (1, 1), "same"),  # depthwise, two leading axes
    ((1,), 3, 6, 3, (2, 3), (2, 2), (2, 1), (1, 2)),  # depthwise with a multiplier of 2
    ((2,), 5, 3, 1, (1, 1), (1, 1), (1, 1), 0),  # 1x1
    ((), 2, 2, 1, (4, 4), (3, 2), (2, 2), "same"),
]


def _case_id(case):
    lead, C, O, groups, kernel, stride, dilation, padding = case
    return (f"{lead}-{C}to{O}-g{groups}-k{kernel[0]}x{kernel[1]}-s{stride[0]}{stride[1]}-d{dilation[0]}{dilation[1]}"
            f"-p{padding}")


@pytest.mark.parametrize("last", [False, True], ids=["channels_first", "channels_last"])
@pytest.mark.parametrize("case", CASES, ids=_case_id)
@pytest.mark.parametrize("method", each_method(GENERAL))
def test_corr2d_multi_in_out_against_the_books_definitions(method, case, last, rng):
    lead, C, O, groups, kernel, stride, dilation, padding = case
    X = rng.standard_normal((*lead, C, 11, 10)).astype(np.float32)
    K = rng.standard_normal((O, C // groups, *kernel)).astype(np.float32)
    pads = pads_of(padding, (11, 10), kernel, stride, dilation)
    expected = reference_multi_in_out(X, K, groups, pads, stride, dilation)
    Y = dc.corr2d_multi_in_out(to_layout(X, last), K, groups=groups, method=method, padding=padding, stride=stride,
                               dilation=dilation, data_format="channels_last" if last else "channels_first")
    assert native(Y)
    assert_close(Y, to_layout(expected, last), scale=scale_of(K))


@pytest.mark.parametrize("method", each_method())
@pytest.mark.parametrize("groups", [1, 4])
def test_rank_one_banks_and_depthwise_kernels_take_every_method(method, groups, rng):
    """Sobel, box and outer products, one input channel per group: what the separable method takes."""
    C = 1 if groups == 1 else 4
    X = rng.standard_normal((2, C, 20, 17)).astype(np.float32)
    bank = [np.array([[1.0, 0, -1], [2, 0, -2], [1, 0, -1]]), np.full((3, 3), 1 / 9),
            np.outer(rng.standard_normal(3), rng.standard_normal(3)), np.outer([1.0, 2, 1], [1.0, -2, 1])]
    K = np.stack(bank)[:, None].astype(np.float32)
    for stride, dilation in [((1, 1), (1, 1)), ((2, 1), (1, 2))]:
        Y = dc.corr2d_multi_in_out(X, K, groups=groups, method=method, stride=stride, dilation=dilation)
        assert_close(Y, reference_multi_in_out(X, K, groups, stride=stride, dilation=dilation), scale=scale_of(K))


def test_separable_refuses_kernels_it_cannot_take(rng):
    X = rng.standard_normal((2, 12, 12)).astype(np.float32)
    with pytest.raises(ValueError, match=r"one input channel per group .* this K has shape \(3, 2, 3, 3\)"):
        dc.corr2d_multi_in_out(X, np.ones((3, 2, 3, 3)), method="separable")
    with pytest.raises(ValueError, match=r"needs rank-one kernels; not every kernel of this \(2, 1, 2, 2\) K"):
        dc.corr2d_multi_in_out(X, np.array([[[[1.0, 2], [3, 4]]], [[[1.0, 1], [1, 1]]]]), groups=2,
                               method="separable")


@pytest.mark.parametrize("last", [False, True], ids=["channels_first", "channels_last"])
@pytest.mark.parametrize("method", each_method(GENERAL))
def test_corr2d_multi_in_with_a_batch_and_options(method, last, rng):
    X = rng.standard_normal((2, 3, 9, 8)).astype(np.float32)
    K = rng.standard_normal((3, 3, 2)).astype(np.float32)
    pads = pads_of(1, (9, 8), (3, 2), (2, 1), (1, 2))
    expected = reference_multi_in_out(X, K[None], 1, pads, (2, 1), (1, 2))[..., 0, :, :]
    Y = dc.corr2d_multi_in(to_layout(X, last), K, method=method, padding=1, stride=(2, 1), dilation=(1, 2),
                           data_format="channels_last" if last else "channels_first")
    assert dc.to_numpy(Y).shape == (2, 5, 8)
    assert_close(Y, expected, scale=scale_of(K))


@pytest.mark.parametrize("method", each_method())
@pytest.mark.parametrize("lead", [(3,), (2, 3)], ids=["batch", "two-axes"])
@pytest.mark.parametrize(("stride", "dilation", "padding"), [((1, 1), (1, 1), 0), ((2, 1), (2, 3), 1),
                                                            ((1, 2), (3, 1), "same")])
def test_corr2d_takes_leading_axes_and_a_dilation(method, lead, stride, dilation, padding, rng):
    """Every 2-D slice of (..., H, W) with the same kernel, in one call; dilated taps d pixels apart."""
    X = rng.standard_normal((*lead, 13, 12)).astype(np.float32)
    K = np.outer([1.0, 2, 1], [1.0, 0, -1]).astype(np.float32)  # rank one, so every method takes it
    pads = pads_of(padding, (13, 12), K.shape, stride, dilation)
    Y = dc.corr2d(X, K, method=method, stride=stride, dilation=dilation, padding=padding)
    assert native(Y)
    assert_close(Y, reference_corr2d(X, K, pads, stride, dilation), scale=scale_of(K))
    Z = dc.convolve2d(X, K, method=method, stride=stride, dilation=dilation, padding=padding)
    assert_close(Z, reference_corr2d(X, K[::-1, ::-1], pads, stride, dilation), scale=scale_of(K))


@pytest.mark.parametrize("method", each_method(GENERAL))
def test_corr2d_on_a_batch_is_corr2d_on_each_image(method, rng):
    X = rng.standard_normal((4, 16, 15)).astype(np.float32)
    K = rng.standard_normal((4, 3)).astype(np.float32)
    batched = dc.to_numpy(dc.corr2d(X, K, method=method, dilation=(2, 1)))
    for x, y in zip(X, batched):
        assert_close(y, dc.to_numpy(dc.corr2d(x, K, method=method, dilation=(2, 1))), scale=scale_of(K))


@pytest.mark.parametrize("stride", [(1, 1), (2, 3)])
def test_auto_on_the_benchmarks_kinds_of_shapes(stride, rng):
    """auto's choices (framework op or d2lconv's methods) all give the reference; the sizes are large enough
    (over 2**18 multiply-adds) that no backend takes its op for tiny problems everywhere."""
    cases = [((4, 1, 100, 100), (1, 1, 3, 3), 1), ((1, 3, 60, 60), (8, 3, 3, 3), 1),
             ((1, 16, 20, 20), (16, 16, 3, 3), 1), ((1, 8, 50, 50), (8, 1, 5, 5), 8),
             ((1, 1, 100, 100), (6, 1, 3, 3), 1), ((2, 2, 50, 50), (2, 2, 9, 9), 1), ((2, 1, 100, 90), (3, 1, 2, 2), 1)]
    for x_shape, k_shape, groups in cases:
        X = rng.standard_normal(x_shape).astype(np.float32)
        K = rng.standard_normal(k_shape).astype(np.float32)
        assert_close(dc.corr2d_multi_in_out(X, K, groups=groups, stride=stride),
                     reference_multi_in_out(X, K, groups, stride=stride), scale=scale_of(K))
    # a filter bank of rank-one kernels and one that is not, with a stride and a dilation: each kernel its own way
    X = rng.standard_normal((2, 1, 200, 160)).astype(np.float32)
    K = np.stack([np.array([[1.0, 0, -1], [2, 0, -2], [1, 0, -1]]), np.array([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]]),
                  np.full((3, 3), 1 / 9)])[:, None].astype(np.float32)
    Y = dc.corr2d_multi_in_out(X, K, stride=stride, dilation=(2, 1), padding=1)
    expected = reference_multi_in_out(X, K, 1, ((1, 1), (1, 1)), stride, (2, 1))
    assert_close(Y, expected, scale=scale_of(K))


def test_integer_inputs_compute_in_float32():
    X = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)
    K = np.ones((2, 3, 2, 2), dtype=np.int64)
    Y = dc.corr2d_multi_in_out(X, K)
    assert dc.to_numpy(Y).dtype == np.float32
    assert_close(Y, reference_multi_in_out(X, K))


@needs_float64
@pytest.mark.parametrize("method", each_method(("direct", "fft", "native", "auto")))
def test_float64_stays_float64(method, rng):
    X = rng.standard_normal((2, 3, 9, 8))
    K = rng.standard_normal((4, 3, 3, 3))
    Y = dc.corr2d_multi_in_out(X, K, method=method)
    assert dc.to_numpy(Y).dtype == np.float64
    np.testing.assert_allclose(dc.to_numpy(Y), reference_multi_in_out(X, K), rtol=1e-10, atol=1e-10)


# ------------------------------------------------------------------------------------------------ gradients


GRADIENT_CASES = [  # (leading axes, C, O, groups, kernel, stride, dilation, padding, channels last)
    ((2,), 4, 6, 2, (3, 2), (2, 1), (1, 2), 1, False),
    ((2,), 3, 3, 3, (2, 2), (1, 1), (2, 1), (1, 0), True),
    ((1,), 1, 3, 1, (3, 3), (1, 1), (1, 1), 0, False),
    ((), 3, 2, 1, (2, 3), (1, 2), (1, 1), "same", True),
]


@pytest.mark.parametrize("case", GRADIENT_CASES, ids=lambda case: _case_id(case[:-1]) + ("-last" if case[-1] else ""))
@pytest.mark.parametrize("method", each_method(DIFFERENTIABLE))
def test_corr2d_multi_in_out_gradients_match_finite_differences(method, case, rng):
    lead, C, O, groups, kernel, stride, dilation, padding, last = case
    X = rng.standard_normal((*lead, C, 7, 8))
    K = rng.standard_normal((O, C // groups, *kernel))
    pads = pads_of(padding, (7, 8), kernel, stride, dilation)

    def forward(x, k):
        return reference_multi_in_out(x, k, groups, pads, stride, dilation)

    G = rng.standard_normal(forward(X, K).shape)
    dX, dK = dc.gradients(dc.corr2d_multi_in_out, to_layout(X, last).astype(np.float32), K.astype(np.float32),
                          to_layout(G, last).astype(np.float32), groups=groups, method=method, padding=padding,
                          stride=stride, dilation=dilation, data_format="channels_last" if last else "channels_first")
    scale = float(np.abs(G).sum() * max(np.abs(X).max(), np.abs(K).max()))
    assert_close(dX, to_layout(numeric_gradient(lambda v: float((G * forward(v, K)).sum()), X), last), scale=scale)
    assert_close(dK, numeric_gradient(lambda v: float((G * forward(X, v)).sum()), K), scale=scale)


@pytest.mark.parametrize("method", each_method(DIFFERENTIABLE))
def test_gradients_of_corr2d_multi_in_1x1_and_batched_corr2d(method, rng):
    X = rng.standard_normal((2, 3, 6, 5))
    G = rng.standard_normal((2, 5, 4))
    K = rng.standard_normal((3, 2, 2))
    scale = float(np.abs(G).sum() * 3)

    def multi_in(x, k):
        return float((G * reference_multi_in_out(x, k[None])[..., 0, :, :]).sum())

    dX, dK = dc.gradients(dc.corr2d_multi_in, X.astype(np.float32), K.astype(np.float32), G.astype(np.float32),
                          method=method)
    assert_close(dX, numeric_gradient(lambda v: multi_in(v, K), X), scale=scale)
    assert_close(dK, numeric_gradient(lambda v: multi_in(X, v), K), scale=scale)

    K2, G2 = rng.standard_normal((4, 3)), rng.standard_normal((2, 4, 4, 4))

    def one_by_one(x, k):
        return float((G2 * reference_multi_in_out(x, k[:, :, None, None], 1, ((1, 1), (1, 1)), (2, 2))).sum())

    dX, dK = dc.gradients(dc.corr2d_multi_in_out_1x1, X.astype(np.float32), K2.astype(np.float32),
                          G2.astype(np.float32), padding=1, stride=2, method=method)
    assert dK.shape == (4, 3)
    assert_close(dX, numeric_gradient(lambda v: one_by_one(v, K2), X), scale=scale)
    assert_close(dK, numeric_gradient(lambda v: one_by_one(X, v), K2), scale=scale)

    X3, K3 = rng.standard_normal((3, 8, 9)), rng.standard_normal((2, 3))
    G3 = rng.standard_normal((3, 8, 4))

    def batched(x, k):
        return float((G3 * reference_corr2d(x, k, ((1, 1), (1, 1)), (1, 2), (2, 2))).sum())

    for function in (dc.corr2d, None):
        if function is None:  # corr2d_gradients is the same through its own entry point
            dX, dK = dc.corr2d_gradients(X3.astype(np.float32), K3.astype(np.float32), G3.astype(np.float32),
                                         method=method, padding=1, stride=(1, 2), dilation=2)
        else:
            dX, dK = dc.gradients(function, X3.astype(np.float32), K3.astype(np.float32), G3.astype(np.float32),
                                  method=method, padding=1, stride=(1, 2), dilation=2)
        assert_close(dX, numeric_gradient(lambda v: batched(v, K3), X3), scale=scale)
        assert_close(dK, numeric_gradient(lambda v: batched(X3, v), K3), scale=scale)


def test_gradients_check_the_shape_of_grad_output():
    with pytest.raises(ValueError, match=r"grad_output has shape \(2, 2\) but corr2d_multi_in_out gives "
                                         r"\(3, 2, 2\)"):
        dc.gradients(dc.corr2d_multi_in_out, np.ones((2, 3, 3)), np.ones((3, 2, 2, 2)), np.ones((2, 2)))


# ---------------------------------------------------------------------------------------------------- layer


def _parameters(layer):
    return active_adapter().layer_parameters(layer)


@pytest.mark.parametrize("last", [False, True], ids=["channels_first", "channels_last"])
@pytest.mark.parametrize("bias", [True, False])
def test_conv2d_with_channels_is_corr2d_multi_in_out_plus_bias(bias, last, rng):
    layer = dc.Conv2D((3, 2), in_channels=4, out_channels=6, groups=2, bias=bias, seed=0, padding=1, stride=(2, 1),
                      dilation=(1, 2), data_format="channels_last" if last else "channels_first")
    x = rng.standard_normal((2, 4, 9, 8)).astype(np.float32)
    y = layer(dc.tensor(to_layout(x, last)))
    assert native(y)
    params = _parameters(layer)
    assert params["weight"].shape == (6, 2, 3, 2)
    assert set(params) == ({"weight", "bias"} if bias else {"weight"})
    pads = pads_of(1, (9, 8), (3, 2), (2, 1), (1, 2))
    expected = reference_multi_in_out(x, params["weight"], 2, pads, (2, 1), (1, 2))
    if bias:
        assert params["bias"].shape == (6,)
        expected = expected + params["bias"][:, None, None]
    assert_close(y, to_layout(expected, last), scale=scale_of(params["weight"]))


def test_conv2d_default_is_the_books_layer_also_on_a_batch(rng):
    layer = dc.Conv2D((2, 3), seed=1, dilation=(2, 1))
    params = _parameters(layer)
    assert params["weight"].shape == (2, 3) and params["bias"].shape == (1,)
    x = rng.standard_normal((3, 7, 8)).astype(np.float32)
    assert_close(layer(x), reference_corr2d(x, params["weight"], dilation=(2, 1)) + params["bias"][0])
    with pytest.raises(ValueError, match="data_format applies to layers with channels"):
        dc.Conv2D(3, data_format="channels_last")


def test_conv2d_with_one_output_channel_keeps_the_channel_axis(rng):
    layer = dc.Conv2D(3, out_channels=2, seed=0, bias=False)  # in_channels defaults to 1
    assert _parameters(layer)["weight"].shape == (2, 1, 3, 3)
    x = rng.standard_normal((5, 1, 8, 8)).astype(np.float32)
    assert dc.to_numpy(layer(x)).shape == (5, 2, 6, 6)


@pytest.mark.parametrize("last", [False, True], ids=["channels_first", "channels_last"])
def test_conv2d_with_channels_gradients_match_finite_differences(last, rng):
    layer = dc.Conv2D((2, 2), in_channels=3, out_channels=3, groups=3, seed=2, stride=(1, 2),
                      data_format="channels_last" if last else "channels_first")
    weight = _parameters(layer)["weight"].astype(np.float64)
    x = rng.standard_normal((2, 3, 6, 7))
    G = rng.standard_normal((2, 3, 5, 3))
    grads = dc.layer_gradients(layer, to_layout(x, last).astype(np.float32), to_layout(G, last).astype(np.float32))
    expected = numeric_gradient(lambda w: float((G * reference_multi_in_out(x, w, 3, stride=(1, 2))).sum()), weight)
    assert_close(grads["weight"], expected, scale=float(np.abs(G).sum() * np.abs(x).max()))
    assert_close(grads["bias"], G.sum(axis=(0, 2, 3)), scale=float(np.abs(G).sum()))


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [({"in_channels": 0}, r"in_channels must be an int >= 1, got 0"),
     ({"in_channels": 4, "out_channels": 6, "groups": 4}, r"groups=4 must divide both the input channels \(4\) and "
                                                          r"the output channels \(6\)"),
     ({"in_channels": 2, "data_format": "NCHW"}, r"data_format must be 'channels_first' or 'channels_last', got "
                                                 r"'NCHW'")],
)
def test_bad_layer_channels(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        dc.Conv2D(3, **kwargs)


def test_a_layer_with_channels_names_the_mismatch():
    layer = dc.Conv2D(3, in_channels=4, out_channels=2, seed=0)
    with pytest.raises(ValueError, match=r"X has 3 channels but K expects 4"):
        layer(np.ones((1, 3, 8, 8), dtype=np.float32))


# ------------------------------------------------------------------------------------------------- training


def _numpy_reference(X, Y, **kwargs):
    with dc.use_backend("numpy"):
        return dc.train_kernel(dc.to_numpy(X), dc.to_numpy(Y), **kwargs)


@pytest.mark.parametrize("layer", ["builtin", "custom"])
def test_train_kernel_on_a_batch_sums_the_loss_and_learns_the_kernel(layer, rng):
    X = rng.standard_normal((4, 12, 11)).astype(np.float32)
    K = rng.standard_normal((3, 3)).astype(np.float32)
    Y = dc.to_numpy(dc.corr2d(X, K))
    result = dc.train_kernel(X, Y, (3, 3), lr="auto", epochs=150, init="zeros", layer=layer)
    assert result.kernel.shape == (3, 3)
    np.testing.assert_allclose(result.kernel, K, atol=1e-3)
    assert result.losses[0] == pytest.approx(float((Y.astype(np.float64) ** 2).sum()), rel=1e-4)  # zero start
    reference = _numpy_reference(X, Y, kernel_size=(3, 3), lr="auto", epochs=5, init="zeros", layer=layer)
    np.testing.assert_allclose(result.losses[:5], reference.losses, rtol=1e-3)
    # a batch of one is the book's single image
    single = dc.train_kernel(X[0], Y[0], (3, 3), lr=result.lr, epochs=3, init="zeros", layer=layer)
    batch_of_one = dc.train_kernel(X[:1], Y[:1], (3, 3), lr=result.lr, epochs=3, init="zeros", layer=layer)
    np.testing.assert_allclose(single.losses, batch_of_one.losses, rtol=1e-5)


@pytest.mark.parametrize("layer", ["builtin", "custom"])
def test_train_kernel_with_channels_learns_the_kernel_and_biases(layer, rng):
    X = rng.standard_normal((5, 3, 10, 9)).astype(np.float32)
    K = rng.standard_normal((2, 3, 3, 2)).astype(np.float32)
    b = np.array([0.5, -1.0], dtype=np.float32)
    Y = dc.to_numpy(dc.corr2d_multi_in_out(X, K)) + b[:, None, None]
    result = dc.train_kernel(X, Y, (3, 2), lr="auto", epochs=300, init="zeros", layer=layer, in_channels=3,
                             out_channels=2, bias=True)
    assert result.kernel.shape == (2, 3, 3, 2) and result.bias.shape == (2,)
    np.testing.assert_allclose(result.kernel, K, atol=1e-3)
    np.testing.assert_allclose(result.bias, b, atol=1e-3)
    reference = _numpy_reference(X, Y, kernel_size=(3, 2), lr=result.lr, epochs=5, init="zeros", layer=layer,
                                 in_channels=3, out_channels=2, bias=True)
    np.testing.assert_allclose(result.losses[:5], reference.losses, rtol=1e-3)


def test_train_kernel_with_channels_from_a_random_start_is_repeatable(rng):
    X = rng.standard_normal((2, 2, 8, 8)).astype(np.float32)
    Y = dc.to_numpy(dc.corr2d_multi_in_out(X, rng.standard_normal((3, 2, 2, 2)).astype(np.float32)))
    first, again = (dc.train_kernel(X, Y, 2, lr="auto", epochs=4, seed=5, in_channels=2, out_channels=3)
                    for _ in range(2))
    assert first.losses == again.losses and first.losses[-1] < first.losses[0]


def test_the_learning_rate_guard_holds_with_channels(rng):
    X = rng.standard_normal((3, 2, 9, 9)).astype(np.float32)
    Y = dc.to_numpy(dc.corr2d_multi_in_out(X, rng.standard_normal((2, 2, 3, 3)).astype(np.float32)))
    L = dc.largest_curvature(X, (2, 2, 3, 3))
    with pytest.raises(dc.TrainingDivergedError, match=r"is too large for this data.*lr='auto'"):
        dc.train_kernel(X, Y, 3, lr=3 / L, epochs=50, init="zeros", in_channels=2, out_channels=2)


def test_largest_curvature_with_channels_is_the_top_eigenvalue_of_the_hessian(rng):
    """Built independently: the Hessian 2 A^T A of one output channel, A from the oracle applied to unit kernels."""
    X = rng.standard_normal((2, 2, 6, 5))
    shape = (1, 2, 2, 3)
    columns = []
    for index in np.ndindex(shape):
        unit = np.zeros(shape)
        unit[index] = 1.0
        columns.append(reference_multi_in_out(X, unit).ravel())
    A = np.stack(columns, axis=1)
    expected = np.linalg.eigvalsh(2 * A.T @ A).max()
    assert dc.largest_curvature(X, (4, 2, 2, 3)) == pytest.approx(expected, rel=1e-4)  # any number of outputs
    with_bias = np.linalg.eigvalsh(2 * np.c_[A, np.ones(len(A))].T @ np.c_[A, np.ones(len(A))]).max()
    assert dc.largest_curvature(X, (3, 2, 2, 3), bias=True) == pytest.approx(with_bias, rel=1e-4)
    batch = X[:, 0]
    A2 = np.stack([reference_corr2d(batch, np.eye(6)[i].reshape(2, 3)).ravel() for i in range(6)], axis=1)
    assert dc.largest_curvature(batch, (2, 3)) == pytest.approx(np.linalg.eigvalsh(2 * A2.T @ A2).max(), rel=1e-4)


# --------------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("call", "error", "pattern"),
    [
        (lambda: dc.corr2d_multi_in_out(np.ones((2, 3, 8, 8)), np.ones((5, 4, 3, 3))), ValueError,
         r"^X has 3 channels but K expects 4 \(K has shape \(5, 4, 3, 3\)\)$"),
        (lambda: dc.corr2d_multi_in_out(np.ones((8, 8, 4)), np.ones((6, 1, 3, 3)), groups=2,
                                        data_format="channels_last"), ValueError,
         r"^X has 4 channels but K expects 2 \(K has shape \(6, 1, 3, 3\), groups=2\)$"),
        (lambda: dc.corr2d_multi_in_out(np.ones((6, 8, 8)), np.ones((5, 2, 3, 3)), groups=3), ValueError,
         r"^groups=3 must divide both the input channels \(6\) and the output channels \(5\)$"),
        (lambda: dc.corr2d_multi_in_out(np.ones((6, 8, 8)), np.ones((4, 2, 3, 3)), groups=4), ValueError,
         r"groups=4 must divide both the input channels \(6\)"),
        (lambda: dc.corr2d_multi_in_out(np.ones((6, 8, 8)), np.ones((6, 1, 3, 3)), groups=0), ValueError,
         r"groups must be at least 1, got 0"),
        (lambda: dc.corr2d_multi_in_out(np.ones((6, 8, 8)), np.ones((6, 1, 3, 3)), groups=2.0), TypeError,
         r"groups must be an int, got 2.0"),
        (lambda: dc.corr2d_multi_in_out(np.ones((3, 8, 8)), np.ones((3, 3, 3))), ValueError,
         r"^K must be 4-D \(out_channels, in_channels // groups, height, width\) for corr2d_multi_in_out, got "
         r"shape \(3, 3, 3\)$"),
        (lambda: dc.corr2d_multi_in(np.ones((3, 8, 8)), np.ones((1, 3, 3, 3))), ValueError,
         r"^K must be 3-D \(channels, height, width\) for corr2d_multi_in, got shape \(1, 3, 3, 3\)$"),
        (lambda: dc.corr2d_multi_in_out_1x1(np.ones((3, 8, 8)), np.ones((2, 3, 3, 3))), ValueError,
         r"^K must be \(out_channels, in_channels, 1, 1\) or \(out_channels, in_channels\) for "
         r"corr2d_multi_in_out_1x1, got shape \(2, 3, 3, 3\)$"),
        (lambda: dc.corr2d_multi_in_out_1x1(np.ones((3, 8, 8)), np.ones((2, 4))), ValueError,
         r"^X has 3 channels but K expects 4"),
        (lambda: dc.corr2d_multi_in_out(np.ones((8, 8)), np.ones((1, 1, 3, 3))), ValueError,
         r"^X must have at least 3 dimensions \(\.\.\., channels, height, width\) for corr2d_multi_in_out, got "
         r"shape \(8, 8\)$"),
        (lambda: dc.corr2d_multi_in_out(np.ones((3, 8, 8)), np.ones((1, 3, 3, 3)), dilation=0), ValueError,
         r"^dilation must be at least 1 in each dimension, got 0$"),
        (lambda: dc.corr2d_multi_in_out(np.ones((3, 8, 8)), np.ones((1, 3, 3, 3)), dilation=4), ValueError,
         r"^kernel of shape \(3, 3\) with dilation \(4, 4\) spans \(9, 9\), which is larger than the input of "
         r"shape \(8, 8\)$"),
        (lambda: dc.corr2d_multi_in_out(np.ones((3, 8, 8)), np.ones((1, 3, 3, 3)), dilation=5, padding=1),
         ValueError, r"spans \(11, 11\), which is larger than the input of shape \(8, 8\) padded to \(10, 10\)$"),
        (lambda: dc.corr2d_multi_in_out(np.ones((3, 8, 8)), np.ones((1, 3, 3, 3)), data_format="NHWC"), ValueError,
         r"^data_format must be 'channels_first' or 'channels_last', got 'NHWC'$"),
        (lambda: dc.corr2d_multi_in_out(np.ones((3, 8, 8)), np.ones((1, 3, 3, 3)), method="im2col"), ValueError,
         r"^unknown method 'im2col'; choose one of 'auto', 'loop'"),
        (lambda: dc.corr2d_multi_in_out(np.ones((3, 0, 8)), np.ones((1, 3, 3, 3))), ValueError,
         r"^X must not be empty, got shape \(3, 0, 8\)$"),
        (lambda: dc.corr2d_multi_in_out(np.ones((3, 8, 8)), np.ones((1, 3, 3, 3)), stride=0), ValueError,
         r"^stride must be at least 1"),
    ],
)
def test_bad_channel_input_gets_one_line_naming_the_shapes(call, error, pattern):
    with pytest.raises(error, match=pattern) as info:
        call()
    assert "\n" not in str(info.value)
