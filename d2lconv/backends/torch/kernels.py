"""PyTorch fast paths for ``corr2d``: the methods ``auto`` chooses between, and its cost-model numbers.

They compute the valid cross-correlation of an already padded input (see ``d2lconv.backends``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from d2lconv import methods
from d2lconv.backends.torch.tensors import is_constant

# The two numbers of auto's cost model, ratios of this adapter's own methods (so they carry over between
# machines), measured in one process at N = 512, 1024 and 2048 with one intra-op thread: a "pass" is the time
# of corr2d_direct's banded path divided by its taps (median over k = 3, 5, 7: 0.04, 0.18 and 0.73 ms);
# corr2d_fft (tiled) cost 50-86 passes over k = 3..31 (median about 60), whatever the kernel size.
FFT_PASSES = 60
# F.conv2d is one call where the other methods are many small ones: it beat direct and fft below about
# 1.3e5 (k = 2), 3e5 (k = 3) and 4e5 (k = 7) multiply-adds (N = 16..512, same process, median of ~2 ms samples).
NATIVE_BELOW = 1 << 18
NATIVE_TAPS = 0


# Fast paths. PyTorch runs one operation at a time, so the shared sum of shifted slices streams the whole
# output through memory twice per kernel element. When no gradient can reach the result (nothing needs one,
# or grad mode is off, and no forward-mode tangent), direct and separable work on bands of output rows that
# stay in the CPU cache, with one fused in-place multiply-add per kernel element (``out.add_(x, alpha=k)``).
# In-place ops and Python-float weights are invisible to autograd, so anything that needs a gradient takes
# the shared differentiable version instead. Same arithmetic, same values (up to float32 rounding order).
# Band size: with one intra-op thread, about 1 MiB of output rows (fewer Python steps; 2x faster than
# 128 KiB at 2048x2048, k = 3 and 7). With more threads, bands just under ATen's parallel grain (32768
# elements) so that every op runs on the calling thread: on few, shared cores the thread pool's barrier
# stalls whole scheduler slices, and 1 MiB bands ran 4x slower with 2 threads than 128 KiB bands did.
_BAND_BYTES_ONE_THREAD = 1 << 20
_SERIAL_ELEMENTS = 32767


def _no_gradient(*tensors: torch.Tensor) -> bool:
    """True when autograd (reverse or forward mode) cannot reach any of ``tensors``."""
    return all(is_constant(t) for t in tensors)


def _band_rows(out_w: int, itemsize: int) -> int:
    """Output rows per band (see ``_BAND_BYTES_ONE_THREAD``)."""
    if torch.get_num_threads() == 1:
        return max(1, _BAND_BYTES_ONE_THREAD // (out_w * itemsize))
    return max(1, _SERIAL_ELEMENTS // out_w)


def corr2d_direct(X: torch.Tensor, K: torch.Tensor, stride: tuple[int, int] = (1, 1)) -> torch.Tensor:
    """The shared sum of shifted slices (``methods.corr2d_direct``); band by band in the cache when constant."""
    (s_h, s_w), (h, w) = stride, K.shape
    out_h, out_w = methods.valid_shape(X.shape, K.shape, stride)
    if out_h * out_w * h * w < _SERIAL_ELEMENTS or not _no_gradient(X, K):  # small, or autograd must see it
        return methods.corr2d_direct(X, K, stride)
    taps = K.tolist()
    Y = torch.empty((out_h, out_w), dtype=X.dtype, device=X.device)
    cols = (out_w - 1) * s_w + 1
    step = _band_rows(out_w, X.element_size())
    for start in range(0, out_h, step):  # why: each band of Y stays in the cache for all h * w updates
        y, rows = Y[start:start + step], (min(start + step, out_h) - start - 1) * s_h + 1
        for a in range(h):
            for b in range(w):
                source = X[start * s_h + a:start * s_h + a + rows:s_h, b:b + cols:s_w]
                if a == b == 0:
                    torch.mul(source, taps[0][0], out=y)
                else:
                    y.add_(source, alpha=taps[a][b])  # one fused multiply-add per element
    return Y


def corr2d_separable(X: torch.Tensor, column: torch.Tensor, row: torch.Tensor,
                     stride: tuple[int, int] = (1, 1)) -> torch.Tensor:
    """A row pass then a column pass (``methods.corr2d_separable``); band by band in the cache when constant.

    Short kernels filter each band's input rows and then its columns while both are in the cache; tall
    ones (whose bands would filter more than a quarter of their rows twice) run the row pass over the
    whole input first, into one output-sized buffer, then the column pass, each band by band.
    """
    (s_h, s_w), h, w = stride, column.shape[0], row.shape[0]
    out_h, out_w = methods.valid_shape(X.shape, (h, w), stride)
    if out_h * out_w * (h + w) < _SERIAL_ELEMENTS or not _no_gradient(X, column, row):
        return methods.corr2d_separable(X, column, row, stride)
    column, row = column.tolist(), row.tolist()
    cols = (out_w - 1) * s_w + 1
    step = _band_rows(out_w, X.element_size())  # rows of the row pass's buffer per band
    fused = (step - h) // s_h + 1 >= 4 * (h - 1)
    Z = torch.empty((step if fused else X.shape[0], out_w), dtype=X.dtype, device=X.device)
    Y = torch.empty((out_h, out_w), dtype=X.dtype, device=X.device)

    def row_pass(first: int, last: int, z: torch.Tensor) -> None:  # z = sum_b X[first:last, b::s_w] * row[b]
        torch.mul(X[first:last, 0:cols:s_w], row[0], out=z)
        for b in range(1, w):
            z.add_(X[first:last, b:b + cols:s_w], alpha=row[b])

    def column_pass(z: torch.Tensor, y: torch.Tensor) -> None:  # y = sum_a z[a::s_h] * column[a]
        rows = (y.shape[0] - 1) * s_h + 1
        torch.mul(z[0:rows:s_h], column[0], out=y)
        for a in range(1, h):
            y.add_(z[a:a + rows:s_h], alpha=column[a])

    if fused:
        band = (step - h) // s_h + 1  # output rows whose input rows fit in Z
        for start in range(0, out_h, band):
            stop = min(start + band, out_h)
            first, last = start * s_h, (stop - 1) * s_h + h
            row_pass(first, last, Z[:last - first])
            column_pass(Z[:last - first], Y[start:stop])
    else:
        for start in range(0, X.shape[0], step):
            row_pass(start, min(start + step, X.shape[0]), Z[start:start + step])
        band = max(1, step // s_h)
        for start in range(0, out_h, band):
            column_pass(Z[start * s_h:], Y[start:start + band])
    return Y


def _kernel_spectrum(K: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """``conj(rfft2(K, grid))``, cheaply: an rfft along the width of K's h rows only, then an fft down the height.

    Why: padding K to the grid and calling rfft2 would transform ``grid[0] - h`` rows of zeros.
    """
    return torch.fft.fft(torch.fft.rfft(K, n=grid[1], dim=1), n=grid[0], dim=0).conj()


def _fft_tile(kernel_shape: tuple[int, int], input_shape: tuple[int, int]) -> tuple[int, int]:
    """The FFT tile per axis: the whole axis up to twice about 8 kernel sizes (at least 256), else as
    many tiles of about that size as the axis needs, each cut to the smallest 5-smooth length that covers it.

    Why: many small transforms (overlap-save) stay in the cache and cost fewer operations per pixel
    (the log of the tile, not of the image); 8 kernels wide spends at most an eighth of a tile on overlap.
    """
    tile = []
    for k, n in zip(kernel_shape, input_shape):
        target = max(256, 8 * k)
        if n <= 2 * target:
            tile.append(methods.fast_length(n))
        else:
            count = -(-(n - k + 1) // (target - k + 1))
            tile.append(methods.fast_length(-(-(n - k + 1) // count) + k - 1))
    return tuple(tile)


# Pixels of tiles per FFT call: few, large calls (each is one parallel region, and on busy, shared cores
# every region can stall for a scheduler slice: one call per row of tiles ran 10x slower there with two
# threads), yet a bounded working set (at 2048x2048: 3 calls; the whole image in one call took twice the
# memory).
_FFT_CHUNK = 1 << 21


def corr2d_fft(X: torch.Tensor, K: torch.Tensor, stride: tuple[int, int] = (1, 1)) -> torch.Tensor:
    """Cross-correlation through ``torch.fft`` on overlapping tiles (overlap-save), differentiable throughout.

    Each tile of ``T`` rows and columns gives ``T - k + 1`` valid output rows and columns: a circular
    correlation with the kernel wraps only into the last ``k - 1`` of them, which are dropped. Tiles start
    every ``T - k + 1`` pixels, so the valid parts tile the output exactly (the input is zero-padded at the
    bottom and right to a whole number of tiles). Rows of tiles are transformed about ``_FFT_CHUNK`` pixels
    at a time, so the extra memory beyond the padded input and the output stays a few such chunks.
    """
    (h, w), (n_h, n_w) = K.shape, X.shape
    out_h, out_w = n_h - h + 1, n_w - w + 1  # unstrided; the stride is taken at the end
    t_h, t_w = _fft_tile((h, w), (n_h, n_w))
    step_h, step_w = t_h - h + 1, t_w - w + 1
    tiles_h, tiles_w = -(-out_h // step_h), -(-out_w // step_w)
    padded = F.pad(X, (0, (tiles_w - 1) * step_w + t_w - n_w, 0, (tiles_h - 1) * step_h + t_h - n_h))
    kernel = _kernel_spectrum(K, (t_h, t_w))
    per_call = max(1, _FFT_CHUNK // (tiles_w * t_h * t_w))  # rows of tiles per transform
    constant = _no_gradient(X, K)
    bands = []
    for i in range(0, tiles_h, per_call):
        j = min(i + per_call, tiles_h)
        tiles = padded[i * step_h:(j - 1) * step_h + t_h].unfold(0, t_h, step_h).unfold(1, t_w, step_w)
        spectrum = torch.fft.rfft2(tiles)
        spectrum = spectrum.mul_(kernel) if constant else spectrum * kernel  # in place: one buffer less
        valid = torch.fft.irfft2(spectrum, s=(t_h, t_w))[..., :step_h, :step_w]
        bands.append(valid.permute(0, 2, 1, 3).reshape((j - i) * step_h, tiles_w * step_w))
    return torch.cat(bands)[:out_h:stride[0], :out_w:stride[1]]


def corr2d_native(X: torch.Tensor, K: torch.Tensor, stride: tuple[int, int]) -> torch.Tensor:
    """``F.conv2d`` on the tab's (example, channel, height, width) layout, one example and one channel."""
    return F.conv2d(X[None, None], K[None, None], stride=stride)[0, 0]
