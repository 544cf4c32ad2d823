"""The FFT method without its two surprises: non-finite values stay local, and ``auto`` stays exact.

An FFT mixes every input value into every output, so on its own
- one NaN or inf in the input makes every output non-finite (``direct`` makes only the windows that hold it
  non-finite), and
- its rounding error is relative to the whole image's magnitude, not to each output's own window: where the
  image is dark beside a bright part (or zero), the error can exceed the value itself.

Both are fixed here around each framework's own FFT, in NumPy on the concrete values:
- :func:`scan` looks at the input once: where it is not finite, its signs, and the largest RMS of its 64x64
  blocks (what the FFT's rounding error grows with);
- non-finite inputs are replaced by zeros for the FFT, and the outputs whose windows hold one are computed by
  the direct method (``method="fft"`` asked for by name does this, and keeps its global rounding error);
- ``auto`` also *certifies* each FFT output. Its rounding error is at most ``E = ERROR_BOUND * eps * rms *
  sum(|K|)``; the output is certified when ``E <= tolerance(dtype) * S``, where ``S = sum(|X| * |K|)`` over
  its own window (``tolerance`` is 1e-5 in float32). ``S >= |Y|``, so large outputs certify themselves; when
  the input or the kernel holds both signs (cancellation), ``S`` is computed by a second FFT, of ``|X|`` and
  ``|K|``. The tiles of output that fail (dark or zero regions beside bright ones, a single huge pixel) get
  an FFT of their own input, relative to their own scale, and the direct method where that fails too.

The bound's constant is empirical: over random, constant, uniform, spiky and half-bright images, kernels of
8 to 31 and images of 100 to 2048 pixels, the largest ratio of the FFT's error to ``eps * rms * sum(|K|)`` was
6.1 (NumPy/SciPy's pocketfft, PyTorch's tiled FFT, TensorFlow's and JAX's XLA FFTs); ``ERROR_BOUND`` is 16.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from d2lconv import methods

# Each output of auto is within TOLERANCE_EPS rounding units (the eps of its dtype) times sum(|X| * |K|) over its
# window of the exact result: 1e-5 in float32, 1.9e-14 in float64 (see tolerance()).
TOLERANCE_EPS = 84
# The FFT's rounding error is at most ERROR_BOUND * eps * (largest block RMS of X) * sum(|K|) (see above).
ERROR_BOUND = 16.0
BLOCK = 64
# What scan and the certificate cost, in passes over the input (min, max, squares, block sums, |Y| >= ...).
SCAN_PASSES = 6
# Tiles of output that fail get an FFT of their own input (relative to their own scale), at each of these sizes
# in turn (what still fails is usually a thin strip along a border between dark and bright) ...
_TILES = (256, 64)
# ... and then the direct method, in tiles of this size ...
_DIRECT_TILE = 64
# ... or in one call when more than this share of the tiles needs it.
_MOSTLY = 0.5
# Up to this many non-finite inputs are marked one by one; more are counted with an integral image.
_FEW = 4096
ONE = (1, 1)


@dataclass(frozen=True)
class Scan:
    """What one look at an input found (NumPy values, no gradients)."""

    values: np.ndarray  # the input as NumPy, non-finite entries replaced by 0
    nonfinite: np.ndarray | None  # where the input is NaN or +-inf, or None if it is all finite
    signed: bool  # it holds both negative and positive values
    rms: float  # the largest RMS over its BLOCK x BLOCK blocks (of the finite values)


def scan(adapter: ModuleType, X: Any) -> Scan | None:
    """Look at ``X`` once; None when its values cannot be seen (inside ``jax.jit``, ``tf.function``...)."""
    values = concrete(adapter, X)
    return None if values is None else _scan_values(values)


def _scan_values(values: np.ndarray, nonfinite: np.ndarray | None = None) -> Scan:
    low, high = values.min(), values.max()  # NaN-propagating: one non-finite value makes either non-finite
    if nonfinite is None and not (np.isfinite(low) and np.isfinite(high)):
        nonfinite = ~np.isfinite(values)
        values = np.where(nonfinite, values.dtype.type(0), values)
        low, high = values.min(), values.max()
    if nonfinite is not None and not nonfinite.any():
        nonfinite = None
    return Scan(values, nonfinite, bool(low < 0 < high), _largest_block_rms(values))


def tolerance(dtype: Any) -> float:
    """The relative accuracy auto guarantees for results of ``dtype``, relative to ``sum(|X| * |K|)``."""
    return TOLERANCE_EPS * float(np.finfo(dtype).eps)


def concrete(adapter: ModuleType, x: Any) -> np.ndarray | None:
    """``x`` as NumPy, or None when its values cannot be seen (a tracer, a graph tensor)."""
    try:
        return np.asarray(adapter.to_numpy(x))
    except Exception:
        return None


def _largest_block_rms(values: np.ndarray) -> float:
    """The largest root-mean-square over the ``BLOCK x BLOCK`` blocks of ``values`` (edge blocks may be smaller),
    over every 2-D slice of its leading axes (a batch)."""
    squares = np.square(values, dtype=np.float64 if values.dtype == np.float64 else np.float32)
    rows, cols = (np.arange(0, n, BLOCK) for n in values.shape[-2:])
    sums = np.add.reduceat(np.add.reduceat(squares, cols, axis=-1, dtype=np.float64), rows, axis=-2)
    counts = np.outer(np.diff(np.append(rows, values.shape[-2])), np.diff(np.append(cols, values.shape[-1])))
    return float(np.sqrt((sums / counts).max()))


def both_signs(values: np.ndarray) -> bool:
    return bool(values.min() < 0 < values.max())


def windows_holding(mask: np.ndarray, kernel_shape: tuple[int, int], stride: tuple[int, int]) -> np.ndarray:
    """For each output, whether its window holds a True of ``mask`` (any leading axes: each 2-D slice alone).

    ``kernel_shape`` is the window's span (a dilated kernel's: conservative, as the outputs marked are
    recomputed by an exact method anyway).
    """
    (h, w), (s_h, s_w) = kernel_shape, stride
    out_h, out_w = methods.valid_shape(mask.shape, kernel_shape, stride)
    planes = mask.reshape(-1, *mask.shape[-2:])
    spots = np.argwhere(planes)
    if len(spots) > _FEW:  # many: count them per window with an integral image
        table = np.zeros((planes.shape[0], planes.shape[1] + 1, planes.shape[2] + 1), dtype=np.int32)
        np.cumsum(np.cumsum(planes, axis=1, dtype=np.int32), axis=2, out=table[:, 1:, 1:])
        rows, cols = slice(0, (out_h - 1) * s_h + 1, s_h), slice(0, (out_w - 1) * s_w + 1, s_w)
        ends_h, ends_w = slice(h, h + (out_h - 1) * s_h + 1, s_h), slice(w, w + (out_w - 1) * s_w + 1, s_w)
        holding = (table[:, ends_h, ends_w] - table[:, rows, ends_w] - table[:, ends_h, cols]
                   + table[:, rows, cols]) > 0
        return holding.reshape(*mask.shape[:-2], out_h, out_w)
    holding = np.zeros((planes.shape[0], out_h, out_w), dtype=bool)
    for p, r, c in spots.tolist():  # the outputs i with i * s_h <= r < i * s_h + h, and likewise for the columns
        holding[p, max(0, -((h - 1 - r) // s_h)):r // s_h + 1, max(0, -((w - 1 - c) // s_w)):c // s_w + 1] = True
    return holding.reshape(*mask.shape[:-2], out_h, out_w)


def fft(adapter: ModuleType, X: Any, K: Any, stride: tuple[int, int], found: Scan | None = None,
        *, certify: bool = False, valid: tuple[int, int] | None = None, dilation: tuple[int, int] = ONE) -> Any:
    """The FFT method with non-finite inputs kept local and, with ``certify``, every output exact (see above).

    ``found`` is ``scan(adapter, X)`` if already made. Without concrete values (a tracer) this is the plain
    FFT method, which only ``method="fft"`` asked for by name reaches. Only the top-left ``valid`` outputs
    matter (a tile's overhang is cut off by the caller). ``X`` may carry leading axes (a batch, checked and
    patched together) and the kernel a ``dilation``.
    """
    if found is None:
        found = scan(adapter, X)
        if found is None:
            return adapter.corr2d_fft(X, K, stride, dilation)
    kernel = concrete(adapter, K)
    if kernel is None:
        return adapter.corr2d_fft(X, K, stride, dilation)
    if not np.isfinite(kernel).all():  # every window holds the kernel: every output is non-finite anyway
        return adapter.corr2d_direct(X, K, stride, dilation)
    clean = X if found.nonfinite is None else adapter.zero_where(X, found.nonfinite)
    Y = adapter.corr2d_fft(clean, K, stride, dilation)
    span = methods.dilated_shape(kernel.shape, dilation)
    exact = None if found.nonfinite is None else windows_holding(found.nonfinite, span, stride)
    if certify:
        certified = _certified(adapter, Y, K, kernel, stride, found, dilation)
        if exact is not None:
            certified &= ~exact
        exact = ~certified
    if exact is not None and valid is not None:
        exact[..., valid[0]:, :] = False
        exact[..., :, valid[1]:] = False
    if exact is None or not exact.any():
        return Y
    return _patch(adapter, Y, exact, X, K, stride, found if certify else None, dilation)


def _certified(adapter: ModuleType, Y: Any, K: Any, kernel: np.ndarray, stride: tuple[int, int],
               found: Scan, dilation: tuple[int, int] = ONE) -> np.ndarray:
    """Which FFT outputs are provably within ``tolerance * S`` of the exact result (NaN outputs are not)."""
    eps = float(np.finfo(adapter.dtype_of(Y)).eps)
    magnitude = np.abs(kernel, dtype=np.float64)
    error = ERROR_BOUND * eps * found.rms * float(magnitude.sum())  # bounds the FFT of |X| and |K| too
    threshold = error * (1 + 1 / (TOLERANCE_EPS * eps))  # then error <= tolerance * (S - error) <= tolerance * S
    certified = np.abs(np.asarray(adapter.to_numpy(Y))) >= threshold  # |Y| <= S, so this is a lower bound
    if certified.all() or not (found.signed or both_signs(kernel)):
        return certified  # one sign throughout: |Y| is S itself, a second FFT would find nothing new
    absolute = adapter.from_numpy(np.abs(found.values))
    S = adapter.corr2d_fft(absolute, adapter.from_numpy(magnitude.astype(found.values.dtype)), stride, dilation)
    return certified | (np.asarray(adapter.to_numpy(S)) >= threshold)


def _patch(adapter: ModuleType, Y: Any, exact: np.ndarray, X: Any, K: Any, stride: tuple[int, int],
           found: Scan | None, dilation: tuple[int, int] = ONE) -> Any:
    """``Y`` with every tile that holds a True of ``exact`` recomputed.

    With ``found`` (auto), a tile first gets a certified FFT of its own input, whose error is relative to that
    tile's own scale (a dark or empty region beside a bright one certifies there), then smaller tiles, and the
    direct method only where the smallest tiles' FFTs leave anything uncertified; without, the direct method. Tiles all
    have the same shape (the input is zero-padded at the bottom and right where they overhang), so compiling
    frameworks (XLA) compile each method once; the result is assembled by concatenation, so gradients flow
    through every part. Leading axes (a batch) are tiled together: a tile is marked if any of its slices is.
    """
    out_h, out_w = exact.shape[-2:]
    (h, w), (s_h, s_w) = methods.dilated_shape(tuple(K.shape), dilation), stride
    smaller = [size for size in _TILES if size < max(out_h, out_w)]  # a tile as large is the FFT that failed
    if not smaller:
        found = None
    size = smaller[0] if found is not None else _DIRECT_TILE
    t_h, t_w = min(size, out_h), min(size, out_w)
    starts_h, starts_w = range(0, out_h, t_h), range(0, out_w, t_w)
    marked = [[bool(exact[..., i:i + t_h, j:j + t_w].any()) for j in starts_w] for i in starts_h]
    if found is None and sum(map(sum, marked)) > _MOSTLY * len(starts_h) * len(starts_w):
        return adapter.corr2d_direct(X, K, stride, dilation)  # one call: fewer steps than many small ones
    rows_in, cols_in = (t_h - 1) * s_h + h, (t_w - 1) * s_w + w  # the input one tile of output needs
    n_h, n_w = X.shape[-2:]
    lead = ((0, 0),) * (len(X.shape) - 2)

    def tile(top: int, left: int) -> Any:
        short = (max(top + rows_in - n_h, 0), max(left + cols_in - n_w, 0))
        window = X[..., top:top + rows_in, left:left + cols_in]
        if any(short):
            window = adapter.pad(window, (0, short[0]), (0, short[1]))
        if found is None:
            return adapter.corr2d_direct(window, K, stride, dilation)
        values = found.values[..., top:top + rows_in, left:left + cols_in]
        nonfinite = (None if found.nonfinite is None
                     else found.nonfinite[..., top:top + rows_in, left:left + cols_in])
        if any(short):
            values = np.pad(values, (*lead, (0, short[0]), (0, short[1])))
            nonfinite = None if nonfinite is None else np.pad(nonfinite, (*lead, (0, short[0]), (0, short[1])))
        own = _scan_values(values, nonfinite if nonfinite is not None else np.zeros(values.shape, bool))
        return fft(adapter, window, K, stride, own, certify=True,
                   valid=(min(t_h, out_h - top // s_h), min(t_w, out_w - left // s_w)), dilation=dilation)

    bands = []
    for start_h, row in zip(starts_h, marked):
        stop_h = min(start_h + t_h, out_h)
        if not any(row):
            bands.append(Y[..., start_h:stop_h, :])
            continue
        pieces, run = [], None  # run: the first column of the current stretch of unmarked tiles
        for start_w, mark in zip(starts_w, row):
            if not mark:
                run = start_w if run is None else run
                continue
            if run is not None:
                pieces.append(Y[..., start_h:stop_h, run:start_w])
                run = None
            stop_w = min(start_w + t_w, out_w)
            pieces.append(tile(start_h * s_h, start_w * s_w)[..., :stop_h - start_h, :stop_w - start_w])
        if run is not None:
            pieces.append(Y[..., start_h:stop_h, run:])
        bands.append(pieces[0] if len(pieces) == 1 else adapter.concat(pieces, -1))
    return bands[0] if len(bands) == 1 else adapter.concat(bands, -2)
