"""The optional Numba accelerator (``pip install 'd2lconv[numba]'``): compiled loops for constant inputs.

NumPy and eager PyTorch evaluate one operation at a time, so a sum of shifted slices streams the output
through memory once or twice per kernel element (at best through the cache, band by band). With Numba
installed, the NumPy, PyTorch and MXNet backends run the direct and separable methods on arrays that no
gradient flows to as compiled loops instead: each output row is built from its input rows while both sit in
the L1 cache, four kernel taps per vectorised pass, and bands of rows run on d2lconv's threads (the functions
release the GIL). Over channels, NumPy and PyTorch run filter banks and depthwise kernels (one input channel
per group, :func:`corr2d_bank`) the same way, every output channel written in place. Gradients, and
everything without Numba, take the framework paths.

Nothing here imports Numba until a call needs it; the compiled code is cached on disk (``cache=True``), so
a new process loads it (about half a second with Numba's import) instead of compiling again (a second or
two, once per installation). ``D2LCONV_NUMBA=0`` or
:func:`set_accelerator` (``None``) turns the accelerator off.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import numpy as np

from d2lconv._parallel import num_threads, run_bands

ENV_VAR = "D2LCONV_NUMBA"
NAMES = ("numba", None)
# Below this many multiply-adds one compiled call does the whole output, element by element: no bands, no
# copies (the book's 6x8 input costs about a microsecond).
SMALL_WORK = 1 << 12
# Below this many the row loops run on the calling thread alone: a band handed to another thread costs
# some microseconds, more than it saves on a few hundred thousand multiply-adds.
PARALLEL_WORK = 1 << 19
# Output rows per band: enough work per call to hide the dispatch (a few microseconds), small enough that
# threads share the rows evenly when one of them is descheduled.
_BAND_ELEMENTS = 1 << 16

_choice: str | None | bool = False  # False: not decided yet (environment and installation, at first use)
_kernels: Any = None


def set_accelerator(name: str | None) -> None:
    """``"numba"`` to use the Numba accelerator (it must be installed), ``None`` for the framework paths only."""
    global _choice
    if name not in NAMES:
        raise ValueError(f"unknown accelerator {name!r}; choose 'numba' or None")
    if name == "numba" and importlib.util.find_spec("numba") is None:
        raise ImportError("the 'numba' accelerator needs Numba, which is not installed; "
                          "install it with: pip install 'd2lconv[numba]'")
    _choice = name


def get_accelerator() -> str | None:
    """``"numba"`` when the accelerator is in use, else ``None``."""
    global _choice
    if _choice is False:
        wanted = os.environ.get(ENV_VAR, "").strip().lower() not in ("0", "false", "no", "off")
        _choice = "numba" if wanted and importlib.util.find_spec("numba") is not None else None
    return _choice


def wanted(*arrays: np.ndarray) -> bool:
    """Whether the accelerator is on and takes these NumPy arrays (float32 or float64, all of one dtype)."""
    if get_accelerator() is None:
        return False
    dtype = arrays[0].dtype if arrays else None
    return dtype is None or (dtype in _FLOATS and all(a.dtype == dtype for a in arrays))


_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _compile() -> Any:
    """Compile-on-first-use versions of the loops (each signature once; cached on disk)."""
    global _kernels
    if _kernels is not None:
        return _kernels
    import numba

    # No fastmath: results keep IEEE semantics (inf and NaN propagate as in NumPy); LLVM still vectorises
    # the inner loops, which carry no reduction.
    jit = numba.njit(nogil=True, cache=True)

    # X is a stack of planes (P, H, W) and Y (P, out_h, out_w); rows r0..r1 count through every plane's
    # output rows in turn (row r is row r % out_h of plane r // out_h), so bands split planes and rows alike.

    @jit
    def direct_row(x_plane, K, y, i, s_h, d_h, d_w):  # noqa: ANN001 - output row i of one plane, unit column stride
        h, w = K.shape
        n = y.shape[0]
        w4 = w - w % 4
        y[:] = 0
        for a in range(h):
            x = x_plane[i * s_h + a * d_h]
            for b in range(0, w4, 4):  # four taps per pass: a quarter of the loads and stores of y
                k0, k1, k2, k3 = K[a, b], K[a, b + 1], K[a, b + 2], K[a, b + 3]
                x0, x1, x2, x3 = x[b * d_w:], x[(b + 1) * d_w:], x[(b + 2) * d_w:], x[(b + 3) * d_w:]
                for j in range(n):
                    y[j] += x0[j] * k0 + x1[j] * k1 + x2[j] * k2 + x3[j] * k3
            b = w4  # the last one to three taps in one more pass
            if w - b == 3:
                k0, k1, k2 = K[a, b], K[a, b + 1], K[a, b + 2]
                x0, x1, x2 = x[b * d_w:], x[(b + 1) * d_w:], x[(b + 2) * d_w:]
                for j in range(n):
                    y[j] += x0[j] * k0 + x1[j] * k1 + x2[j] * k2
            elif w - b == 2:
                k0, k1, x0, x1 = K[a, b], K[a, b + 1], x[b * d_w:], x[(b + 1) * d_w:]
                for j in range(n):
                    y[j] += x0[j] * k0 + x1[j] * k1
            elif w - b == 1:
                k0, x0 = K[a, b], x[b * d_w:]
                for j in range(n):
                    y[j] += x0[j] * k0

    @jit
    def direct_rows(X, K, Y, r0, r1, s_h, d_h, d_w):  # noqa: ANN001 - unit column stride
        m = Y.shape[1]
        for r in range(r0, r1):
            p, i = r // m, r % m
            direct_row(X[p], K, Y[p, i], i, s_h, d_h, d_w)

    @jit
    def bank_rows(X, K, Y, r0, r1, s_h, d_h, d_w, per_group):  # noqa: ANN001 - X (B, C, H, W), K (O, h, w)
        # Y (B, O, m, n); row r is row r % m of output channel (r // m) % O of example r // (O * m), which
        # reads input channel o // per_group: every output channel written in place, no stacking.
        O, m = Y.shape[1], Y.shape[2]
        for r in range(r0, r1):
            e, o, i = r // (O * m), (r // m) % O, r % m
            direct_row(X[e, o // per_group], K[o], Y[e, o, i], i, s_h, d_h, d_w)

    @jit
    def direct_rows_strided(X, K, Y, r0, r1, s_h, s_w, d_h, d_w):  # noqa: ANN001
        h, w = K.shape
        m, n = Y.shape[1], Y.shape[2]
        for r in range(r0, r1):
            p, i = r // m, r % m
            y = Y[p, i]
            y[:] = 0
            for a in range(h):
                x = X[p, i * s_h + a * d_h]
                for b in range(w):
                    k0 = K[a, b]
                    for j in range(n):
                        y[j] += x[j * s_w + b * d_w] * k0

    @jit
    def separable_rows(X, column, row, Y, r0, r1, s_h, s_w, d_h, d_w):  # noqa: ANN001
        h, w = column.shape[0], row.shape[0]
        m, n = Y.shape[1], Y.shape[2]
        span = (h - 1) * d_h + 1
        for p in range(r0 // m, (r1 - 1) // m + 1):  # the planes this band touches, each on its own
            i0, i1 = max(r0 - p * m, 0), min(r1 - p * m, m)
            first, last = i0 * s_h, (i1 - 1) * s_h + span  # the input rows these output rows need
            Z = np.zeros((last - first, n), dtype=Y.dtype)
            for q in range(first, last):  # the row pass, into this band's scratch
                z, x = Z[q - first], X[p, q]
                for b in range(w):
                    k0 = row[b]
                    if s_w == 1:
                        x0 = x[b * d_w:]
                        for j in range(n):
                            z[j] += x0[j] * k0
                    else:
                        for j in range(n):
                            z[j] += x[j * s_w + b * d_w] * k0
            for i in range(i0, i1):  # the column pass
                y = Y[p, i]
                y[:] = 0
                for a in range(h):
                    z, k0 = Z[i * s_h + a * d_h - first], column[a]
                    for j in range(n):
                        y[j] += z[j] * k0

    @jit
    def direct_small(X, K, s_h, s_w, d_h, d_w):  # noqa: ANN001 - the whole output in one call
        h, w = K.shape
        P, H, W = X.shape
        Y = np.empty((P, (H - (h - 1) * d_h - 1) // s_h + 1, (W - (w - 1) * d_w - 1) // s_w + 1), dtype=X.dtype)
        for p in range(P):
            for i in range(Y.shape[1]):
                for j in range(Y.shape[2]):
                    total = X.dtype.type(0)
                    for a in range(h):
                        for b in range(w):
                            total += X[p, i * s_h + a * d_h, j * s_w + b * d_w] * K[a, b]
                    Y[p, i, j] = total
        return Y

    _kernels = (direct_rows, direct_rows_strided, separable_rows, direct_small, bank_rows)
    return _kernels


def _band(rows: int, out_w: int, threads: int) -> int:
    return rows if threads == 1 else max(1, min(64, _BAND_ELEMENTS // max(out_w, 1)))


def _planes(X: np.ndarray) -> np.ndarray:
    """``X`` as a C-contiguous stack of 2-D planes ``(P, H, W)`` (no copy when it already is one)."""
    return np.ascontiguousarray(X.reshape((-1, *X.shape[-2:])))


def _output_shape(X: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int],
                  dilation: tuple[int, int]) -> tuple[int, int]:
    return tuple((n - (k - 1) * d - 1) // s + 1 for n, k, s, d in zip(X.shape[-2:], kernel, stride, dilation))


def corr2d_direct(X: np.ndarray, K: np.ndarray, stride: tuple[int, int], framework: str,
                  dilation: tuple[int, int] = (1, 1)) -> np.ndarray:
    """The valid cross-correlation of every ``(H, W)`` plane of ``X`` with ``K`` (NumPy arrays of one float
    dtype), on ``framework``'s threads: output rows of all planes are split into bands."""
    direct_rows, direct_rows_strided, _, direct_small, _ = _kernels or _compile()
    (s_h, s_w), (d_h, d_w), (h, w) = stride, dilation, K.shape
    out_h, out_w = _output_shape(X, K.shape, stride, dilation)
    planes, K = _planes(X), np.ascontiguousarray(K)
    rows, work = planes.shape[0] * out_h, planes.shape[0] * out_h * out_w * h * w
    if work < SMALL_WORK:
        Y = direct_small(planes, K, s_h, s_w, d_h, d_w)
    else:
        Y = np.empty((planes.shape[0], out_h, out_w), dtype=X.dtype)
        threads = 1 if work < PARALLEL_WORK else num_threads(framework)
        band = _band(rows, out_w, threads)
        if s_w == 1:
            run_bands(lambda r0, r1: direct_rows(planes, K, Y, r0, r1, s_h, d_h, d_w), rows, band, threads)
        else:
            run_bands(lambda r0, r1: direct_rows_strided(planes, K, Y, r0, r1, s_h, s_w, d_h, d_w), rows, band,
                      threads)
    return Y.reshape((*X.shape[:-2], out_h, out_w))


def corr2d_separable(X: np.ndarray, column: np.ndarray, row: np.ndarray, stride: tuple[int, int],
                     framework: str, dilation: tuple[int, int] = (1, 1)) -> np.ndarray:
    """The valid cross-correlation with ``outer(column, row)`` as a row pass and a column pass per band."""
    separable_rows = (_kernels or _compile())[2]
    (s_h, s_w), (d_h, d_w), h, w = stride, dilation, column.shape[0], row.shape[0]
    out_h, out_w = _output_shape(X, (h, w), stride, dilation)
    planes, column, row = _planes(X), np.ascontiguousarray(column), np.ascontiguousarray(row)
    rows = planes.shape[0] * out_h
    Y = np.empty((planes.shape[0], out_h, out_w), dtype=X.dtype)
    threads = 1 if rows * out_w * (h + w) < PARALLEL_WORK else num_threads(framework)
    band = max(_band(rows, out_w, threads), 4 * (h - 1) * d_h // s_h)  # each band filters its span twice
    run_bands(lambda r0, r1: separable_rows(planes, column, row, Y, r0, r1, s_h, s_w, d_h, d_w), rows, band,
              threads)
    return Y.reshape((*X.shape[:-2], out_h, out_w))


def corr2d_bank(X: np.ndarray, K: np.ndarray, stride: tuple[int, int], dilation: tuple[int, int], groups: int,
                framework: str) -> np.ndarray | None:
    """``corr2d_multi_in_out`` with one input channel per group (a filter bank, a depthwise convolution, a batch
    of single-channel images): ``X`` ``(..., C, H, W)``, ``K`` ``(O, 1, h, w)`` -> ``(..., O, H', W')``, every
    output row written in place, bands of rows of all examples and channels on ``framework``'s threads.
    None where it does not apply (a column stride: ``corr2d``'s paths per kernel take those)."""
    if stride[1] != 1:
        return None
    bank_rows = (_kernels or _compile())[4]
    O, (h, w) = K.shape[0], K.shape[-2:]
    out_h, out_w = _output_shape(X, (h, w), stride, dilation)
    examples = np.ascontiguousarray(X.reshape((-1, *X.shape[-3:])))
    kernels = np.ascontiguousarray(K.reshape(O, h, w))
    Y = np.empty((examples.shape[0], O, out_h, out_w), dtype=X.dtype)
    rows = examples.shape[0] * O * out_h
    threads = 1 if rows * out_w * h * w < PARALLEL_WORK else num_threads(framework)
    run_bands(lambda r0, r1: bank_rows(examples, kernels, Y, r0, r1, stride[0], dilation[0], dilation[1],
                                       O // groups), rows, _band(rows, out_w, threads), threads)
    return Y.reshape((*X.shape[:-3], O, out_h, out_w))


# Up to this many taps the bank's compiled direct sum beats the FFT (see FFT_PASSES_COMPILED in the adapters).
BANK_TAPS = 300


def bank_wanted(K: np.ndarray) -> bool:
    """Whether :func:`corr2d_bank` suits the kernels ``K`` ``(O, 1, h, w)``: not so large that the FFT wins, and
    not rank-one kernels beyond 3x3 (``corr2d``'s separable paths per kernel cost ``h + w``, not ``h * w``)."""
    from d2lconv.channel_methods import rank_one_bank

    h, w = K.shape[-2:]
    if K.shape[1] != 1 or h * w > BANK_TAPS:
        return False
    return h * w <= 9 or rank_one_bank(K) is None
