"""What one block computes: plain functions of NumPy arrays, run by Dask's workers (threads or processes).

Each takes the *window* of an overlapped block (the input its output block needs, see ``tiling``) and
returns NumPy: a block of a correlation, computed by the chunk backend's own fast path, or a vector of
sums (a loss, the gradient of a kernel) that Dask adds up over all blocks. Sums are accumulated in float64,
so a sum over 10^9 pixels is as accurate as one over a block.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from d2lconv import methods
from d2lconv._auto import choose_method
from d2lconv._backend import load_adapter
from d2lconv._corr import correlate
from d2lconv.backends.numpy import kernels as numpy_kernels

# Products of this many bytes are formed and summed at a time: small enough to stay in the CPU cache.
_BAND_BYTES = 1 << 20


def correlate_window(window: np.ndarray, *, backend: str, method: str, kernel: np.ndarray,
                     stride: tuple[int, int], out_dtype: Any, dilation: tuple[int, int] = (1, 1),
                     out: np.ndarray | None = None) -> np.ndarray:
    """``correlate(backend, window, kernel, method, stride, dilation)``: the chunk backend's whole path on one
    window (``(..., H, W)``), ``auto``'s choice and exactness certificate included.

    ``out``, if given, receives the result: NumPy's banded direct and separable methods write straight into
    it (no copy of a block's output), other results are copied in.
    """
    adapter = load_adapter(backend)
    if adapter.NAME == "numpy" and out is not None:
        batch = int(np.prod(window.shape[:-2], dtype=np.int64))
        chosen = choose_method(adapter, window.shape[-2:], kernel, stride, dilation, batch) if method == "auto" \
            else method
        if chosen == "direct":
            return adapter.corr2d_direct(window, kernel, stride, dilation, out=out)
        factors = methods.rank_one_factors(kernel) if chosen == "separable" else None
        if factors is not None:
            column, row = (f.astype(kernel.dtype) for f in factors)
            return adapter.corr2d_separable(window, column, row, stride, dilation, out=out)
    if adapter.NAME != "numpy":  # frameworks want their own contiguous, writable copy
        window = np.require(window, requirements=["C", "W"])
    Y = adapter.to_numpy(correlate(adapter, window, kernel, method=method, stride=stride, dilation=dilation))
    if out is None:
        return np.asarray(Y, dtype=out_dtype)
    out[...] = Y
    return out


def correlate_channels_window(window: np.ndarray, *, backend: str, method: str, kernel: np.ndarray,
                              stride: tuple[int, int], dilation: tuple[int, int], groups: int,
                              out: np.ndarray | None = None) -> np.ndarray:
    """``correlate_channels(backend, window, kernel, ...)``: the chunk backend's whole ``corr2d_multi_in_out``
    on one channels-first window ``(..., C, H, W)``, ``auto``'s choice included; into ``out`` if given."""
    from d2lconv._channels import correlate_channels

    adapter = load_adapter(backend)
    if adapter.NAME != "numpy":  # frameworks want their own contiguous, writable copy
        window = np.require(window, requirements=["C", "W"])
    Y = np.asarray(adapter.to_numpy(correlate_channels(adapter, window, kernel, groups=groups, method=method,
                                                       stride=stride, dilation=dilation)), dtype=window.dtype)
    if out is None:
        return Y
    out[...] = Y
    return out


def kernel_gradient(window: np.ndarray, G: np.ndarray, kernel_shape: tuple[int, int],
                    stride: tuple[int, int] = (1, 1)) -> np.ndarray:
    """``d sum(G * corr2d(window, K)) / dK`` in float64: the cross-correlation of the input with ``G``.

    Element ``(a, b)`` is ``sum_ij window[i s_h + a, j s_w + b] G[i, j]``: one multiply-add pass per kernel
    element, band by band in the cache; above NumPy's FFT break-even (``FFT_PASSES`` elements) one FFT
    correlation of the window with ``G`` (dilated by the stride) does them all at once.
    """
    h, w = kernel_shape
    if h * w > numpy_kernels.FFT_PASSES:
        if stride != (1, 1):
            G = dilate(G, stride)
        return np.asarray(numpy_kernels.corr2d_fft(window, G.astype(window.dtype, copy=False)), dtype=np.float64)
    (s_h, s_w), (rows, cols) = stride, G.shape
    grad = np.zeros(kernel_shape)
    band = max(1, _BAND_BYTES // (cols * G.itemsize))
    scratch = np.empty((min(band, rows), cols), dtype=np.result_type(window, G))
    for start in range(0, rows, band):
        stop = min(start + band, rows)
        part, out = G[start:stop], scratch[:stop - start]
        for a in range(h):
            for b in range(w):
                np.multiply(window[start * s_h + a:(stop - 1) * s_h + a + 1:s_h, b:b + (cols - 1) * s_w + 1:s_w],
                            part, out=out)
                grad[a, b] += float(out.sum())
    return grad


def dilate(G: np.ndarray, stride: tuple[int, int]) -> np.ndarray:
    """``G`` with ``stride - 1`` zeros between its elements (what a strided correlation's adjoint spreads)."""
    s_h, s_w = stride
    out = np.zeros(((G.shape[0] - 1) * s_h + 1, (G.shape[1] - 1) * s_w + 1), dtype=G.dtype)
    out[::s_h, ::s_w] = G
    return out


def dilate_block(G: np.ndarray, stride: tuple[int, int]) -> np.ndarray:
    """One block of a dilated array: each element followed by ``stride - 1`` zeros on both axes."""
    s_h, s_w = stride
    out = np.zeros((G.shape[0] * s_h, G.shape[1] * s_w), dtype=G.dtype)
    out[::s_h, ::s_w] = G
    return out


def gradient_terms(window: np.ndarray, G: np.ndarray, *, kernel_shape: tuple[int, int],
                   stride: tuple[int, int]) -> np.ndarray:
    """``[sum(G), dK...]``: one block's share of the bias and kernel gradients of ``sum(G * output)``."""
    return np.concatenate([[np.sum(G, dtype=np.float64)], kernel_gradient(window, G, kernel_shape, stride).ravel()])


def training_terms(window: np.ndarray, Y: np.ndarray, *, backend: str, method: str, kernel: np.ndarray,
                   bias: float | None) -> np.ndarray:
    """``[loss, dL/db, dL/dK...]`` of one block for ``L = sum((corr2d(X, K) + b - Y) ** 2)``.

    The prediction comes from the chunk backend's fast path; the kernel's gradient is the cross-correlation
    of the input with twice the residual.
    """
    residual = correlate_window(window, backend=backend, method=method, kernel=kernel, stride=(1, 1),
                                out_dtype=Y.dtype)  # the prediction, made the residual in place
    residual -= Y
    if bias is not None:
        residual += residual.dtype.type(bias)
    loss = total = 0.0
    band = max(1, _BAND_BYTES // (residual.shape[1] * residual.itemsize))
    scratch = np.empty((min(band, residual.shape[0]), residual.shape[1]), dtype=residual.dtype)
    for start in range(0, residual.shape[0], band):  # float64 sums of cache-sized bands, no float64 copy
        part = residual[start:start + band]
        loss += float(np.square(part, out=scratch[:len(part)]).sum(dtype=np.float64))
        total += float(part.sum(dtype=np.float64))
    gradient = 2 * kernel_gradient(window, residual, kernel.shape)
    return np.concatenate([[loss, 2 * total], gradient.ravel()])


def normal_terms(window: np.ndarray, *, kernel: np.ndarray, offset: float) -> np.ndarray:
    """``[sum(P), A^T P...]`` with ``P = corr2d(window, kernel) + offset`` in float64 (one power-iteration step)."""
    window = window.astype(np.float64)
    prediction = numpy_kernels.corr2d_direct(window, kernel) + offset
    return np.concatenate([[prediction.sum()], kernel_gradient(window, prediction, kernel.shape).ravel()])


def _window_bands(window: np.ndarray, kernel_shape: tuple[int, int], bias: bool):
    """Bands of rows of ``A`` (one row per output: its window of ``window``, then a 1 for a bias) in float64,
    as ``(first output row, last output row + 1, A's rows transposed)``: cache-sized, never all of ``A``."""
    h, w = kernel_shape
    rows, cols = window.shape[0] - h + 1, window.shape[1] - w + 1
    size = h * w + bool(bias)
    band = max(1, _BAND_BYTES // (cols * 8 * size))
    stack = np.ones((size, min(band, rows), cols))
    for start in range(0, rows, band):
        stop = min(start + band, rows)
        for a in range(h):
            for b in range(w):
                stack[a * w + b, :stop - start] = window[start + a:stop + a, b:b + cols]
        yield start, stop, stack[:, :stop - start].reshape(size, -1)


def gram_terms(window: np.ndarray, *, kernel_shape: tuple[int, int], bias: bool) -> np.ndarray:
    """One block's share of ``A^T A`` in float64: the dot products of every pair of the kernel's shifted windows.

    ``A`` maps a kernel (and a bias) to the prediction, so ``2 A^T A`` is the loss's Hessian. The windows are
    stacked band by band and multiplied with BLAS: ``(h w + 1)^2`` multiply-adds per pixel, one pass.
    """
    size = kernel_shape[0] * kernel_shape[1] + bool(bias)
    gram = np.zeros((size, size))
    for _, _, flat in _window_bands(window, kernel_shape, bias):
        gram += flat @ flat.T
    return gram.ravel()


def normal_equation_terms(window: np.ndarray, Y: np.ndarray, *, kernel_shape: tuple[int, int]) -> np.ndarray:
    """One block's share of the normal equations ``A^T A k = A^T y``: ``[A^T A..., A^T y...]`` in float64."""
    size = kernel_shape[0] * kernel_shape[1]
    gram, moment = np.zeros((size, size)), np.zeros(size)
    for start, stop, flat in _window_bands(window, kernel_shape, False):
        gram += flat @ flat.T
        moment += flat @ Y[start:stop].astype(np.float64).ravel()
    return np.concatenate([gram.ravel(), moment])
