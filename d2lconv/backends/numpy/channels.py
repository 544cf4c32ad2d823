"""NumPy over channels: d2lconv's methods for ``corr2d_multi_in_out`` and ``auto``'s numbers for them.

NumPy has no conv op (``corr2d_channels_native`` is None): contractions over channels go to BLAS through
``einsum``, single-channel kernels to ``corr2d``'s banded fast paths, one kernel at a time. NumPy has no
autodiff either, so the gradients are the analytic adjoints (``channel_methods.kernel_gradient`` and
``input_gradient``), used by ``Conv2D``'s backward and ``d2lconv.gradients``.
"""

from __future__ import annotations

import sys
from functools import partial
from typing import Any

import numpy as np

from d2lconv import _numba, channel_methods, methods
from d2lconv._auto import ChannelAuto
from d2lconv._parallel import num_threads, run_bands
from d2lconv.backends.numpy import tensors
from d2lconv.backends.numpy.kernels import _BAND_BYTES, _irfft2, _quiet, _rfft2

# No conv op to choose. The FFT over channels against the direct method, whose contraction over channels is one
# matrix product (im2col) per band of rows: CPU time on one thread (a busy machine; lowest of 5), direct / fft:
# 3 -> 8 channels at 256x256: 2.5 / 9.3 ms at 7x7, 5.9 / 8.7 ms at 11x11; 16 -> 16 at 64x64, 11x11: 2.5 / 5.6 ms;
# 8 -> 8 on 4 images of 128x128, 11x11: 17 / 9.1 ms. From 32 taps per input channel the FFT is chosen (before the
# im2col products, when the direct method cost 1.2-7x more, from 16). To be measured again on a quiet machine.
# One input channel per group: on small images (depthwise, 32 channels at 112x112) the direct method on every
# channel at once, by bands, ran 1.4-2x faster than corr2d's banded paths one kernel at a time; on one
# 2048x2048 image (a bank of six) the banded paths ran 3-4x faster.
CHANNEL_AUTO = ChannelAuto(native_from=None, fft_from_taps=32, per_kernel_pixels=1 << 16)

corr2d_channels_native = None


def corr2d_channels(X: np.ndarray, K: np.ndarray, stride: tuple[int, int], dilation: tuple[int, int], groups: int,
                    padding: tuple[tuple[int, int], tuple[int, int]], channels_last: bool, method: str,
                    factors: Any = None) -> np.ndarray:
    """d2lconv's ``method`` (``"direct"``, ``"separable"``, ``"fft"`` or ``"per_kernel"``) on ``X`` in its layout."""
    def compute(X: np.ndarray) -> np.ndarray:
        if method in ("per_kernel", "direct") and _numba.wanted(X, K) and _numba.bank_wanted(K):
            Y = _numba.corr2d_bank(X, K, stride, dilation, groups, "numpy")
            if Y is not None:  # compiled loops, every output channel in place
                return Y
        if method == "per_kernel":
            from d2lconv._channels import per_kernel

            return per_kernel(sys.modules[__package__], X, K, stride, dilation, groups)
        if method == "fft":
            return _fft(X, K, stride, dilation, groups)
        return _banded(X, K, stride, dilation, groups, factors if method == "separable" else None)

    return channel_methods.in_layout(tensors, compute, X, padding, channels_last)


# SciPy's transforms on d2lconv's threads (``workers``): every channel's transform is one of many.
_fft = partial(channel_methods.fft, tensors, rfft2=_rfft2, irfft2=_irfft2, conj=np.conj)


@_quiet
def _banded(X: np.ndarray, K: np.ndarray, stride: tuple[int, int], dilation: tuple[int, int], groups: int,
            factors: Any) -> np.ndarray:
    """The direct method (or, with ``factors``, the separable one) over channels, a band of output rows of a
    few examples at a time, the bands on d2lconv's threads.

    Why: NumPy evaluates one operation at a time, so over the whole batch every kernel tap streams an
    output-sized temporary through memory; a band of about ``_BAND_BYTES`` stays in the cache for all taps.
    With several input channels per group each band is one matrix product (BLAS) of the kernels with the
    band's input windows (im2col), instead of an unbatched contraction per tap.
    """
    lead, (C, H, W) = X.shape[:-3], X.shape[-3:]
    O, Cg, h, w = K.shape
    s_h, d_h = stride[0], dilation[0]
    out_h, out_w = methods.valid_shape((H, W), (h, w), stride, dilation)
    examples = X.reshape(-1, C, H, W)
    count = examples.shape[0]
    # bytes per output row: of the output, or of the im2col windows (4x the budget: larger matrix products)
    per_row = (O if Cg == 1 else max(O, C * h * w // 4)) * out_w * X.itemsize
    rows = max(1, min(out_h, _BAND_BYTES // per_row))
    chunk = max(1, _BAND_BYTES // (per_row * out_h)) if rows == out_h else 1
    starts = [(b, r) for b in range(0, count, chunk) for r in range(0, out_h, rows)]
    span = (h - 1) * d_h + 1
    Y = np.empty((count, O, out_h, out_w), dtype=X.dtype)
    kernels = K.reshape(groups, O // groups, Cg * h * w) if Cg > 1 else None

    def band(first: int, last: int) -> None:
        for b, r in starts[first:last]:
            stop = min(r + rows, out_h)
            x = examples[b:b + chunk, :, r * s_h:(stop - 1) * s_h + span]
            if factors is not None:
                Y[b:b + chunk, :, r:stop] = channel_methods.separable(tensors, x, *factors, stride, dilation, groups)
            elif kernels is None:
                Y[b:b + chunk, :, r:stop] = channel_methods.direct(tensors, x, K, stride, dilation, groups)
            else:
                Y[b:b + chunk, :, r:stop] = _im2col_product(x, kernels, (h, w), stride, dilation, groups,
                                                            (stop - r, out_w))

    # The matrix products run on BLAS's own threads (OpenBLAS: all cores), so their bands stay on this thread;
    # the elementwise passes of one input channel per group run on d2lconv's.
    run_bands(_quiet(band), len(starts), 1, num_threads("numpy") if kernels is None else 1)
    return Y.reshape((*lead, O, out_h, out_w))


def _im2col_product(x: np.ndarray, kernels: np.ndarray, kernel_shape: tuple[int, int], stride: tuple[int, int],
                    dilation: tuple[int, int], groups: int, out_shape: tuple[int, int]) -> np.ndarray:
    """One band of :func:`channel_methods.direct` with several input channels per group: every tap's input
    window gathered (one strided copy) into ``(examples, groups, Cg * h * w, pixels)`` and multiplied by the
    kernels ``(groups, O / groups, Cg * h * w)`` in one batched matrix product (BLAS)."""
    (h, w), (s_h, s_w), (d_h, d_w), (rows, cols) = kernel_shape, stride, dilation, out_shape
    z, C = x.shape[:2]
    span = ((h - 1) * d_h + 1, (w - 1) * d_w + 1)
    views = np.lib.stride_tricks.sliding_window_view(x, span, axis=(-2, -1))  # (z, C, i, j, span_h, span_w)
    views = views[:, :, :(rows - 1) * s_h + 1:s_h, :(cols - 1) * s_w + 1:s_w, ::d_h, ::d_w]
    windows = np.empty((z, C, h, w, rows, cols), dtype=x.dtype)
    np.copyto(windows, views.transpose(0, 1, 4, 5, 2, 3))
    product = np.matmul(kernels, windows.reshape(z, groups, -1, rows * cols))  # (z, groups, O / groups, pixels)
    return product.reshape(z, -1, rows, cols)


def channels_vjp(X: np.ndarray, K: np.ndarray, G: np.ndarray, *, groups: int = 1, method: str = "auto",
                 padding: Any = 0, stride: Any = 1, dilation: Any = 1,
                 data_format: str = "channels_first") -> tuple[np.ndarray, np.ndarray]:
    """Gradients of ``sum(G * corr2d_multi_in_out(X, K, ...))``: the analytic adjoints (NumPy has no autodiff)."""
    from d2lconv._channels import correlate_channels
    from d2lconv._inputs import dilation_pair, pad_amounts, pair
    from d2lconv.methods import dilated_shape

    # the forward pass, as autodiff would run it (and with its errors)
    correlate_channels(sys.modules[__package__], X, K, groups=groups, method=method, padding=padding, stride=stride,
                       dilation=dilation, data_format=data_format)
    strides, dilations = pair(stride, "stride", minimum=1), dilation_pair(dilation)
    last = data_format == "channels_last"
    if last:
        X, G = np.moveaxis(X, -1, -3), np.moveaxis(G, -1, -3)
    H, W = X.shape[-2:]
    rows, cols = pad_amounts(padding, (H, W), dilated_shape(K.shape[-2:], dilations), strides)
    padded = tensors.pad(X, rows, cols)
    G = G.astype(X.dtype, copy=False)
    dK = channel_methods.kernel_gradient(padded, G, K.shape[-2:], strides, dilations, groups)
    dX = channel_methods.input_gradient(G, K.astype(X.dtype, copy=False), padded.shape, strides, dilations, groups)
    dX = dX[..., rows[0]:rows[0] + H, cols[0]:cols[0] + W]
    return (np.moveaxis(dX, -3, -1) if last else dX), dK.astype(K.dtype, copy=False)


def vjp(function: Any, X: np.ndarray, K: np.ndarray, G: np.ndarray,
        options: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Gradients of ``sum(G * function(X, K, **options))``, for d2lconv's own functions: NumPy has no autodiff,
    so each is mapped onto its analytic adjoint."""
    import d2lconv as dc
    from d2lconv._inputs import dilation_pair, pair
    from d2lconv.backends.numpy.tab import corr2d_vjp

    if function in (dc.corr2d, dc.convolve2d):
        flip = function is dc.convolve2d
        dX, dK = corr2d_vjp(X, tensors.flip(K) if flip else K, G, method=options.get("method", "auto"),
                            padding=options.get("padding", 0),
                            stride=pair(options.get("stride", 1), "stride", minimum=1),
                            dilation=dilation_pair(options.get("dilation", 1)))
        return dX, (tensors.flip(dK) if flip else dK)
    if function is dc.corr2d_multi_in_out:
        return channels_vjp(X, K, G, **options)
    if function is dc.corr2d_multi_in:
        last = options.get("data_format") == "channels_last"
        dX, dK = channels_vjp(X, K[None], G[..., None] if last else G[..., None, :, :], **options)
        return dX, dK[0]
    if function is dc.corr2d_multi_in_out_1x1:
        if options.get("method", "auto") == "auto":
            options = {**options, "method": "direct"}
        dX, dK = channels_vjp(X, K.reshape(K.shape[0], K.shape[1], 1, 1), G, **options)
        return dX, dK.reshape(K.shape)
    raise TypeError(f"NumPy has no autodiff: on the numpy backend d2lconv.gradients takes corr2d, convolve2d, "
                    f"corr2d_multi_in, corr2d_multi_in_out or corr2d_multi_in_out_1x1, got {function!r}")
