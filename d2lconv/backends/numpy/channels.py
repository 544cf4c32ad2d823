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

from d2lconv import channel_methods
from d2lconv._auto import ChannelAuto
from d2lconv.backends.numpy import tensors
from d2lconv.backends.numpy.kernels import _fft_module

# No conv op to choose. The FFT over channels beat the per-tap matrix products (einsum, BLAS) from about 16 kernel
# taps per input channel: 3 -> 8 channels at 256x256 from 7x7 (1.45x at 7x7, 2.5x at 11x11; a tie at 5x5), but
# 16 -> 16 at 64x64 and 64 -> 64 at 56x56 not up to 11x11 (its per-frequency contraction is slow in einsum).
# One input channel per group: on small images (depthwise, 32 channels at 112x112) the direct method on every
# channel at once ran 1.4-2x faster than corr2d's banded paths one kernel at a time; on one 2048x2048 image
# (a bank of six) the banded paths ran 3-4x faster.
CHANNEL_AUTO = ChannelAuto(native_from=None, fft_from_taps=16, per_kernel_pixels=1 << 16)

corr2d_channels_native = None


def corr2d_channels(X: np.ndarray, K: np.ndarray, stride: tuple[int, int], dilation: tuple[int, int], groups: int,
                    padding: tuple[tuple[int, int], tuple[int, int]], channels_last: bool, method: str,
                    factors: Any = None) -> np.ndarray:
    """d2lconv's ``method`` (``"direct"``, ``"separable"``, ``"fft"`` or ``"per_kernel"``) on ``X`` in its layout."""
    def compute(X: np.ndarray) -> np.ndarray:
        if method == "per_kernel":
            from d2lconv._channels import per_kernel

            return per_kernel(sys.modules[__package__], X, K, stride, dilation, groups)
        if method == "separable":
            return channel_methods.separable(tensors, X, *factors, stride, dilation, groups)
        if method == "fft":
            return _fft(X, K, stride, dilation, groups)
        return channel_methods.direct(tensors, X, K, stride, dilation, groups)

    return channel_methods.in_layout(tensors, compute, X, padding, channels_last)


_fft = partial(channel_methods.fft, tensors, rfft2=lambda x, s: _fft_module().rfft2(x, s),
               irfft2=lambda x, s: _fft_module().irfft2(x, s), conj=np.conj)


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
