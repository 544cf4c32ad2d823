"""corr2d on the active backend: the book's facts with every method, and random shapes against an oracle."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_close, each_method, needs_float64, reference_corr2d

import d2lconv as dc
from d2lconv._backend import active_adapter

# The separable method only takes rank-one kernels; it is tested on those (and on [[1, -1]]).
GENERAL = [method for method in dc.METHODS if method != "separable"]


def native(x):
    return active_adapter().is_native(x)


@pytest.mark.parametrize("method", each_method(GENERAL))
def test_the_figure(method):
    Y = dc.corr2d(dc.book.figure_input(), dc.book.figure_kernel(), method=method)
    assert native(Y)
    assert_close(Y, [[19.0, 25.0], [37.0, 43.0]])


@pytest.mark.parametrize("method", each_method(GENERAL))
def test_the_figure_from_plain_lists(method):
    Y = dc.corr2d([[0.0, 1, 2], [3, 4, 5], [6, 7, 8]], np.array([[0, 1], [2, 3]]), method=method)
    assert native(Y)
    assert dc.to_numpy(Y).dtype == np.float32
    assert_close(Y, dc.book.FIGURE_OUTPUT)


@pytest.mark.parametrize("method", each_method())
def test_edges_and_the_transposed_image(method):
    X, K = dc.book.edge_image(), dc.book.edge_kernel()
    Y = dc.corr2d(X, K, method=method)
    assert_close(Y, np.tile(dc.book.EDGE_ROW, (6, 1)))
    Z = dc.to_numpy(dc.corr2d(dc.transpose(X), K, method=method))
    assert Z.shape == (8, 5)
    assert_close(Z, np.zeros((8, 5)))


SHAPES = [((7, 9), (3, 2)), ((1, 12), (1, 3)), ((12, 1), (4, 1)), ((5, 6), (5, 6)), ((1, 1), (1, 1)),
          ((16, 13), (3, 3)), ((20, 20), (9, 9)), ((33, 17), (1, 1))]


@pytest.mark.parametrize("method", each_method(GENERAL))
@pytest.mark.parametrize(("x_shape", "k_shape"), SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_random_shapes_against_the_reference(method, x_shape, k_shape, rng):
    X = rng.standard_normal(x_shape).astype(np.float32)
    K = rng.standard_normal(k_shape).astype(np.float32)
    Y = dc.corr2d(dc.tensor(X), dc.tensor(K), method=method)
    assert native(Y)
    assert_close(Y, reference_corr2d(X, K), scale=float(np.abs(K).sum()) * 4)


@pytest.mark.parametrize("method", each_method())
def test_rank_one_kernels(method, rng):
    """Sobel, box and an outer product: the kernels the separable path takes."""
    X = rng.standard_normal((24, 19)).astype(np.float32)
    kernels = [np.array([[1.0, 0, -1], [2, 0, -2], [1, 0, -1]]), np.full((5, 5), 1 / 25),
               np.outer(rng.standard_normal(4), rng.standard_normal(6))]
    for K in kernels:
        assert_close(dc.corr2d(X, K, method=method), reference_corr2d(X, K), scale=float(np.abs(K).sum()) * 4)


def test_separable_refuses_a_kernel_that_is_not_rank_one():
    with pytest.raises(ValueError, match="rank-one"):
        dc.corr2d(np.ones((4, 4)), [[1.0, 2], [3, 4]], method="separable")


def test_auto_matches_the_reference_on_a_large_kernel(rng):
    X = rng.standard_normal((80, 70)).astype(np.float32)
    K = rng.standard_normal((31, 31)).astype(np.float32)
    assert_close(dc.corr2d(X, K), reference_corr2d(X, K), scale=float(np.abs(K).sum()) * 4)


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8, np.bool_, np.float16])
def test_integer_bool_and_half_inputs_compute_in_float32(dtype):
    X = np.arange(12).reshape(3, 4).astype(dtype)
    Y = dc.corr2d(X, np.ones((2, 2), dtype=dtype))
    assert dc.to_numpy(Y).dtype == np.float32
    assert_close(Y, reference_corr2d(X.astype(np.float64), np.ones((2, 2))))
    assert dc.to_numpy(dc.tensor(X)).dtype == np.float32


def bfloat16_tensor(values):
    """``values`` as a bfloat16 tensor of the active framework (NumPy and MXNet have no such type)."""
    backend = dc.get_backend()
    if backend == "torch":
        import torch

        return torch.tensor(values, dtype=torch.bfloat16)
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.constant(values, dtype=tf.bfloat16)
    if backend == "jax":
        import jax.numpy as jnp

        return jnp.asarray(values, dtype=jnp.bfloat16)
    raise TypeError(f"{dc.get_backend()} has no bfloat16 type")


@pytest.mark.xfail(dc.get_backend() in ("numpy", "mxnet", "dask"), raises=TypeError, strict=True,
                   reason="NumPy and MXNet's numpy arrays have no bfloat16 dtype (nor Dask's chunks, NumPy arrays)")
@pytest.mark.parametrize("method", each_method(("auto", "direct", "fft", "loop")))
def test_bfloat16_tensors_compute_in_float32(method):
    """They were refused with "expected real numbers, got dtype bfloat16"."""
    values = np.arange(20.0).reshape(4, 5) / 4  # exact in bfloat16
    Y = dc.corr2d(bfloat16_tensor(values), bfloat16_tensor([[1.0, -0.5], [0.25, 2.0]]), method=method)
    assert dc.to_numpy(Y).dtype == np.float32
    assert_close(Y, reference_corr2d(values, [[1.0, -0.5], [0.25, 2.0]]))
    assert dc.to_numpy(bfloat16_tensor(values)).astype(np.float32).tolist() == values.tolist()


@needs_float64
@pytest.mark.parametrize("method", each_method(("direct", "fft", "loop")))
def test_float64_stays_float64(method, rng):
    X = rng.standard_normal((9, 8))
    K = rng.standard_normal((3, 3))
    Y = dc.corr2d(X, K, method=method)
    assert dc.to_numpy(Y).dtype == np.float64
    np.testing.assert_allclose(dc.to_numpy(Y), reference_corr2d(X, K), rtol=1e-10, atol=1e-10)
    # a float32 kernel with a float64 input computes in float64 too
    assert dc.to_numpy(dc.corr2d(X, K.astype(np.float32))).dtype == np.float64


def test_native_tensors_are_not_copied_into_another_dtype():
    X = dc.tensor(np.arange(20.0).reshape(4, 5).tolist())
    assert dc.to_numpy(X).dtype == np.float32
    assert native(dc.zeros((2, 3))) and dc.to_numpy(dc.zeros((2, 3))).tolist() == [[0.0] * 3] * 2
    assert dc.to_numpy(dc.ones((2, 1))).tolist() == [[1.0], [1.0]]
    assert dc.to_numpy(dc.transpose(X)).tolist() == np.arange(20.0).reshape(4, 5).T.tolist()


def test_to_numpy_accepts_lists_arrays_and_tensors():
    assert dc.to_numpy([[1, 2]]).tolist() == [[1, 2]]
    assert dc.to_numpy(np.eye(2)).tolist() == [[1, 0], [0, 1]]
    assert dc.to_numpy(dc.tensor([[1.5]])).tolist() == [[1.5]]


@pytest.mark.parametrize(
    ("padding", "stride", "kernel", "expected"),
    [(1, 1, (3, 3), (8, 8)), ((2, 1), 1, (5, 3), (8, 8)), (1, 2, (3, 3), (4, 4)), ((0, 1), (3, 4), (3, 5), (2, 2)),
     ("same", 1, (4, 3), (8, 8)), ("valid", 2, (3, 3), (3, 3)), ("same", 3, (2, 2), (3, 3))],
)
@pytest.mark.parametrize("method", each_method(GENERAL))
def test_padding_and_stride_shapes_and_values(method, padding, stride, kernel, expected, rng):
    """The book's next section: (8, 8), (8, 8), (4, 4) and (2, 2) on an 8x8 input (its TF tab says (2, 1))."""
    from d2lconv._inputs import pad_amounts, pair

    X = rng.standard_normal((8, 8)).astype(np.float32)
    K = rng.standard_normal(kernel).astype(np.float32)
    Y = dc.corr2d(X, K, padding=padding, stride=stride, method=method)
    assert tuple(dc.to_numpy(Y).shape) == expected
    strides = pair(stride, "stride", minimum=1)
    assert_close(Y, reference_corr2d(X, K, pad_amounts(padding, X.shape, K.shape, strides), strides),
                 scale=float(np.abs(K).sum()) * 4)
