"""The hand-written Conv2D layer and the gradients of corr2d, checked against finite differences."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_close, each_method, numeric_gradient, reference_corr2d

import d2lconv as dc
from d2lconv._backend import active_adapter

DIFFERENTIABLE = [method for method in dc.METHODS if method not in ("loop", "separable")]


def test_layer_is_native_with_named_parameters():
    layer = dc.Conv2D((2, 3), seed=0)
    weight, bias = dc.layer_gradients(layer, np.ones((4, 5)), np.ones((3, 3))).values()
    assert weight.shape == (2, 3)
    assert bias.shape == (1,)
    assert type(layer).__name__ == "Conv2D"
    assert type(layer).__module__.startswith(f"d2lconv.backends.{dc.get_backend()}.")


def test_layer_gradients_refuse_a_grad_output_of_the_wrong_shape():
    layer = dc.Conv2D((2, 3), seed=0)
    with pytest.raises(ValueError, match=r"grad_output has shape \(3, 2\) but the layer gives \(3, 3\)"):
        dc.layer_gradients(layer, np.ones((4, 5)), np.ones((3, 2)))


def _parameters(layer):
    """Weight and bias of a layer as NumPy arrays (each framework stores them its own way)."""
    return active_adapter().layer_parameters(layer)


@pytest.mark.parametrize("bias", [True, False])
def test_layer_forward_is_corr2d_plus_bias(bias, rng):
    layer = dc.Conv2D((3, 2), bias=bias, seed=3)
    x = rng.standard_normal((6, 5)).astype(np.float32)
    y = layer(dc.tensor(x))
    assert active_adapter().is_native(y)
    params = _parameters(layer)
    assert set(params) == ({"weight", "bias"} if bias else {"weight"})
    expected = reference_corr2d(x, params["weight"]) + (params["bias"][0] if bias else 0.0)
    assert_close(y, expected)


def test_same_seed_same_layer_and_different_seeds_differ():
    first, again, other = (_parameters(dc.Conv2D((3, 3), seed=s))["weight"] for s in (7, 7, 8))
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_layer_with_padding_and_stride(rng):
    layer = dc.Conv2D((3, 5), padding=(0, 1), stride=(3, 4), seed=0)
    x = rng.standard_normal((8, 8)).astype(np.float32)
    y = layer(x)
    assert tuple(dc.to_numpy(y).shape) == (2, 2)
    params = _parameters(layer)
    assert_close(y, reference_corr2d(x, params["weight"], ((0, 0), (1, 1)), (3, 4)) + params["bias"][0])


@pytest.mark.parametrize("bias", [True, False])
def test_layer_gradient_matches_finite_differences(bias, rng):
    layer = dc.Conv2D((2, 3), bias=bias, seed=1)
    x = rng.standard_normal((5, 6))
    G = rng.standard_normal((4, 4))
    grads = dc.layer_gradients(layer, x.astype(np.float32), G.astype(np.float32))
    weight = _parameters(layer)["weight"].astype(np.float64)
    expected = numeric_gradient(lambda w: float((G * reference_corr2d(x, w)).sum()), weight)
    assert_close(grads["weight"], expected, scale=float(np.abs(G).sum() * np.abs(x).max()))
    if bias:
        assert_close(grads["bias"], [G.sum()], scale=float(np.abs(G).sum()))
    else:
        assert "bias" not in grads


@pytest.mark.parametrize("method", each_method(DIFFERENTIABLE))
@pytest.mark.parametrize(("padding", "stride"), [(0, 1), (1, 2), ((2, 0), (1, 3))])
def test_corr2d_gradients_match_finite_differences(method, padding, stride, rng):
    from d2lconv._inputs import pad_amounts, pair

    x = rng.standard_normal((7, 8))
    k = rng.standard_normal((3, 2))
    strides = pair(stride, "stride", minimum=1)
    pads = pad_amounts(padding, x.shape, k.shape, strides)
    G = rng.standard_normal(reference_corr2d(x, k, pads, strides).shape)

    def loss(x_, k_):
        return float((G * reference_corr2d(x_, k_, pads, strides)).sum())

    dX, dK = dc.corr2d_gradients(x.astype(np.float32), k.astype(np.float32), G.astype(np.float32),
                                 method=method, padding=padding, stride=stride)
    scale = float(np.abs(G).sum() * max(np.abs(x).max(), np.abs(k).max()))
    assert_close(dX, numeric_gradient(lambda v: loss(v, k), x), scale=scale)
    assert_close(dK, numeric_gradient(lambda v: loss(x, v), k), scale=scale)


def test_gradient_with_a_rank_one_kernel_goes_to_the_kernel_too(rng):
    """auto must not take the separable path for a kernel being differentiated (its gradient would be wrong)."""
    x = rng.standard_normal((9, 9))
    k = np.outer([1.0, 2.0, 1.0], [1.0, 0.0, -1.0])
    G = rng.standard_normal((7, 7))
    _, dK = dc.corr2d_gradients(x.astype(np.float32), k.astype(np.float32), G.astype(np.float32))
    expected = numeric_gradient(lambda v: float((G * reference_corr2d(x, v)).sum()), k)
    assert_close(dK, expected, scale=float(np.abs(G).sum() * np.abs(x).max()))


def test_gradient_output_shape_is_checked():
    with pytest.raises(ValueError, match=r"grad_output has shape \(3, 3\) but corr2d gives \(2, 2\)"):
        dc.corr2d_gradients(np.ones((3, 3)), np.ones((2, 2)), np.ones((3, 3)))


def input_gradient_only(X, K, G, method):
    """The gradient of ``sum(G * corr2d(X, K))`` with respect to X alone, recorded the framework's own way (the
    kernel is a constant: no gradient buffer, not watched, not traced)."""
    backend = dc.get_backend()
    X, K, G = (dc.tensor(np.asarray(a, dtype=np.float32)) for a in (X, K, G))
    if backend == "torch":
        X.requires_grad_()
        (dc.corr2d(X, K, method=method) * G).sum().backward()
        return X.grad
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(X)
            loss = tf.reduce_sum(dc.corr2d(X, K, method=method) * G)
        return tape.gradient(loss, X)
    if backend == "jax":
        import jax

        return jax.grad(lambda x: (dc.corr2d(x, K, method=method) * G).sum())(X)
    if backend == "mxnet":
        from mxnet import autograd

        X.attach_grad()
        with autograd.record():
            loss = (dc.corr2d(X, K, method=method) * G).sum()
        loss.backward()
        return X.grad
    return dc.corr2d_gradients(X, K, G, method=method)[0]  # NumPy: the analytic adjoint


def test_separable_with_a_constant_kernel_while_the_input_is_differentiated(rng):
    """MXNet refused this inside autograd.record() ("needs a fixed kernel"); every framework allows it."""
    x = rng.standard_normal((9, 10))
    k = np.outer([1.0, 2.0, 1.0], [1.0, 0.0, -1.0])
    G = rng.standard_normal((7, 8))
    dX = input_gradient_only(x, k, G, "separable")
    expected = numeric_gradient(lambda v: float((G * reference_corr2d(v, k)).sum()), x)
    assert_close(dX, expected, scale=float(np.abs(G).sum() * np.abs(k).max()))


@pytest.mark.parametrize("method", each_method(DIFFERENTIABLE))
@pytest.mark.parametrize(("lead", "stride", "dilation"), [((), (1, 1), (1, 1)), ((2,), (2, 3), (1, 1)),
                                                           ((), (1, 2), (2, 1)), ((2, 1), (3, 1), (2, 3))])
def test_gradients_of_a_large_kernel_are_the_adjoints(method, lead, stride, dilation, rng):
    """A 9x9 kernel (81 taps: some frameworks take other gradient formulas or loops for large kernels) on a
    stack of images, against the float64 oracle: ``dK[a, b]`` is ``sum(G * corr2d(X, E_ab))`` for the unit
    kernel ``E_ab``, and ``dX`` must satisfy ``<dX, V> = sum(G * corr2d(V, K))`` for random ``V``."""
    X = rng.standard_normal((*lead, 40, 37)).astype(np.float32)
    K = rng.standard_normal((9, 9)).astype(np.float32)
    Y = reference_corr2d(X, K, stride=stride, dilation=dilation)
    G = rng.standard_normal(Y.shape).astype(np.float32)
    dX, dK = dc.corr2d_gradients(X, K, G, method=method, stride=stride, dilation=dilation)

    def corr(X_, K_):
        return reference_corr2d(X_, K_, stride=stride, dilation=dilation)

    G64 = G.astype(np.float64)
    units = np.eye(81).reshape(81, 9, 9)
    expected_dK = np.array([float((G64 * corr(X, unit)).sum()) for unit in units]).reshape(9, 9)
    scale = float(np.abs(G).sum())
    assert_close(dK, expected_dK, scale=scale * float(np.abs(X).max()))
    dX = dc.to_numpy(dX).astype(np.float64)
    assert dX.shape == X.shape
    for V in rng.standard_normal((3, *X.shape)):
        assert_close((dX * V).sum(), (G64 * corr(V, K)).sum(), scale=scale * float(np.abs(K).sum() * np.abs(V).max()))


def forward_derivative(f, X, K, dX, dK):
    """The directional derivative of ``f`` at ``(X, K)`` along ``(dX, dK)``, by the framework's forward mode."""
    backend = dc.get_backend()
    X, K, dX, dK = (dc.tensor(a) for a in (X, K, dX, dK))
    if backend == "jax":
        import jax

        return jax.jvp(f, (X, K), (dX, dK))[1]
    if backend == "torch":
        import torch

        return torch.func.jvp(f, (X, K), (dX, dK))[1]
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.autodiff.ForwardAccumulator((X, K), (dX, dK)) as accumulator:
            Y = f(X, K)
        return accumulator.jvp(Y)
    raise NotImplementedError(f"{backend} has no forward-mode autodiff")


NO_FORWARD_MODE = {"numpy": "NumPy has no autodiff", "mxnet": "MXNet's autograd has reverse mode only",
                   "dask": "Dask has no autodiff"}


@pytest.mark.xfail(dc.get_backend() in NO_FORWARD_MODE, raises=NotImplementedError, strict=True,
                   reason=NO_FORWARD_MODE.get(dc.get_backend(), ""))
@pytest.mark.parametrize("method", each_method(DIFFERENTIABLE))
@pytest.mark.parametrize(("lead", "size", "k", "stride", "dilation"), [
    ((), (30, 27), 2, (1, 1), (1, 1)), ((2,), (30, 27), 3, (2, 1), (1, 2)), ((), (30, 27), 9, (1, 1), (1, 1)),
    ((2,), (30, 27), 7, (1, 2), (2, 1)), ((), (300, 280), 5, (1, 1), (1, 1)), ((2,), (160, 150), 3, (2, 1), (1, 1))])
def test_forward_mode_derivative_is_the_linear_map(method, lead, size, k, stride, dilation, rng):
    """``jax.jvp`` (and the other frameworks' forward modes) through corr2d gives
    ``corr2d(dX, K) + corr2d(X, dK)``, for small kernels and for those beyond ~30 taps, and on images large
    enough for the banded, threaded and compiled paths (which autodiff cannot see: a tangent must keep them away)."""
    X, dX = rng.standard_normal((2, *lead, *size)).astype(np.float32)
    K, dK = rng.standard_normal((2, k, k)).astype(np.float32)
    tangent = forward_derivative(lambda x, w: dc.corr2d(x, w, method=method, stride=stride, dilation=dilation),
                                 X, K, dX, dK)
    expected = (reference_corr2d(dX, K, stride=stride, dilation=dilation)
                + reference_corr2d(X, dK, stride=stride, dilation=dilation))
    assert_close(tangent, expected, scale=float(np.abs(X).max() * np.abs(K).sum() * 2))


@pytest.mark.xfail(dc.get_backend() in NO_FORWARD_MODE, raises=NotImplementedError, strict=True,
                   reason=NO_FORWARD_MODE.get(dc.get_backend(), ""))
@pytest.mark.parametrize("method", ["direct", "separable"])
def test_forward_mode_through_a_separable_kernel_on_a_large_image(method, rng):
    """The separable and banded paths on a tangent of the input alone: ``corr2d(dX, K)``."""
    X, dX = rng.standard_normal((2, 300, 280)).astype(np.float32)
    K = np.outer(rng.standard_normal(5), rng.standard_normal(3)).astype(np.float32)
    fixed = dc.tensor(K)  # a constant of the function: separable factorises only a kernel nobody differentiates
    tangent = forward_derivative(lambda x, _: dc.corr2d(x, fixed, method=method), X, K, dX, np.zeros_like(K))
    assert_close(tangent, reference_corr2d(dX, K), scale=float(np.abs(dX).max() * np.abs(K).sum() * 2))


def vectorised_map(f, X):
    """``f`` mapped over the first axis of ``X`` by the framework's own vectorising map."""
    backend = dc.get_backend()
    X = dc.tensor(X)
    if backend == "jax":
        import jax

        return jax.vmap(f)(X)
    if backend == "torch":
        import torch

        return torch.func.vmap(f)(X)
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.vectorized_map(f, X)
    raise NotImplementedError(f"{backend} has no vectorising map")


NO_VMAP = {"numpy": "NumPy has no vectorising map", "mxnet": "MXNet has no vectorising map",
           "dask": "Dask has no vectorising map (its arrays are batched by their chunks)"}


@pytest.mark.xfail(dc.get_backend() in NO_VMAP, raises=NotImplementedError, strict=True,
                   reason=NO_VMAP.get(dc.get_backend(), ""))
@pytest.mark.parametrize("size", [(12, 11), (300, 280)])
def test_the_frameworks_vectorising_map_gives_the_batched_result(size, rng):
    """``jax.vmap``/``torch.func.vmap``/``tf.vectorized_map`` over corr2d: each image as the batch gives it."""
    X = rng.standard_normal((3, *size)).astype(np.float32)
    K = rng.standard_normal((3, 3)).astype(np.float32)
    fixed = dc.tensor(K)
    Y = vectorised_map(lambda x: dc.corr2d(x, fixed), X)
    assert_close(Y, reference_corr2d(X, K), scale=float(np.abs(X).max() * np.abs(K).sum()))


@pytest.mark.parametrize("method", each_method(("direct", "native")))
@pytest.mark.parametrize("k", [3, 7, 15])
def test_input_gradient_is_exactly_zero_outside_the_window(method, k, rng):
    """One output's gradient reaches exactly the k x k input pixels of its window, and exactly zero elsewhere
    (a large kernel's gradient must not go through an FFT, whose rounding would leave noise everywhere)."""
    X = rng.standard_normal((40, 40)).astype(np.float32)
    K = (rng.random((k, k)) + 0.5).astype(np.float32)
    G = np.zeros((40 - k + 1, 40 - k + 1), np.float32)
    G[5, 9] = 1.0
    dX, _ = dc.corr2d_gradients(X, K, G, method=method)
    rows, cols = np.nonzero(dX)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (5, 5 + k - 1, 9, 9 + k - 1)
    assert_close(dX[5:5 + k, 9:9 + k], K)
