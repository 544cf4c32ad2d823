"""NumPy fast paths for ``corr2d``: the methods ``auto`` chooses between, and its cost-model numbers.

They compute the valid cross-correlation of an already padded input (see ``d2lconv.backends``).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from functools import partial, wraps
from typing import Any

import numpy as np

from d2lconv import _numba, methods
from d2lconv._parallel import num_threads, run_bands
from d2lconv.backends.numpy.tensors import flip, reshape, stack

NO_NATIVE = "NumPy has no convolution operation of its own (use method='direct', 'separable' or 'fft')"
# A float32 FFT correlation costs about as much as this many in-cache multiply-add passes (2048x2048):
# 60 with numpy.fft, 36 with SciPy's faster transforms (see _fft_module).
FFT_PASSES = 36 if importlib.util.find_spec("scipy") else 60
NATIVE_BELOW = 0
NATIVE_TAPS = 0
# With the Numba accelerator (d2lconv._numba) a direct pass costs a fraction of the above: the FFT (same
# transforms) then costs about this many compiled passes (2048x2048: the compiled direct sum met the FFT
# between k = 15 and 19), and no conv op beats it at any size.
FFT_PASSES_COMPILED = 300
ONE = (1, 1)


# NumPy evaluates one operation at a time, so the shared sum of shifted slices would stream the whole
# output through memory twice per kernel element. These versions work on bands of output rows small enough
# to stay in the CPU cache, with in-place multiply-adds: the same arithmetic, a fraction of the memory
# traffic, and never more than one band of extra memory per thread. NumPy releases the GIL inside each
# operation, so the bands run on d2lconv's threads (``d2lconv._parallel``); with Numba installed, constant
# float inputs run as compiled loops instead (``d2lconv._numba``).
_BAND_BYTES = 1 << 20


def _band_rows(row_bytes: int) -> int:
    """Output rows per band: about ``_BAND_BYTES`` of them."""
    return max(1, _BAND_BYTES // max(row_bytes, 1))


def _accumulate(out: np.ndarray, terms: Iterator[tuple[np.ndarray, float]], scratch: np.ndarray) -> None:
    """``out[...] = sum(source * weight)`` with in-place operations only."""
    source, weight = next(terms)
    np.multiply(source, weight, out=out)
    for source, weight in terms:
        np.multiply(source, weight, out=scratch)
        out += scratch


def _quiet(function: Callable) -> Callable:
    """``function`` without NumPy's "invalid value" warnings: NaN from ``inf - inf`` or ``inf * 0`` is the right
    answer for a window that holds an inf (every other framework gives it silently)."""

    @wraps(function)
    def quiet(*args: Any, **kwargs: Any) -> Any:
        with np.errstate(invalid="ignore"):
            return function(*args, **kwargs)

    return quiet


def _planes(X: np.ndarray) -> np.ndarray:
    """``X`` as a stack of 2-D planes ``(B, H, W)`` (a view when its leading axes allow it)."""
    return X.reshape((-1, *X.shape[-2:]))


@_quiet
def corr2d_direct(X: np.ndarray, K: np.ndarray, stride: tuple[int, int] = ONE,
                  dilation: tuple[int, int] = ONE) -> np.ndarray:
    """The shared sum of shifted slices (``methods.corr2d_direct``), band by band in the cache.

    Leading axes are one more axis of every band: each band holds the same rows of every plane. Bands run on
    d2lconv's threads, or, with the Numba accelerator, as compiled loops.
    """
    if _numba.wanted(X, K):
        return _numba.corr2d_direct(X, K, stride, "numpy", dilation)
    (s_h, s_w), (d_h, d_w), taps = stride, dilation, K.tolist()
    out_h, out_w = methods.valid_shape(X.shape, K.shape, stride, dilation)
    planes = _planes(X)
    row_bytes = planes.shape[0] * out_w * X.itemsize
    if planes.shape[0] * out_h * out_w * K.size < _BAND_BYTES // 16:  # in the cache anyway: fewer Python steps
        return methods.corr2d_direct(X, K, stride, dilation)
    Y = np.empty((planes.shape[0], out_h, out_w), dtype=X.dtype)
    cols = (out_w - 1) * s_w + 1

    def band(start: int, stop: int) -> None:
        terms = ((planes[:, start * s_h + a * d_h:(stop - 1) * s_h + a * d_h + 1:s_h, b * d_w:b * d_w + cols:s_w],
                  taps[a][b]) for a in range(K.shape[0]) for b in range(K.shape[1]))
        _accumulate(Y[:, start:stop], terms, np.empty_like(Y[:, start:stop]))

    run_bands(_quiet(band), out_h, _band_rows(row_bytes), num_threads("numpy"))  # _quiet: errstate is per thread
    return Y.reshape((*X.shape[:-2], out_h, out_w))


@_quiet
def corr2d_separable(X: np.ndarray, column: np.ndarray, row: np.ndarray,
                     stride: tuple[int, int] = ONE, dilation: tuple[int, int] = ONE) -> np.ndarray:
    """A row pass then a column pass (``methods.corr2d_separable``), band by band in the cache."""
    if _numba.wanted(X, column, row):
        return _numba.corr2d_separable(X, column, row, stride, "numpy", dilation)
    (s_h, s_w), (d_h, d_w), h, w = stride, dilation, column.shape[0], row.shape[0]
    out_h, out_w = methods.valid_shape(X.shape, (h, w), stride, dilation)
    planes = _planes(X)
    row_bytes = planes.shape[0] * out_w * X.itemsize
    Y = np.empty((planes.shape[0], out_h, out_w), dtype=X.dtype)
    span = (h - 1) * d_h + 1
    cols = (out_w - 1) * s_w + 1
    column, row = column.tolist(), row.tolist()

    def band(start: int, stop: int) -> None:
        first, last = start * s_h, (stop - 1) * s_h + span  # the input rows this band of output needs
        z, scratch = (np.empty((planes.shape[0], last - first, out_w), dtype=X.dtype) for _ in range(2))
        _accumulate(z, ((planes[:, first:last, b * d_w:b * d_w + cols:s_w], v) for b, v in enumerate(row)), scratch)
        terms = ((z[:, a * d_h:a * d_h + (stop - start - 1) * s_h + 1:s_h], u) for a, u in enumerate(column))
        _accumulate(Y[:, start:stop], terms, scratch[:, :stop - start])

    run_bands(_quiet(band), out_h, _band_rows(row_bytes), num_threads("numpy"))
    return Y.reshape((*X.shape[:-2], out_h, out_w))


def _fft_module() -> Any:
    """SciPy's ``scipy.fft`` where installed, else ``numpy.fft``: the same pocketfft algorithm, but SciPy's
    runs float32 2-D transforms about 3x faster (0.046 s against 0.16 s for a 2048x2048 rfft2 here)."""
    try:
        from scipy import fft
    except ImportError:
        fft = np.fft
    return fft


def _workers(threads: int) -> dict[str, int]:
    """SciPy's transforms take a thread count per call (``workers``); NumPy's run on one thread."""
    return {} if _fft_module() is np.fft else {"workers": threads}


def _rfft2(x: np.ndarray, s: tuple[int, int]) -> np.ndarray:
    return _fft_module().rfft2(x, s, **_workers(num_threads("numpy")))


def _irfft2(x: np.ndarray, s: tuple[int, int]) -> np.ndarray:
    return _fft_module().irfft2(x, s, **_workers(num_threads("numpy")))


# Above this many pixels per plane the whole image's spectrum falls out of the cache: overlapping tiles of a
# few hundred pixels (overlap-save), transformed a row of tiles at a time on d2lconv's threads, cost less.
TILED_ABOVE = 1 << 20


def _tiled_fft(planes: np.ndarray, K: np.ndarray) -> np.ndarray:
    """The unstrided valid correlation of every plane of ``planes`` ``(P, H, W)`` by overlap-save: each tile of
    ``T`` rows and columns gives ``T - k + 1`` valid rows and columns (the circular correlation wraps only into
    the last ``k - 1``, which are dropped). A row of tiles of every plane is one band of work."""
    (h, w), (count, n_h, n_w), fft = K.shape, planes.shape, _fft_module()
    out_h, out_w = n_h - h + 1, n_w - w + 1
    t_h, t_w = methods.fft_tile((h, w), (n_h, n_w))
    step_h, step_w = t_h - h + 1, t_w - w + 1
    tiles_h, tiles_w = -(-out_h // step_h), -(-out_w // step_w)
    padded = np.pad(planes, ((0, 0), (0, (tiles_h - 1) * step_h + t_h - n_h), (0, (tiles_w - 1) * step_w + t_w - n_w)))
    # conj(rfft2(K)) on the tile: multiplying by it correlates (no flip)
    kernel = np.conj(fft.fft(fft.rfft(K, n=t_w, axis=1), n=t_h, axis=0)).astype(
        np.result_type(planes.dtype, np.complex64))
    Y = np.empty((count, tiles_h * step_h, tiles_w * step_w), dtype=planes.dtype)

    def band(first: int, last: int) -> None:  # rows of tiles first..last, of every plane
        rows = padded[:, first * step_h:(last - 1) * step_h + t_h]
        tiles = np.lib.stride_tricks.sliding_window_view(rows, (t_h, t_w), axis=(1, 2))[:, ::step_h, ::step_w]
        spectrum = fft.rfft2(tiles, axes=(-2, -1))
        spectrum *= kernel
        valid = fft.irfft2(spectrum, s=(t_h, t_w), axes=(-2, -1))[..., :step_h, :step_w]
        Y[:, first * step_h:last * step_h] = valid.transpose(0, 1, 3, 2, 4).reshape(count, (last - first) * step_h, -1)

    run_bands(_quiet(band), tiles_h, 1, num_threads("numpy"))
    return Y[:, :out_h, :out_w]


_whole_fft = partial(methods.corr2d_fft, rfft2=_rfft2, irfft2=_irfft2, flip=flip,
                     dilate=partial(methods.dilate, stack=stack, reshape=reshape))


@_quiet
def corr2d_fft(X: np.ndarray, K: np.ndarray, stride: tuple[int, int] = ONE,
               dilation: tuple[int, int] = ONE) -> np.ndarray:
    """``methods.corr2d_fft`` with SciPy's transforms (``workers``: d2lconv's threads) where installed; large
    images with kernels of up to a quarter tile by overlapping tiles, a row of tiles per thread at a time."""
    span = methods.dilated_shape(K.shape, dilation)
    if X.shape[-2] * X.shape[-1] > TILED_ABOVE and 4 * max(span) <= 256:
        if dilation != ONE:
            K = methods.dilate(K, dilation, stack=stack, reshape=reshape)
        Y = _tiled_fft(_planes(X), K)[:, ::stride[0], ::stride[1]]
        return np.ascontiguousarray(Y).reshape((*X.shape[:-2], *Y.shape[-2:]))
    return _whole_fft(X, K, stride, dilation)


corr2d_native = None


def compiled_costs(X: np.ndarray, K: np.ndarray) -> tuple[int, int, int] | None:
    """``(FFT_PASSES, NATIVE_BELOW, NATIVE_TAPS)`` for auto when the Numba accelerator will run these inputs."""
    return (FFT_PASSES_COMPILED, 0, 0) if _numba.wanted(X, K) else None
