"""The chapter's exercises and the step it promises, on the active backend."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
from conftest import assert_close, each_method, reference_corr2d

import d2lconv as dc
from d2lconv import kernels

GENERAL = [method for method in dc.METHODS if method != "separable"]


# --- strict convolution ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", each_method(GENERAL))
def test_convolve2d_is_scipys_valid_convolution(method, rng):
    X = rng.standard_normal((11, 9))
    K = rng.standard_normal((3, 4))
    assert_close(dc.convolve2d(X.astype(np.float32), K.astype(np.float32), method=method),
                 scipy.signal.convolve2d(X, K, mode="valid"), scale=float(np.abs(K).sum()) * 4)


def test_convolve2d_with_the_flipped_kernel_is_corr2d():
    X, K = dc.book.figure_input(), dc.book.figure_kernel()
    flipped = dc.to_numpy(K)[::-1, ::-1].copy()
    assert_close(dc.convolve2d(X, flipped), [[19.0, 25.0], [37.0, 43.0]])


def test_convolve2d_with_padding_and_stride(rng):
    X = rng.standard_normal((8, 8)).astype(np.float32)
    K = rng.standard_normal((3, 5)).astype(np.float32)
    Y = dc.convolve2d(X, K, padding=(0, 1), stride=(3, 4))
    assert tuple(dc.to_numpy(Y).shape) == (2, 2)
    full = scipy.signal.convolve2d(np.pad(X, ((0, 0), (1, 1))), K, mode="valid")
    assert_close(Y, full[::3, ::4], scale=float(np.abs(K).sum()) * 4)


# --- kernel design ------------------------------------------------------------------------------------------

def polynomial_image(degree, axis, shape=(9, 10)):
    rows, cols = np.indices(shape, dtype=np.float64)
    t = cols if axis == 1 else rows
    return 0.5 * t**degree + 2.0 * t ** max(degree - 1, 0) - 3.0


@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_derivative_kernels(order, axis):
    import math

    K = kernels.derivative(order, axis)
    assert tuple(dc.to_numpy(K).shape) == ((1, order + 1) if axis == 1 else (order + 1, 1))  # minimum size
    for degree in range(order):
        assert_close(dc.corr2d(polynomial_image(degree, axis), K), 0.0 * reference_corr2d(
            polynomial_image(degree, axis), dc.to_numpy(K)), scale=100.0)
    Y = dc.to_numpy(dc.corr2d(polynomial_image(order, axis), K))
    np.testing.assert_allclose(Y, 0.5 * math.factorial(order), rtol=1e-3)


def test_second_derivative_and_laplacian():
    assert dc.to_numpy(kernels.second_derivative(axis=1)).tolist() == [[1.0, -2.0, 1.0]]
    rows, cols = np.indices((7, 7), dtype=np.float64)
    assert_close(dc.corr2d(rows**2 + 3 * cols**2 + rows * cols, kernels.laplacian()), np.full((5, 5), 8.0))
    assert_close(dc.corr2d(5 * rows - cols + 1, kernels.laplacian()), np.zeros((5, 5)))


@pytest.mark.parametrize("blur", [lambda: kernels.box(3), lambda: kernels.box(5), lambda: kernels.gaussian(1.0),
                                  lambda: kernels.gaussian(0.7, size=5)], ids=["box3", "box5", "gauss1", "gauss5"])
def test_blurs_keep_the_mean_and_reduce_variance(blur, rng):
    K = blur()
    assert float(dc.to_numpy(K).sum()) == pytest.approx(1.0, abs=1e-6)
    assert_close(dc.corr2d(np.full((12, 12), 3.5), K), np.full(dc.to_numpy(dc.corr2d(np.ones((12, 12)), K)).shape,
                                                                  3.5))
    noise = rng.standard_normal((64, 64))
    blurred = dc.to_numpy(dc.corr2d(noise.astype(np.float32), K))
    assert blurred.var() < 0.5 * noise.var()
    assert abs(blurred.mean() - noise.mean()) < 0.05


@pytest.mark.parametrize("make", [kernels.sobel, kernels.prewitt])
def test_sobel_and_prewitt_measure_the_slope_along_their_axis(make):
    rows, cols = np.indices((8, 8), dtype=np.float64)
    weight = 8.0 if make is kernels.sobel else 6.0  # sum of the smoothing row times the central difference of 2
    assert_close(dc.corr2d(3 * cols + 5 * rows, make(axis=1)), np.full((6, 6), 3 * weight))
    assert_close(dc.corr2d(3 * cols + 5 * rows, make(axis=0)), np.full((6, 6), 5 * weight))
    assert_close(dc.corr2d(7 * rows, make(axis=1)), np.zeros((6, 6)))


@pytest.mark.parametrize("direction", [(1.0, 0.0), (0.0, 1.0), (1.0, 1.0), (1.0, -2.0), (3.0, 0.5)])
def test_direction_detector_sees_edges_across_v_and_not_along_it(direction):
    v = np.asarray(direction) / np.linalg.norm(direction)
    rows, cols = np.indices((16, 16), dtype=np.float64)
    K = kernels.edge_detector(direction)
    across = rows * v[0] + cols * v[1]  # changes along v: an edge across v
    along = rows * -v[1] + cols * v[0]  # changes only perpendicular to v
    assert_close(dc.corr2d(along, K), np.zeros((14, 14)), scale=16.0)
    assert_close(dc.corr2d(across, K), np.ones((14, 14)), scale=16.0)
    step = (across > np.median(across)).astype(np.float64)  # a sharp edge across v responds
    assert np.abs(dc.to_numpy(dc.corr2d(step, K))).max() > 0.25


def test_named_kernels_and_bad_names():
    assert dc.to_numpy(kernels.named("Edge")).tolist() == [[1.0, -1.0]]
    assert dc.to_numpy(kernels.named("edge-t")).tolist() == [[1.0], [-1.0]]
    for name in kernels.NAMED:
        assert dc.to_numpy(kernels.named(name)).ndim == 2
    with pytest.raises(ValueError, match="unknown kernel 'sharpen'; choose one of edge, edge-t"):
        kernels.named("sharpen")
    with pytest.raises(ValueError, match="order must be an int >= 1"):
        kernels.derivative(0)
    with pytest.raises(ValueError, match="axis must be 0"):
        kernels.sobel(axis=2)


# --- diagonal edges (exercise 1) ------------------------------------------------------------------------------

def test_what_the_book_kernel_does_to_a_diagonal_edge():
    X = dc.book.diagonal_image(6)
    K = dc.book.edge_kernel()
    Y = dc.to_numpy(dc.corr2d(X, K))
    # [[1, -1]] sees the diagonal as a staircase of vertical edges: a 1 on the diagonal in every row but the
    # last, whose step is at the right border (outside the 6x5 output)
    assert Y.shape == (6, 5)
    assert (Y == np.eye(6, 5)).all()
    # the transposed image is the mirrored staircase: the edges flip sign and sit one row lower
    Yt = dc.to_numpy(dc.corr2d(dc.transpose(X), K))
    assert (Yt == -np.eye(6, 5, k=-1)).all()
    # the transposed kernel finds the same diagonal as horizontal edges, with the opposite sign
    Ykt = dc.to_numpy(dc.corr2d(X, dc.transpose(K)))
    assert Ykt.shape == (5, 6) and (Ykt == -np.eye(5, 6, k=1)).all()


# --- convolution as a matrix product (exercise 4) ---------------------------------------------------------------

@pytest.mark.parametrize(("padding", "stride"), [(0, 1), (1, 1), (1, 2), ((0, 1), (3, 4)), ("same", 1)])
def test_corr2d_matrix_times_the_flat_input_is_corr2d(padding, stride, rng):
    X = rng.standard_normal((8, 7)).astype(np.float32)
    K = rng.standard_normal((3, 5)).astype(np.float32)
    Y = dc.to_numpy(dc.corr2d(X, K, padding=padding, stride=stride))
    M = dc.corr2d_matrix(K, X.shape, padding=padding, stride=stride)
    assert tuple(dc.to_numpy(M).shape) == (Y.size, X.size)
    assert_close(dc.to_numpy(M) @ X.ravel(), Y.ravel(), scale=float(np.abs(K).sum()) * 4)


def test_sparse_corr2d_matrix_holds_only_the_taps(rng):
    X = rng.standard_normal((40, 30)).astype(np.float32)
    K = rng.standard_normal((3, 3)).astype(np.float32)
    S = dc.corr2d_matrix(K, X.shape, sparse=True)
    dense = dc.to_numpy(dc.corr2d_matrix(K, X.shape))
    assert_close(sparse_to_dense(S), dense)
    assert stored_values(S) == 38 * 28 * 9  # no zeros stored


def sparse_to_dense(S):
    for method in ("toarray", "todense", "to_dense"):  # SciPy, JAX BCOO, PyTorch
        if hasattr(S, method):
            return np.asarray(dc.to_numpy(getattr(S, method)()))
    if type(S).__module__.startswith("mxnet."):
        return S.asnumpy()  # an MXNet CSRNDArray converts to a dense NumPy array directly
    import tensorflow as tf  # the only framework left

    return tf.sparse.to_dense(tf.sparse.reorder(S)).numpy()


def stored_values(S):
    for attr in ("nnz", "nse"):
        if hasattr(S, attr):
            return int(getattr(S, attr))
    if hasattr(S, "_nnz"):
        return int(S.coalesce()._nnz())
    if hasattr(S, "data"):
        return int(np.asarray(dc.to_numpy(S.data)).size)
    return int(S.values.shape[0])


# --- exercise 3: gradients of the book's loop and of d2lconv's layer ----------------------------------------------

LOOP_DIFFERENTIABLE = {"numpy": False, "torch": True, "jax": True, "tensorflow": False, "mxnet": False, "dask": False}


def test_which_frameworks_differentiate_the_books_loop():
    report = dc.check_gradients()
    assert report.backend == dc.get_backend()
    assert report.loop_differentiable == LOOP_DIFFERENTIABLE[dc.get_backend()], report.loop_message
    assert report.layer_differentiable
    if dc.get_backend() in ("mxnet", "tensorflow"):
        assert "not differentiable" in report.loop_message


# --- receptive fields -----------------------------------------------------------------------------------------

def test_two_stacked_2x2_layers_see_3x3():
    assert dc.receptive_field([2, 2]).size == (3, 3)
    assert dc.receptive_field([2]).size == (2, 2)
    assert dc.receptive_field([(3, 2), (3, 2), 3]).size == (15, 15)
    assert dc.receptive_field([((5, 3), (2, 1), (2, 1))]).start == (-2, -1)


@pytest.mark.parametrize(
    "layers",
    [[2, 2], [(3, 2), 3], [((3, 5), (2, 1)), (2, 2)], [(3, 1, 1), (3, 2, 1)], [(2, 2), (2, 2), (2, 2)]],
)
def test_receptive_field_is_where_the_gradient_is_nonzero(layers, rng):
    """Chain the framework's gradients back from one output element through the stack."""
    from d2lconv.receptive import pair

    X = rng.random((15, 16)).astype(np.float32)
    inputs, kernels_ = [X], []
    for layer in layers:
        kernel, stride, padding = (tuple(layer) + (1, 0))[:3] if isinstance(layer, tuple) else (layer, 1, 0)
        K = rng.random(pair(kernel, "k", minimum=1)).astype(np.float32) + 0.5  # positive: no cancellations
        kernels_.append((K, stride, padding))
        inputs.append(dc.to_numpy(dc.corr2d(inputs[-1], K, stride=stride, padding=padding)))
    out = inputs[-1]
    i, j = out.shape[0] // 2, out.shape[1] // 2
    G = np.zeros_like(out)
    G[i, j] = 1.0
    for (K, stride, padding), x in zip(reversed(kernels_), reversed(inputs[:-1])):
        G, _ = dc.corr2d_gradients(x, K, G, stride=stride, padding=padding)
    rows, cols = np.nonzero(G)
    field = dc.receptive_field(layers)
    want_rows, want_cols = field.region(i, j)
    assert (rows.min(), rows.max() + 1) == (max(want_rows.start, 0), min(want_rows.stop, X.shape[0]))
    assert (cols.min(), cols.max() + 1) == (max(want_cols.start, 0), min(want_cols.stop, X.shape[1]))
