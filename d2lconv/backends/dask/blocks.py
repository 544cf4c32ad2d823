"""What one block computes: plain functions of NumPy arrays, run by Dask's workers (threads or processes).

Each takes the *window* of an overlapped block (the input its output block needs, see ``tiling``) and
returns NumPy: a block of a correlation, computed by the chunk backend's own fast path, or a vector of
sums (a loss, the gradient of a kernel) that Dask adds up over all blocks. Sums are accumulated in float64,
so a sum over 10^9 pixels is as accurate as one over a block.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from d2lconv import channel_methods, methods
from d2lconv._auto import choose_method
from d2lconv._backend import load_adapter
from d2lconv._corr import correlate
from d2lconv.backends.numpy import kernels as numpy_kernels
from d2lconv.backends.numpy import tensors as numpy_tensors

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
                    stride: tuple[int, int] = (1, 1), dilation: tuple[int, int] = (1, 1)) -> np.ndarray:
    """``d sum(G * corr2d(window, K)) / dK`` in float64: the cross-correlation of the input with ``G``.

    ``window`` is ``(..., H, W)`` and ``G`` ``(..., H', W')``; every plane adds its share. Element ``(a, b)`` is
    ``sum window[..., i s_h + a d_h, j s_w + b d_w] G[..., i, j]``: one multiply-add pass per kernel element,
    band by band in the cache; above NumPy's FFT break-even (``FFT_PASSES`` elements) one FFT correlation of
    the window with ``G`` (spread by the stride) does them all at once.
    """
    h, w = kernel_shape
    if h * w > numpy_kernels.FFT_PASSES:
        return _fft_kernel_gradient(window, G, kernel_shape, stride, dilation)
    (s_h, s_w), (d_h, d_w), (rows, cols) = stride, dilation, G.shape[-2:]
    planes, grads = window.reshape(-1, *window.shape[-2:]), G.reshape(-1, rows, cols)
    grad = np.zeros(kernel_shape)
    band = max(1, _BAND_BYTES // (len(grads) * cols * G.itemsize))
    scratch = np.empty((len(grads), min(band, rows), cols), dtype=np.result_type(window, G))
    for start in range(0, rows, band):
        stop = min(start + band, rows)
        part, out = grads[:, start:stop], scratch[:, :stop - start]
        for a in range(h):
            for b in range(w):
                np.multiply(planes[:, start * s_h + a * d_h:(stop - 1) * s_h + a * d_h + 1:s_h,
                                   b * d_w:b * d_w + (cols - 1) * s_w + 1:s_w], part, out=out)
                grad[a, b] += float(out.sum(dtype=np.float64))
    return grad


def _fft_kernel_gradient(window: np.ndarray, G: np.ndarray, kernel_shape: tuple[int, int],
                         stride: tuple[int, int], dilation: tuple[int, int]) -> np.ndarray:
    """:func:`kernel_gradient` for large kernels: one float64 FFT correlation per plane, summed in the spectrum."""
    fft = numpy_kernels._fft_module()
    if stride != (1, 1):
        G = dilate(G, stride)
    grid = window.shape[-2:]
    spectrum = fft.rfft2(window.astype(np.float64), grid) * np.conj(fft.rfft2(G.astype(np.float64), grid))
    full = fft.irfft2(spectrum.reshape(-1, *spectrum.shape[-2:]).sum(axis=0), grid)
    (h, w), (d_h, d_w) = kernel_shape, dilation
    return np.ascontiguousarray(full[:(h - 1) * d_h + 1:d_h, :(w - 1) * d_w + 1:d_w])


def dilate(G: np.ndarray, stride: tuple[int, int]) -> np.ndarray:
    """``G`` with ``stride - 1`` zeros between its elements (what a strided correlation's adjoint spreads)."""
    s_h, s_w = stride
    out = np.zeros((*G.shape[:-2], (G.shape[-2] - 1) * s_h + 1, (G.shape[-1] - 1) * s_w + 1), dtype=G.dtype)
    out[..., ::s_h, ::s_w] = G
    return out


def dilate_block(G: np.ndarray, stride: tuple[int, int]) -> np.ndarray:
    """One block of a dilated array: each element followed by ``stride - 1`` zeros on both axes."""
    s_h, s_w = stride
    out = np.zeros((*G.shape[:-2], G.shape[-2] * s_h, G.shape[-1] * s_w), dtype=G.dtype)
    out[..., ::s_h, ::s_w] = G
    return out


def gradient_terms(window: np.ndarray, G: np.ndarray, *, kernel_shape: tuple[int, ...], stride: tuple[int, int],
                   dilation: tuple[int, int] = (1, 1), groups: int | None = None) -> np.ndarray:
    """One block's share of the bias and kernel gradients of ``sum(G * output)``: ``[dL/db..., dL/dK...]``.

    ``groups=None``: the book's layer (``corr2d``, a 2-D kernel, one bias): ``[sum(G), dK...]``. Otherwise
    ``corr2d_multi_in_out`` on a channels-first window: one bias per output channel (``G`` summed over all
    but the channel axis) and the ``(O, C // groups, h, w)`` kernel's gradient.
    """
    if groups is None:
        return np.concatenate([[np.sum(G, dtype=np.float64)],
                               kernel_gradient(window, G, kernel_shape, stride, dilation).ravel()])
    bias = G.sum(axis=tuple(i for i in range(G.ndim) if i != G.ndim - 3), dtype=np.float64)
    dK = channel_methods.kernel_gradient(window, G.astype(window.dtype, copy=False), kernel_shape[2:], stride,
                                         dilation, groups)
    return np.concatenate([bias, dK.astype(np.float64).ravel()])


def training_terms(window: np.ndarray, Y: np.ndarray, *, backend: str, method: str, kernel: np.ndarray,
                   bias: Any) -> np.ndarray:
    """``[loss, dL/db..., dL/dK...]`` of one block for ``L = sum((corr2d(X, K) + b - Y) ** 2)``.

    A 2-D kernel is the book's layer (one bias); a 4-D one ``(O, C, h, w)`` is ``corr2d_multi_in_out`` on a
    channels-first window, one bias per output channel. The prediction comes from the chunk backend's fast
    path; the kernel's gradient is the cross-correlation of the input with twice the residual.
    """
    channels = kernel.ndim == 4
    if channels:
        residual = correlate_channels_window(window, backend=backend, method=method, kernel=kernel, stride=(1, 1),
                                             dilation=(1, 1), groups=1)
    else:
        residual = correlate_window(window, backend=backend, method=method, kernel=kernel, stride=(1, 1),
                                    out_dtype=Y.dtype)
    residual = np.ascontiguousarray(residual)
    residual -= Y  # the prediction, made the residual in place
    if bias is not None:
        residual += np.asarray(bias, dtype=residual.dtype).reshape((-1, 1, 1) if channels else ())
    loss = 0.0
    flat = residual.reshape(-1, residual.shape[-1])
    band = max(1, _BAND_BYTES // (flat.shape[1] * flat.itemsize))
    scratch = np.empty((min(band, flat.shape[0]), flat.shape[1]), dtype=flat.dtype)
    for start in range(0, flat.shape[0], band):  # float64 sums of cache-sized bands, no float64 copy
        part = flat[start:start + band]
        loss += float(np.square(part, out=scratch[:len(part)]).sum(dtype=np.float64))
    terms = gradient_terms(window, residual, kernel_shape=kernel.shape, stride=(1, 1), groups=1 if channels else None)
    return np.concatenate([[loss], 2 * terms])


def _as_channels(window: np.ndarray, channels: bool) -> np.ndarray:
    """``window`` as ``(examples, C, H, W)``: without channels every plane is an example of one channel."""
    return window.reshape(-1, *window.shape[-3:]) if channels else window.reshape(-1, 1, *window.shape[-2:])


def normal_terms(window: np.ndarray, *, kernel: np.ndarray, offset: float) -> np.ndarray:
    """``[sum(P), A^T P...]`` with ``P = corr2d(window, kernel) + offset`` in float64 (one power-iteration step).

    A 4-D kernel ``(1, C, h, w)`` is one output channel of ``corr2d_multi_in_out`` on a channels-first window.
    """
    planes = _as_channels(window.astype(np.float64), kernel.ndim == 4)
    K = kernel.reshape(1, -1, *kernel.shape[-2:])
    prediction = channel_methods.direct(numpy_tensors, planes, K) + offset
    gradient = channel_methods.kernel_gradient(planes, prediction, K.shape[-2:])
    return np.concatenate([[prediction.sum()], gradient.ravel()])


def _window_bands(window: np.ndarray, kernel_shape: tuple[int, int], bias: bool, channels: bool = False):
    """Bands of rows of ``A`` (one row per output: its window of ``window`` over every channel, then a 1 for a
    bias) in float64, as ``(example, first output row, last output row + 1, A's rows transposed)``:
    cache-sized, never all of ``A``."""
    planes = _as_channels(window, channels)
    C, H, W = planes.shape[1:]
    h, w = kernel_shape
    rows, cols = H - h + 1, W - w + 1
    size = C * h * w + bool(bias)
    band = max(1, _BAND_BYTES // (cols * 8 * size))
    stack = np.ones((size, min(band, rows), cols))
    for z, image in enumerate(planes):
        for start in range(0, rows, band):
            stop = min(start + band, rows)
            for c in range(C):
                for a in range(h):
                    for b in range(w):
                        stack[(c * h + a) * w + b, :stop - start] = image[c, start + a:stop + a, b:b + cols]
            yield z, start, stop, stack[:, :stop - start].reshape(size, -1)


def gram_terms(window: np.ndarray, *, kernel_shape: tuple[int, int], bias: bool, channels: bool = False) -> np.ndarray:
    """One block's share of ``A^T A`` in float64: the dot products of every pair of the kernel's shifted windows.

    ``A`` maps a kernel (and a bias) to the prediction, so ``2 A^T A`` is the loss's Hessian (with channels, of
    one output channel: each has its own kernel and sees the same input). The windows are stacked band by
    band and multiplied with BLAS: ``(taps + 1)^2`` multiply-adds per pixel, one pass.
    """
    size = (window.shape[-3] if channels else 1) * kernel_shape[0] * kernel_shape[1] + bool(bias)
    gram = np.zeros((size, size))
    for _, _, _, flat in _window_bands(window, kernel_shape, bias, channels):
        gram += flat @ flat.T
    return gram.ravel()


def normal_equation_terms(window: np.ndarray, Y: np.ndarray, *, kernel_shape: tuple[int, int]) -> np.ndarray:
    """One block's share of the normal equations ``A^T A k = A^T y``: ``[A^T A..., A^T y...]`` in float64."""
    size = kernel_shape[0] * kernel_shape[1]
    gram, moment = np.zeros((size, size)), np.zeros(size)
    targets = Y.reshape(-1, *Y.shape[-2:])
    for z, start, stop, flat in _window_bands(window, kernel_shape, False):
        gram += flat @ flat.T
        moment += flat @ targets[z, start:stop].astype(np.float64).ravel()
    return np.concatenate([gram.ravel(), moment])
