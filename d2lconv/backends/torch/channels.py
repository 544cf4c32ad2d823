"""PyTorch over channels: ``F.conv2d`` as ``method="native"``, d2lconv's methods, and ``auto``'s numbers.

``F.conv2d`` (oneDNN on the CPU) is fast with many channels and for depthwise convolutions, and slow with one
input channel: a filter bank of six 3x3 kernels on one 2048x2048 image took it ~0.45 s, six of ``corr2d``'s
banded sums of shifted slices ~0.03 s. So ``auto`` sends one input channel per group through ``corr2d``'s
own choice per kernel, and everything else to ``F.conv2d`` (benchmarks/RESULTS_CHANNELS.md).
"""

from __future__ import annotations

import sys
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F

from d2lconv import _numba, channel_methods, methods
from d2lconv._auto import ChannelAuto
from d2lconv._parallel import num_threads, run_bands
from d2lconv.backends.torch import tensors
from d2lconv.backends.torch.kernels import FFT_PASSES, _accelerated, _band_elements, _no_gradient, _tiles, tile_grid

# Measured with one thread, F.conv2d against this module's bank kernel and corr2d's direct method (see
# benchmarks/RESULTS_CHANNELS.md): oneDNN wins from 2 input channels per group and for depthwise kernels (0.2 ms
# against 1.8 ms for 32 channels at 112x112), and for 16 or more kernels on batches of images of up to 128x128
# (2.6x at 64 kernels); on one 512x512 image a bank of 6 ran 5x faster here, of 64 still 1.4x.
CHANNEL_AUTO = ChannelAuto(native_from=2, native_depthwise=True, native_below=1 << 18, native_bank_from=16,
                           native_bank_pixels=1 << 14)


def corr2d_channels(X: torch.Tensor, K: torch.Tensor, stride: tuple[int, int], dilation: tuple[int, int],
                    groups: int, padding: tuple[tuple[int, int], tuple[int, int]], channels_last: bool, method: str,
                    factors: Any = None) -> torch.Tensor:
    """d2lconv's ``method`` (``"direct"``, ``"separable"``, ``"fft"`` or ``"per_kernel"``) on ``X`` in its layout."""
    def compute(X: torch.Tensor) -> torch.Tensor:
        if method in ("per_kernel", "direct") and K.shape[1] == 1 and _accelerated(X, K):
            Y = _numba_bank(X, K, stride, dilation, groups)
            if Y is not None:  # compiled loops, every output channel in place
                return Y
        if method == "per_kernel":
            if _no_gradient(X, K) and K.shape[2] * K.shape[3] <= FFT_PASSES and not _accelerated(X, K):
                return _bank(X, K, stride, dilation, groups)  # (with Numba, corr2d's compiled loops per kernel)
            from d2lconv._channels import per_kernel

            return per_kernel(sys.modules[__package__], X, K, stride, dilation, groups)
        if method == "separable":
            return channel_methods.separable(tensors, X, *factors, stride, dilation, groups)
        if method == "fft":
            return _fft(X, K, stride, dilation, groups)
        return channel_methods.direct(tensors, X, K, stride, dilation, groups)

    return channel_methods.in_layout(tensors, compute, X, padding, channels_last)


def _numba_bank(X: torch.Tensor, K: torch.Tensor, stride: tuple[int, int], dilation: tuple[int, int],
                groups: int) -> torch.Tensor | None:
    """The Numba accelerator's filter bank on the tensors' memory, or None where it does not suit them."""
    kernels = K.detach().numpy()
    if not _numba.bank_wanted(kernels):
        return None
    Y = _numba.corr2d_bank(X.detach().resolve_conj().resolve_neg().numpy(), kernels, stride, dilation, groups,
                           "torch")
    return None if Y is None else torch.from_numpy(Y)


_fft = partial(channel_methods.fft, tensors, rfft2=lambda x, s: torch.fft.rfft2(x, s),
               irfft2=lambda x, s: torch.fft.irfft2(x, s), conj=torch.conj)


def corr2d_channels_native(X: torch.Tensor, K: torch.Tensor, stride: tuple[int, int], dilation: tuple[int, int],
                           groups: int, padding: tuple[tuple[int, int], tuple[int, int]],
                           channels_last: bool) -> torch.Tensor:
    """``F.conv2d`` on ``(N, C, H, W)``: leading axes flattened into N, channels-last input as a permuted view
    (PyTorch's ``channels_last`` memory format, which oneDNN takes as it is)."""
    flat = X.dim() != 4
    if flat:
        lead, X = X.shape[:-3], X.reshape(-1, *X.shape[-3:])
    if channels_last:
        X = X.permute(0, 3, 1, 2)
    (top, bottom), (left, right) = padding
    if top == bottom and left == right:
        Y = F.conv2d(X, K, None, stride, (top, left), dilation, groups)
    else:
        Y = F.conv2d(F.pad(X, (left, right, top, bottom)), K, None, stride, 0, dilation, groups)
    if channels_last:
        Y = Y.permute(0, 2, 3, 1)
    return Y.reshape(*lead, *Y.shape[1:]) if flat else Y


def _bank(X: torch.Tensor, K: torch.Tensor, stride: tuple[int, int], dilation: tuple[int, int],
          groups: int) -> torch.Tensor:
    """One input channel per output channel (a filter bank, a batch of frames), no gradient: every output
    channel's band of rows in turn while the input band is in the cache, each with one fused in-place
    multiply-add per kernel tap (``corr2d``'s banded direct method), or per row and column tap for a
    rank-one kernel (its separable method); written straight into the output, no stacking.
    """
    (s_h, s_w), (d_h, d_w) = stride, dilation
    O, _, h, w = K.shape
    per_group = O // groups
    planes = X.reshape(-1, *X.shape[-3:])
    count = planes.shape[0]
    out_h, out_w = methods.valid_shape(X.shape, (h, w), stride, dilation)
    Y = torch.empty((count, O, out_h, out_w), dtype=X.dtype, device=X.device)
    taps = K[:, 0].tolist()
    factors = [methods.rank_one_factors(k) if h + w < h * w else None for k in K[:, 0].cpu().numpy()]
    factors = [None if f is None else (f[0].tolist(), f[1].tolist()) for f in factors]
    threads = num_threads("torch")
    chunk, step = _tiles(count, out_h, out_w, X.element_size())
    cols, span = (out_w - 1) * s_w + 1, (h - 1) * d_h + 1
    if any(f is not None for f in factors):  # the row pass's buffer holds span - 1 more rows: keep it in the band
        # (with several threads a band over ATen's grain runs on the thread pool, which stalls on busy cores)
        fitting = (_band_elements(X.element_size()) // (chunk * out_w) - span) // s_h + 1
        step = max(1, min(step, fitting))
    bands, starts = tile_grid(count, out_h, chunk, step)

    def work(first_band: int, last_band: int) -> None:  # bands of rows of every output channel, on d2lconv's threads
        scratch = torch.empty((chunk, (step - 1) * s_h + span, out_w), dtype=X.dtype, device=X.device)
        for p, start in starts[first_band:last_band]:
            stop = min(start + step, out_h)
            rows = (stop - start - 1) * s_h + 1
            for o in range(O):
                x, y = planes[p:p + chunk, o // per_group], Y[p:p + chunk, o, start:stop]
                if factors[o] is None:
                    for a in range(h):
                        top = start * s_h + a * d_h
                        for b in range(w):
                            source = x[:, top:top + rows:s_h, b * d_w:b * d_w + cols:s_w]
                            if a == b == 0:
                                torch.mul(source, taps[o][0][0], out=y)
                            else:
                                y.add_(source, alpha=taps[o][a][b])
                    continue
                column, row = factors[o]  # row pass over the band's input rows, then columns
                first = start * s_h
                z = scratch[:x.shape[0], :rows - 1 + span]
                torch.mul(x[:, first:first + z.shape[1], 0:cols:s_w], row[0], out=z)
                for b in range(1, w):
                    z.add_(x[:, first:first + z.shape[1], b * d_w:b * d_w + cols:s_w], alpha=row[b])
                torch.mul(z[:, 0:rows:s_h], column[0], out=y)
                for a in range(1, h):
                    y.add_(z[:, a * d_h:a * d_h + rows:s_h], alpha=column[a])

    run_bands(work, bands, 1, threads)
    return Y.reshape(*X.shape[:-3], O, out_h, out_w)
