"""Vectorised cross-correlation, written once for every framework.

These functions use only what every supported tensor type has: basic slicing with a positive step,
indexing one element, ``*`` and ``+``. So they run unchanged on NumPy arrays, ``torch.Tensor``,
``tf.Tensor``, ``jax.Array`` and ``mxnet.numpy.ndarray``, and they are differentiable with each
framework's own autodiff. The FFT path also takes the framework's ``rfft2``, ``irfft2`` and ``flip``.

All of them compute the *valid* cross-correlation of an already padded input with a stride:
``Y[i, j] = sum_{a, b} X[i * s_h + a, j * s_w + b] * K[a, b]``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def valid_shape(
    input_shape: tuple[int, int], kernel_shape: tuple[int, int], stride: tuple[int, int]
) -> tuple[int, int]:
    """Output shape of a valid cross-correlation with a stride."""
    return tuple((n - k) // s + 1 for n, k, s in zip(input_shape, kernel_shape, stride))


def _window(shape: tuple[int, int], stride: tuple[int, int]) -> tuple[int, int]:
    """How many input rows and columns one shifted slice spans."""
    return tuple((n - 1) * s + 1 for n, s in zip(shape, stride))


def corr2d_direct(X: Any, K: Any, stride: tuple[int, int] = (1, 1)) -> Any:
    """Sum of shifted slices: one multiply-add of the whole output per kernel element.

    Needs no copy of the input beyond the output and one temporary; a fusing compiler (``jax.jit``,
    XLA in TensorFlow) turns the whole sum into a single pass over the input.
    """
    h, w = K.shape
    s_h, s_w = stride
    rows, cols = _window(valid_shape(X.shape, K.shape, stride), stride)
    Y = None
    for a in range(h):
        for b in range(w):
            term = X[a:a + rows:s_h, b:b + cols:s_w] * K[a, b]
            Y = term if Y is None else Y + term
    return Y


def corr2d_separable(X: Any, column: Any, row: Any, stride: tuple[int, int] = (1, 1)) -> Any:
    """Cross-correlation with the rank-one kernel ``outer(column, row)`` as two 1-D passes.

    Costs ``h + w`` multiply-adds per output element instead of ``h * w``.
    """
    h, w = column.shape[0], row.shape[0]
    s_h, s_w = stride
    rows, cols = _window(valid_shape(X.shape, (h, w), stride), stride)
    Z = None
    for b in range(w):
        term = X[:, b:b + cols:s_w] * row[b]
        Z = term if Z is None else Z + term
    Y = None
    for a in range(h):
        term = Z[a:a + rows:s_h, :] * column[a]
        Y = term if Y is None else Y + term
    return Y


def rank_one_factors(kernel: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """``(column, row)`` with ``outer(column, row) == kernel`` if the kernel has rank one, else None.

    Checked in float64, in microseconds: the column and row through the largest element reproduce every
    element to within a few rounding errors of the kernel's own dtype (so a float32 outer product qualifies,
    and the separable result stays within float32 tolerance). ``[[1, -1]]``, Sobel and box kernels qualify;
    a random kernel does not.
    """
    kernel = np.asarray(kernel)
    eps = np.finfo(kernel.dtype if kernel.dtype.kind == "f" else np.float64).eps
    kernel = kernel.astype(np.float64)
    a, b = np.unravel_index(np.argmax(np.abs(kernel)), kernel.shape)
    pivot = kernel[a, b]
    if pivot == 0:  # the zero kernel: zeros times zeros
        return np.zeros(kernel.shape[0]), np.zeros(kernel.shape[1])
    column, row = kernel[:, b].copy(), kernel[a, :] / pivot
    if np.abs(kernel - np.outer(column, row)).max() > 4 * eps * abs(pivot) * max(kernel.shape):
        return None
    return column, row


def fast_length(n: int) -> int:
    """The smallest ``m >= n`` whose only prime factors are 2, 3 and 5 (fast for every FFT library)."""
    m = n
    while True:
        k = m
        for p in (2, 3, 5):
            while k % p == 0:
                k //= p
        if k == 1:
            return m
        m += 1


def corr2d_fft(
    X: Any, K: Any, stride: tuple[int, int] = (1, 1), *, rfft2: Callable, irfft2: Callable, flip: Callable
) -> Any:
    """Cross-correlation through the framework's real FFT: O(HW log HW) whatever the kernel size.

    Convolving with the flipped kernel on a periodic grid at least as large as ``X`` leaves the valid
    part free of wrap-around, so no padding beyond a fast FFT length is needed.
    """
    h, w = K.shape
    grid = (fast_length(X.shape[0]), fast_length(X.shape[1]))
    spectrum = rfft2(X, grid) * rfft2(flip(K), grid)
    full = irfft2(spectrum, grid)
    rows, cols = _window(valid_shape(X.shape, K.shape, stride), stride)
    return full[h - 1:h - 1 + rows:stride[0], w - 1:w - 1 + cols:stride[1]]


def kernel_gradient(X: Any, G: Any, kernel_shape: tuple[int, int], stride: tuple[int, int] = (1, 1)) -> Any:
    """The gradient of ``sum(G * corr2d(X, K))`` with respect to ``K``: one sum per kernel element.

    This is the adjoint of :func:`corr2d_direct`; the NumPy layer uses it as its hand-written backward.
    """
    h, w = kernel_shape
    s_h, s_w = stride
    rows, cols = _window(G.shape, stride)
    return np.array(
        [[(X[a:a + rows:s_h, b:b + cols:s_w] * G).sum() for b in range(w)] for a in range(h)], dtype=G.dtype
    )


def input_gradient(
    G: np.ndarray, K: np.ndarray, input_shape: tuple[int, int], stride: tuple[int, int] = (1, 1)
) -> np.ndarray:
    """The gradient of ``sum(G * corr2d(X, K))`` with respect to ``X`` (NumPy): each output spreads ``G * K``.

    This is the adjoint of :func:`corr2d_direct` in the input (a "transposed convolution").
    """
    h, w = K.shape
    s_h, s_w = stride
    rows, cols = _window(G.shape, stride)
    grad = np.zeros(input_shape, dtype=G.dtype)
    for a in range(h):
        for b in range(w):
            grad[a:a + rows:s_h, b:b + cols:s_w] += G * K[a, b]
    return grad
