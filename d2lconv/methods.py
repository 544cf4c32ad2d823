"""Vectorised cross-correlation, written once for every framework.

These functions use only what every supported tensor type has: basic slicing with a positive step,
indexing one element, ``*`` and ``+``. So they run unchanged on NumPy arrays, ``torch.Tensor``,
``tf.Tensor``, ``jax.Array`` and ``mxnet.numpy.ndarray``, and they are differentiable with each
framework's own autodiff. The FFT path also takes the framework's ``rfft2``, ``irfft2`` and ``flip``.

All of them compute the *valid* cross-correlation of an already padded input with a stride and a
dilation, on the last two axes of ``X`` (any leading axes, a batch or channels, are carried along):
``Y[..., i, j] = sum_{a, b} X[..., i * s_h + a * d_h, j * s_w + b * d_w] * K[a, b]``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

ONE = (1, 1)


def dilated_shape(kernel_shape: tuple[int, int], dilation: tuple[int, int] = ONE) -> tuple[int, int]:
    """The span of a kernel whose taps are ``dilation`` pixels apart: ``(k - 1) * d + 1`` per axis."""
    return tuple((k - 1) * d + 1 for k, d in zip(kernel_shape, dilation))


def valid_shape(
    input_shape: tuple[int, ...], kernel_shape: tuple[int, int], stride: tuple[int, int],
    dilation: tuple[int, int] = ONE,
) -> tuple[int, int]:
    """Output shape (height, width) of a valid cross-correlation with a stride and a dilation.

    ``input_shape`` may carry leading axes; only its last two are read.
    """
    span = dilated_shape(kernel_shape, dilation)
    return tuple((n - k) // s + 1 for n, k, s in zip(tuple(input_shape)[-2:], span, stride))


def _window(shape: tuple[int, int], stride: tuple[int, int]) -> tuple[int, int]:
    """How many input rows and columns one shifted slice spans."""
    return tuple((n - 1) * s + 1 for n, s in zip(shape, stride))


def _last_two(ndim: int, rows: slice, cols: slice) -> tuple[slice, ...]:
    """An index that keeps every leading axis and slices the last two (no Ellipsis: MXNet symbols lack it)."""
    return (slice(None),) * (ndim - 2) + (rows, cols)


def corr2d_direct(X: Any, K: Any, stride: tuple[int, int] = ONE, dilation: tuple[int, int] = ONE) -> Any:
    """Sum of shifted slices: one multiply-add of the whole output per kernel element.

    Needs no copy of the input beyond the output and one temporary; a fusing compiler (``jax.jit``,
    XLA in TensorFlow) turns the whole sum into a single pass over the input.
    """
    (h, w), (s_h, s_w), (d_h, d_w) = K.shape, stride, dilation
    rows, cols = _window(valid_shape(X.shape, K.shape, stride, dilation), stride)
    ndim = len(X.shape)
    Y = None
    for a in range(h):
        for b in range(w):
            index = _last_two(ndim, slice(a * d_h, a * d_h + rows, s_h), slice(b * d_w, b * d_w + cols, s_w))
            term = X[index] * K[a, b]
            Y = term if Y is None else Y + term
    return Y


def corr2d_separable(X: Any, column: Any, row: Any, stride: tuple[int, int] = ONE,
                     dilation: tuple[int, int] = ONE) -> Any:
    """Cross-correlation with the rank-one kernel ``outer(column, row)`` as two 1-D passes.

    Costs ``h + w`` multiply-adds per output element instead of ``h * w``.
    """
    h, w = column.shape[0], row.shape[0]
    (s_h, s_w), (d_h, d_w) = stride, dilation
    rows, cols = _window(valid_shape(X.shape, (h, w), stride, dilation), stride)
    ndim = len(X.shape)
    Z = None
    for b in range(w):
        term = X[_last_two(ndim, slice(None), slice(b * d_w, b * d_w + cols, s_w))] * row[b]
        Z = term if Z is None else Z + term
    Y = None
    for a in range(h):
        term = Z[_last_two(ndim, slice(a * d_h, a * d_h + rows, s_h), slice(None))] * column[a]
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


def fft_tile(kernel_shape: tuple[int, int], input_shape: tuple[int, int]) -> tuple[int, int]:
    """The FFT tile per axis for overlap-save: the whole axis up to twice about 8 kernel sizes (at least 256),
    else as many tiles of about that size as the axis needs, each cut to the smallest 5-smooth length that
    covers it.

    Why: many small transforms stay in the cache and cost fewer operations per pixel (the log of the tile,
    not of the image); 8 kernels wide spends at most an eighth of a tile on overlap.
    """
    tile = []
    for k, n in zip(kernel_shape, input_shape):
        target = max(256, 8 * k)
        if n <= 2 * target:
            tile.append(fast_length(n))
        else:
            count = -(-(n - k + 1) // (target - k + 1))
            tile.append(fast_length(-(-(n - k + 1) // count) + k - 1))
    return tuple(tile)


def dilate(K: Any, dilation: tuple[int, int], *, stack: Callable, reshape: Callable) -> Any:
    """``K`` (``(..., h, w)``) with ``d - 1`` zeros between neighbouring taps: the kernel a dilation spans.

    Built from a stack with zeros and a reshape, so it is differentiable in every framework (item assignment
    is not, in TensorFlow and MXNet). ``stack(tensors, axis)`` and ``reshape(x, shape)`` are the adapter's.
    """
    (d_h, d_w), ndim = dilation, len(K.shape)
    lead, (h, w) = tuple(K.shape[:-2]), tuple(K.shape[-2:])
    if d_h > 1:  # (..., h, d_h, w) -> (..., h * d_h, w), then drop the zero rows after the last tap
        K = reshape(stack([K] + [K * 0] * (d_h - 1), -2), lead + (h * d_h, w))
        K = K[_last_two(ndim, slice(0, (h - 1) * d_h + 1), slice(None))]
        h = (h - 1) * d_h + 1
    if d_w > 1:
        K = reshape(stack([K] + [K * 0] * (d_w - 1), -1), lead + (h, w * d_w))
        K = K[_last_two(ndim, slice(None), slice(0, (w - 1) * d_w + 1))]
    return K


def corr2d_fft(
    X: Any, K: Any, stride: tuple[int, int] = ONE, dilation: tuple[int, int] = ONE, *, rfft2: Callable,
    irfft2: Callable, flip: Callable, dilate: Callable | None = None,
) -> Any:
    """Cross-correlation through the framework's real FFT: O(HW log HW) whatever the kernel size.

    Convolving with the flipped kernel on a periodic grid at least as large as ``X`` leaves the valid
    part free of wrap-around, so no padding beyond a fast FFT length is needed. ``rfft2(x, grid)`` and
    ``irfft2(x, grid)`` transform the last two axes; a dilated kernel is first spread out by ``dilate``.
    """
    if dilation != ONE:
        K = dilate(K, dilation)
    h, w = K.shape
    grid = (fast_length(X.shape[-2]), fast_length(X.shape[-1]))
    spectrum = rfft2(X, grid) * rfft2(flip(K), grid)
    full = irfft2(spectrum, grid)
    rows, cols = _window(valid_shape(X.shape, K.shape, stride), stride)
    return full[_last_two(len(X.shape), slice(h - 1, h - 1 + rows, stride[0]), slice(w - 1, w - 1 + cols, stride[1]))]


def _tap(ndim: int, a: int, b: int, rows: int, cols: int, stride: tuple[int, int],
         dilation: tuple[int, int]) -> tuple[slice, ...]:
    """The index of the input that kernel tap ``(a, b)`` multiplies, over every output position."""
    (s_h, s_w), (d_h, d_w) = stride, dilation
    return _last_two(ndim, slice(a * d_h, a * d_h + rows, s_h), slice(b * d_w, b * d_w + cols, s_w))


def kernel_gradient(X: Any, G: Any, kernel_shape: tuple[int, int], stride: tuple[int, int] = ONE,
                    dilation: tuple[int, int] = ONE) -> Any:
    """The gradient of ``sum(G * corr2d(X, K))`` with respect to ``K``: one sum per kernel element.

    ``X`` and ``G`` may carry the same leading axes (a batch): the sums run over them too. This is the
    adjoint of :func:`corr2d_direct`; the NumPy layer uses it as its hand-written backward.
    """
    h, w = kernel_shape
    rows, cols = _window(G.shape[-2:], stride)
    ndim = len(X.shape)
    return np.array(
        [[(X[_tap(ndim, a, b, rows, cols, stride, dilation)] * G).sum() for b in range(w)] for a in range(h)],
        dtype=G.dtype,
    )


def input_gradient(
    G: np.ndarray, K: np.ndarray, input_shape: tuple[int, ...], stride: tuple[int, int] = ONE,
    dilation: tuple[int, int] = ONE,
) -> np.ndarray:
    """The gradient of ``sum(G * corr2d(X, K))`` with respect to ``X`` (NumPy): each output spreads ``G * K``.

    This is the adjoint of :func:`corr2d_direct` in the input (a "transposed convolution").
    """
    h, w = K.shape
    rows, cols = _window(G.shape[-2:], stride)
    grad = np.zeros(input_shape, dtype=G.dtype)
    for a in range(h):
        for b in range(w):
            grad[_tap(len(input_shape), a, b, rows, cols, stride, dilation)] += G * K[a, b]
    return grad
