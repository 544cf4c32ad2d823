"""PyTorch fast paths for ``corr2d``: the methods ``auto`` chooses between, and its cost-model numbers.

They compute the valid cross-correlation of an already padded input (see ``d2lconv.backends``).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from d2lconv import _numba, methods
from d2lconv._parallel import num_threads, run_bands
from d2lconv.backends.torch.tensors import is_constant, reshape, stack

# The two numbers of auto's cost model, ratios of this adapter's own methods (so they carry over between
# machines), measured in one process at N = 512, 1024 and 2048 with one intra-op thread: a "pass" is the time
# of corr2d_direct's banded path divided by its taps (median over k = 3, 5, 7: 0.04, 0.18 and 0.73 ms);
# corr2d_fft (tiled) cost 50-86 passes over k = 3..31 (median about 60), whatever the kernel size.
FFT_PASSES = 60
# F.conv2d is one call where the other methods are many small ones: it beat direct and fft below about
# 1.3e5 (k = 2), 3e5 (k = 3) and 4e5 (k = 7) multiply-adds (N = 16..512, same process, median of ~2 ms samples).
NATIVE_BELOW = 1 << 18
NATIVE_TAPS = 0
# With the Numba accelerator (d2lconv._numba) a direct pass costs a fraction of the above: the FFT (same
# transforms) then costs about this many compiled passes (2048x2048: the compiled direct sum met the FFT
# between k = 15 and 19), and no conv op beats it at any size.
FFT_PASSES_COMPILED = 300
ONE = (1, 1)


# Fast paths. PyTorch runs one operation at a time, so the shared sum of shifted slices streams the whole
# output through memory twice per kernel element. When no gradient can reach the result (nothing needs one,
# or grad mode is off, and no forward-mode tangent), direct and separable work on bands of output rows that
# stay in the CPU cache, with one fused in-place multiply-add per kernel element (``out.add_(x, alpha=k)``).
# In-place ops and Python-float weights are invisible to autograd, so anything that needs a gradient takes
# the shared differentiable version instead. Same arithmetic, same values (up to float32 rounding order).
# Threads: the bands run on ``torch.get_num_threads()`` threads of d2lconv's pool (``d2lconv._parallel``),
# each band just under ATen's parallel grain (32768 elements) so that every op runs on the thread that
# calls it: ATen's own thread pool splitting each small op costs a barrier per op, and on few, shared cores
# such barriers stall whole scheduler slices (1 MiB bands ran 4x slower with 2 ATen threads than 128 KiB
# bands on one thread; with d2lconv limited to one thread but ATen's two, 1 MiB bands at k = 7 took 2.1 s
# against 0.06 s on a busy machine). With ``torch.set_num_threads(1)`` (ATen's pool serial), bands of about
# 1 MiB of output rows (fewer Python steps; 2x faster than 128 KiB at 2048x2048, k = 3 and 7).
# With Numba installed, constant float tensors run as compiled loops on the tensors' memory instead
# (``d2lconv._numba``).
_BAND_BYTES_ONE_THREAD = 1 << 20
_SERIAL_ELEMENTS = 32767


def _no_gradient(*tensors: torch.Tensor) -> bool:
    """True when autograd (reverse or forward mode) cannot reach any of ``tensors``."""
    return all(is_constant(t) for t in tensors)


def _band_elements(itemsize: int) -> int:
    """Output elements per band (see ``_BAND_BYTES_ONE_THREAD``): large only where ATen runs every op on the
    calling thread anyway (``torch.get_num_threads() == 1``), whatever d2lconv's own thread count."""
    if torch.get_num_threads() == 1:
        return max(1, _BAND_BYTES_ONE_THREAD // itemsize)
    return _SERIAL_ELEMENTS


def _tiles(planes: int, out_h: int, out_w: int, itemsize: int) -> tuple[int, int]:
    """``(planes, rows)`` per band of a ``(planes, out_h, out_w)`` output: all planes' rows while one row of
    every plane fits the band, else fewer planes at a time (each band is one strided 3-D slice)."""
    budget = _band_elements(itemsize)
    if planes * out_w <= budget:
        return planes, min(out_h, budget // (planes * out_w))
    rows = min(out_h, max(1, budget // out_w))
    return max(1, budget // (rows * out_w)), rows


def _planes(X: torch.Tensor) -> torch.Tensor:
    """``X`` as a stack of 2-D planes ``(B, H, W)`` (a view when its leading axes allow it)."""
    return X.reshape((-1, *X.shape[-2:]))


_FLOATS = (torch.float32, torch.float64)


def _accelerated(*tensors: torch.Tensor) -> bool:
    """Whether the Numba accelerator takes these tensors: on, CPU, float32/float64, no gradient to keep."""
    if _numba.get_accelerator() is None:
        return False
    dtype = tensors[0].dtype
    return dtype in _FLOATS and all(t.is_cpu and t.dtype is dtype and is_constant(t) for t in tensors)


def _arrays(*tensors: torch.Tensor) -> list[np.ndarray]:
    """The tensors' memory as NumPy arrays (no copy; conjugate or negative views resolved first)."""
    return [t.detach().resolve_conj().resolve_neg().numpy() for t in tensors]


def tile_grid(count: int, out_h: int, chunk: int, step: int) -> tuple[int, list[tuple[int, int]]]:
    """The bands of a ``(count, out_h, ...)`` output, ``chunk`` planes by ``step`` rows: ``(bands, starts)``
    with band ``i`` starting at plane and row ``starts[i]``."""
    starts = [(p, r) for p in range(0, count, chunk) for r in range(0, out_h, step)]
    return len(starts), starts


def corr2d_direct(X: torch.Tensor, K: torch.Tensor, stride: tuple[int, int] = ONE,
                  dilation: tuple[int, int] = ONE) -> torch.Tensor:
    """The shared sum of shifted slices (``methods.corr2d_direct``); band by band in the cache when constant.

    Leading axes (a batch) are one more axis of each band: the same rows of several planes at once.
    """
    if _accelerated(X, K):
        return torch.from_numpy(_numba.corr2d_direct(*_arrays(X, K), stride, "torch", dilation))
    (s_h, s_w), (d_h, d_w), (h, w) = stride, dilation, K.shape
    out_h, out_w = methods.valid_shape(X.shape, K.shape, stride, dilation)
    planes = _planes(X)
    count = planes.shape[0]
    if count * out_h * out_w * h * w < _SERIAL_ELEMENTS or not _no_gradient(X, K):  # small, or autograd needs it
        return methods.corr2d_direct(X, K, stride, dilation)
    taps = K.tolist()
    Y = torch.empty((count, out_h, out_w), dtype=X.dtype, device=X.device)
    cols = (out_w - 1) * s_w + 1
    threads = num_threads("torch")
    chunk, step = _tiles(count, out_h, out_w, X.element_size())
    bands, starts = tile_grid(count, out_h, chunk, step)

    def work(first: int, last: int) -> None:  # why: each band of Y stays in the cache for all h * w updates
        for p, start in starts[first:last]:
            y, rows = Y[p:p + chunk, start:start + step], (min(start + step, out_h) - start - 1) * s_h + 1
            for a in range(h):
                top = start * s_h + a * d_h
                for b in range(w):
                    source = planes[p:p + chunk, top:top + rows:s_h, b * d_w:b * d_w + cols:s_w]
                    if a == b == 0:
                        torch.mul(source, taps[0][0], out=y)
                    else:
                        y.add_(source, alpha=taps[a][b])  # one fused multiply-add per element

    run_bands(work, bands, 1, threads)
    return Y.reshape((*X.shape[:-2], out_h, out_w))


def corr2d_separable(X: torch.Tensor, column: torch.Tensor, row: torch.Tensor,
                     stride: tuple[int, int] = ONE, dilation: tuple[int, int] = ONE) -> torch.Tensor:
    """A row pass then a column pass (``methods.corr2d_separable``); band by band in the cache when constant.

    Short kernels filter each band's input rows and then its columns while both are in the cache; tall
    ones (whose bands would filter more than a quarter of their rows twice) run the row pass over the
    whole input first, into one output-sized buffer, then the column pass, each band by band.
    """
    if _accelerated(X, column, row):
        return torch.from_numpy(_numba.corr2d_separable(*_arrays(X, column, row), stride, "torch", dilation))
    (s_h, s_w), (d_h, d_w), h, w = stride, dilation, column.shape[0], row.shape[0]
    out_h, out_w = methods.valid_shape(X.shape, (h, w), stride, dilation)
    planes = _planes(X)
    count = planes.shape[0]
    if count * out_h * out_w * (h + w) < _SERIAL_ELEMENTS or not _no_gradient(X, column, row):
        return methods.corr2d_separable(X, column, row, stride, dilation)
    column, row = column.tolist(), row.tolist()
    span = (h - 1) * d_h + 1
    cols = (out_w - 1) * s_w + 1
    threads = num_threads("torch")
    chunk, step = _tiles(count, planes.shape[1], out_w, X.element_size())  # rows of the row pass's buffer
    fused = (step - span) // s_h + 1 >= 4 * (span - 1)
    Y = torch.empty((count, out_h, out_w), dtype=X.dtype, device=X.device)

    def row_pass(x: torch.Tensor, first: int, last: int, z: torch.Tensor) -> None:  # z = sum_b x[b::s_w] * row[b]
        torch.mul(x[:, first:last, 0:cols:s_w], row[0], out=z)
        for b in range(1, w):
            z.add_(x[:, first:last, b * d_w:b * d_w + cols:s_w], alpha=row[b])

    def column_pass(z: torch.Tensor, y: torch.Tensor) -> None:  # y = sum_a z[a::s_h] * column[a]
        rows = (y.shape[1] - 1) * s_h + 1
        torch.mul(z[:, 0:rows:s_h], column[0], out=y)
        for a in range(1, h):
            y.add_(z[:, a * d_h:a * d_h + rows:s_h], alpha=column[a])

    if fused:  # both passes of a band while its rows are in the cache, a buffer per band
        band = (step - span) // s_h + 1  # output rows whose input rows fit in a band
        bands, starts = tile_grid(count, out_h, chunk, band)

        def work(first_band: int, last_band: int) -> None:
            for p, start in starts[first_band:last_band]:
                stop = min(start + band, out_h)
                first, last = start * s_h, (stop - 1) * s_h + span
                x = planes[p:p + chunk]
                z = torch.empty((x.shape[0], last - first, out_w), dtype=X.dtype, device=X.device)
                row_pass(x, first, last, z)
                column_pass(z, Y[p:p + chunk, start:stop])

        run_bands(work, bands, 1, threads)
    else:  # the row pass over every input row, then the column pass, each band by band
        Z = torch.empty((count, planes.shape[1], out_w), dtype=X.dtype, device=X.device)
        bands, starts = tile_grid(count, planes.shape[1], chunk, step)

        def rows_of(first_band: int, last_band: int) -> None:
            for p, start in starts[first_band:last_band]:
                stop = min(start + step, planes.shape[1])
                row_pass(planes[p:p + chunk], start, stop, Z[p:p + chunk, start:stop])

        run_bands(rows_of, bands, 1, threads)
        band = max(1, step // s_h)
        bands, starts = tile_grid(count, out_h, chunk, band)

        def columns_of(first_band: int, last_band: int) -> None:
            for p, start in starts[first_band:last_band]:
                column_pass(Z[p:p + chunk, start * s_h:], Y[p:p + chunk, start:start + band])

        run_bands(columns_of, bands, 1, threads)
    return Y.reshape((*X.shape[:-2], out_h, out_w))


def _kernel_spectrum(K: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """``conj(rfft2(K, grid))``, cheaply: an rfft along the width of K's h rows only, then an fft down the height.

    Why: padding K to the grid and calling rfft2 would transform ``grid[0] - h`` rows of zeros.
    """
    return torch.fft.fft(torch.fft.rfft(K, n=grid[1], dim=1), n=grid[0], dim=0).conj()


# Pixels of tiles per FFT call: few, large calls (each is one parallel region, and on busy, shared cores
# every region can stall for a scheduler slice: one call per row of tiles ran 10x slower there with two
# threads), yet a bounded working set (at 2048x2048: 3 calls; the whole image in one call took twice the
# memory).
_FFT_CHUNK = 1 << 21


def corr2d_fft(X: torch.Tensor, K: torch.Tensor, stride: tuple[int, int] = ONE,
               dilation: tuple[int, int] = ONE) -> torch.Tensor:
    """Cross-correlation through ``torch.fft`` on overlapping tiles (overlap-save), differentiable throughout.

    Each tile of ``T`` rows and columns gives ``T - k + 1`` valid output rows and columns: a circular
    correlation with the kernel wraps only into the last ``k - 1`` of them, which are dropped. Tiles start
    every ``T - k + 1`` pixels, so the valid parts tile the output exactly (the input is zero-padded at the
    bottom and right to a whole number of tiles). Rows of tiles are transformed about ``_FFT_CHUNK`` pixels
    at a time, so the extra memory beyond the padded input and the output stays a few such chunks.
    Leading axes (a batch) are transformed together; a dilated kernel is spread out with zeros first.
    """
    if dilation != ONE:
        K = methods.dilate(K, dilation, stack=stack, reshape=reshape)
    planes = _planes(X)
    (h, w), (count, n_h, n_w) = K.shape, planes.shape
    out_h, out_w = n_h - h + 1, n_w - w + 1  # unstrided; the stride is taken at the end
    t_h, t_w = methods.fft_tile((h, w), (n_h, n_w))
    step_h, step_w = t_h - h + 1, t_w - w + 1
    tiles_h, tiles_w = -(-out_h // step_h), -(-out_w // step_w)
    padded = F.pad(planes, (0, (tiles_w - 1) * step_w + t_w - n_w, 0, (tiles_h - 1) * step_h + t_h - n_h))
    kernel = _kernel_spectrum(K, (t_h, t_w))
    per_call = max(1, _FFT_CHUNK // (count * tiles_w * t_h * t_w))  # rows of tiles per transform
    constant = _no_gradient(X, K)
    bands = []
    for i in range(0, tiles_h, per_call):
        j = min(i + per_call, tiles_h)
        tiles = padded[:, i * step_h:(j - 1) * step_h + t_h].unfold(1, t_h, step_h).unfold(2, t_w, step_w)
        spectrum = torch.fft.rfft2(tiles)
        spectrum = spectrum.mul_(kernel) if constant else spectrum * kernel  # in place: one buffer less
        valid = torch.fft.irfft2(spectrum, s=(t_h, t_w))[..., :step_h, :step_w]
        bands.append(valid.permute(0, 1, 3, 2, 4).reshape(count, (j - i) * step_h, tiles_w * step_w))
    Y = torch.cat(bands, 1)[:, :out_h:stride[0], :out_w:stride[1]]
    return Y.reshape((*X.shape[:-2], *Y.shape[-2:]))


def corr2d_native(X: torch.Tensor, K: torch.Tensor, stride: tuple[int, int] = ONE,
                  dilation: tuple[int, int] = ONE) -> torch.Tensor:
    """``F.conv2d`` on the tab's (example, channel, height, width) layout: the planes as examples, one channel."""
    Y = F.conv2d(_planes(X)[:, None], K[None, None], stride=stride, dilation=dilation)
    return Y.reshape((*X.shape[:-2], *Y.shape[-2:]))


def compiled_costs(X: torch.Tensor, K: torch.Tensor) -> tuple[int, int, int] | None:
    """``(FFT_PASSES, NATIVE_BELOW, NATIVE_TAPS)`` for auto when the Numba accelerator will run these inputs."""
    return (FFT_PASSES_COMPILED, 0, 0) if _accelerated(X, K) else None
