"""NumPy fast paths for ``corr2d``: the methods ``auto`` chooses between, and its cost-model numbers.

They compute the valid cross-correlation of an already padded input (see ``d2lconv.backends``).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from functools import partial, wraps
from typing import Any

import numpy as np

from d2lconv import methods
from d2lconv.backends.numpy.tensors import flip, reshape, stack

NO_NATIVE = "NumPy has no convolution operation of its own (use method='direct', 'separable' or 'fft')"
# A float32 FFT correlation costs about as much as this many in-cache multiply-add passes (2048x2048):
# 60 with numpy.fft, 36 with SciPy's faster transforms (see _fft_module).
FFT_PASSES = 36 if importlib.util.find_spec("scipy") else 60
NATIVE_BELOW = 0
NATIVE_TAPS = 0
ONE = (1, 1)


# NumPy evaluates one operation at a time, so the shared sum of shifted slices would stream the whole
# output through memory twice per kernel element. These versions work on bands of output rows small enough
# to stay in the CPU cache, with in-place multiply-adds: the same arithmetic, a fraction of the memory
# traffic, and never more than one band of extra memory.
_BAND_BYTES = 1 << 20


def _bands(rows: int, row_bytes: int) -> Iterator[tuple[int, int]]:
    """Consecutive ``(start, stop)`` row ranges of about ``_BAND_BYTES`` each."""
    step = max(1, _BAND_BYTES // max(row_bytes, 1))
    return ((start, min(start + step, rows)) for start in range(0, rows, step))


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


def _delivered(Y: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    """``Y``, or ``out`` holding it (``Y`` was computed in ``out`` unless its shape could not be a view of it)."""
    if out is None:
        return Y
    if not np.shares_memory(Y, out):
        out[...] = Y
    return out


def _planes(X: np.ndarray) -> np.ndarray:
    """``X`` as a stack of 2-D planes ``(B, H, W)`` (a view when its leading axes allow it)."""
    return X.reshape((-1, *X.shape[-2:]))


@_quiet
def corr2d_direct(X: np.ndarray, K: np.ndarray, stride: tuple[int, int] = ONE,
                  dilation: tuple[int, int] = ONE, *, out: np.ndarray | None = None) -> np.ndarray:
    """The shared sum of shifted slices (``methods.corr2d_direct``), band by band in the cache.

    Leading axes are one more axis of every band: each band holds the same rows of every plane. ``out``, if
    given, receives the result (the Dask backend writes each block's parts into its output).
    """
    (s_h, s_w), (d_h, d_w), taps = stride, dilation, K.tolist()
    out_h, out_w = methods.valid_shape(X.shape, K.shape, stride, dilation)
    planes = _planes(X)
    row_bytes = planes.shape[0] * out_w * X.itemsize
    if planes.shape[0] * out_h * out_w * K.size < _BAND_BYTES // 16:  # in the cache anyway: fewer Python steps
        Y = methods.corr2d_direct(X, K, stride, dilation)
        if out is None:
            return Y
        out[...] = Y
        return out
    Y = np.empty((planes.shape[0], out_h, out_w), dtype=X.dtype) if out is None else out.reshape(
        (planes.shape[0], out_h, out_w))
    scratch = np.empty_like(Y[:, :max(1, _BAND_BYTES // row_bytes)])
    for start, stop in _bands(out_h, row_bytes):
        terms = ((planes[:, start * s_h + a * d_h:(stop - 1) * s_h + a * d_h + 1:s_h,
                         b * d_w:b * d_w + (out_w - 1) * s_w + 1:s_w], taps[a][b])
                 for a in range(K.shape[0]) for b in range(K.shape[1]))
        _accumulate(Y[:, start:stop], terms, scratch[:, :stop - start])
    return _delivered(Y.reshape((*X.shape[:-2], out_h, out_w)), out)


@_quiet
def corr2d_separable(X: np.ndarray, column: np.ndarray, row: np.ndarray,
                     stride: tuple[int, int] = ONE, dilation: tuple[int, int] = ONE, *,
                     out: np.ndarray | None = None) -> np.ndarray:
    """A row pass then a column pass (``methods.corr2d_separable``), band by band in the cache."""
    (s_h, s_w), (d_h, d_w), h, w = stride, dilation, column.shape[0], row.shape[0]
    out_h, out_w = methods.valid_shape(X.shape, (h, w), stride, dilation)
    planes = _planes(X)
    row_bytes = planes.shape[0] * out_w * X.itemsize
    Y = np.empty((planes.shape[0], out_h, out_w), dtype=X.dtype) if out is None else out.reshape(
        (planes.shape[0], out_h, out_w))
    band = max(1, _BAND_BYTES // row_bytes)
    span = (h - 1) * d_h + 1
    rows_needed = (band - 1) * s_h + span
    Z = np.empty((planes.shape[0], rows_needed, out_w), dtype=X.dtype)
    scratch = np.empty_like(Z)
    for start, stop in _bands(out_h, row_bytes):
        first, last = start * s_h, (stop - 1) * s_h + span  # the input rows this band of output needs
        z = Z[:, :last - first]
        _accumulate(z, ((planes[:, first:last, b * d_w:b * d_w + (out_w - 1) * s_w + 1:s_w], v)
                        for b, v in enumerate(row.tolist())), scratch[:, :last - first])
        terms = ((z[:, a * d_h:a * d_h + (stop - start - 1) * s_h + 1:s_h], u) for a, u in enumerate(column.tolist()))
        _accumulate(Y[:, start:stop], terms, scratch[:, :stop - start])
    return _delivered(Y.reshape((*X.shape[:-2], out_h, out_w)), out)


def _fft_module() -> Any:
    """SciPy's ``scipy.fft`` where installed, else ``numpy.fft``: the same pocketfft algorithm, but SciPy's
    runs float32 2-D transforms about 3x faster (0.046 s against 0.16 s for a 2048x2048 rfft2 here)."""
    try:
        from scipy import fft
    except ImportError:
        fft = np.fft
    return fft


corr2d_fft = _quiet(partial(
    methods.corr2d_fft,
    rfft2=lambda x, s: _fft_module().rfft2(x, s),
    irfft2=lambda x, s: _fft_module().irfft2(x, s),
    flip=flip,
    dilate=partial(methods.dilate, stack=stack, reshape=reshape),
))


corr2d_native = None
