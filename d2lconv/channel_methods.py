"""Cross-correlation over channels, written once for every framework (the book's next section).

Every function takes an already padded, channels-first input ``X`` of shape ``(..., C, H, W)`` and a
kernel ``K`` of shape ``(O, C // groups, h, w)``, and returns the valid ``(..., O, H', W')``:
``Y[..., o, i, j] = sum_{c, a, b} X[..., g(o) * C/groups + c, i * s_h + a * d_h, j * s_w + b * d_w] * K[o, c, a, b]``
with ``g(o) = o // (O / groups)``, the group of output channel ``o``.

``ops`` is the adapter (or, for MXNet, a namespace of symbol operations): only its ``reshape``, ``einsum``
and, for the FFT, the transforms passed in are used, besides slicing, ``*`` and ``+``. So each function is
differentiable with the framework's autodiff, and compiles under ``jax.jit`` and ``tf.function``.

- :func:`direct`: a sum over the ``h * w`` kernel taps; each tap is a contraction over the channels of a
  group (``einsum``, a matrix product), or, when every output reads one input channel (``C // groups == 1``:
  depthwise convolutions, filter banks, batches of single-channel images), a broadcast product.
- :func:`separable`: for ``C // groups == 1`` and rank-one kernels (Sobel, box, ``[[1, -1]]``): a row pass
  and a column pass per output channel, ``h + w`` multiply-adds per output instead of ``h * w``.
- :func:`fft`: one real FFT per input and output channel, the contraction over channels in the frequency
  domain; its cost does not grow with the kernel's size.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from d2lconv import methods

ONE = (1, 1)


def _sum(terms: Any) -> Any:
    """The terms added one after the other (two buffers at a time, in eager frameworks)."""
    total = None
    for term in terms:
        total = term if total is None else total + term
    return total


def _shapes(X: Any, K: Any, stride: tuple[int, int], dilation: tuple[int, int], groups: int) -> tuple:
    """``(lead, C, H, W, O, Cg, Og, h, w, out_h, out_w)`` for these operands."""
    lead, (C, H, W) = tuple(X.shape[:-3]), tuple(X.shape[-3:])
    O, Cg, h, w = tuple(K.shape)
    out_h, out_w = methods.valid_shape((H, W), (h, w), stride, dilation)
    return lead, C, H, W, O, Cg, O // groups, h, w, out_h, out_w


def _tap(a: int, b: int, rows: int, cols: int, stride: tuple[int, int], dilation: tuple[int, int]) -> tuple:
    """The index of the grouped input ``(B, groups, C/groups, H, W)`` that kernel tap ``(a, b)`` multiplies."""
    (s_h, s_w), (d_h, d_w) = stride, dilation
    return (slice(None),) * 3 + (slice(a * d_h, a * d_h + rows, s_h), slice(b * d_w, b * d_w + cols, s_w))


def direct(ops: Any, X: Any, K: Any, stride: tuple[int, int] = ONE, dilation: tuple[int, int] = ONE,
           groups: int = 1) -> Any:
    """Sum over kernel taps of shifted input slices contracted with the tap's ``(O, C/groups)`` matrix."""
    lead, C, H, W, O, Cg, Og, h, w, out_h, out_w = _shapes(X, K, stride, dilation, groups)
    rows, cols = (out_h - 1) * stride[0] + 1, (out_w - 1) * stride[1] + 1
    Xg = ops.reshape(X, (-1, groups, Cg, H, W))
    if Cg == 1:  # each output reads one input channel: a broadcast product per tap, no contraction
        Kg = ops.reshape(K, (groups, Og, h, w))
        terms = (Xg[_tap(a, b, rows, cols, stride, dilation)] * ops.reshape(Kg[:, :, a, b], (1, groups, Og, 1, 1))
                 for a in range(h) for b in range(w))
    else:
        Kg = ops.reshape(K, (groups, Og, Cg, h, w))
        terms = (ops.einsum("zgcij,goc->zgoij", Xg[_tap(a, b, rows, cols, stride, dilation)], Kg[:, :, :, a, b])
                 for a in range(h) for b in range(w))
    Y = _sum(terms)
    return ops.reshape(Y, (*lead, O, out_h, out_w))


def direct_last(ops: Any, X: Any, K: Any, stride: tuple[int, int] = ONE, dilation: tuple[int, int] = ONE,
                groups: int = 1) -> Any:
    """:func:`direct` on a channels-last ``X`` ``(..., H, W, C)``, returning ``(..., H', W', O)``.

    The same sum over taps with the channels innermost: under XLA the fused loop then computes every output
    channel of a pixel from the same input window (a bank of six 3x3 kernels on 2048x2048 ran 1.25x faster in
    TensorFlow than through the channels-first form).
    """
    lead, (H, W) = tuple(X.shape[:-3]), tuple(X.shape[-3:-1])
    O, Cg, h, w = tuple(K.shape)
    Og, (s_h, s_w), (d_h, d_w) = O // groups, stride, dilation
    out_h, out_w = methods.valid_shape((H, W), (h, w), stride, dilation)
    rows, cols = (out_h - 1) * s_h + 1, (out_w - 1) * s_w + 1
    Xg = ops.reshape(X, (-1, H, W, groups, Cg))
    Kg = ops.reshape(K, (groups, Og, Cg, h, w))

    def window(a: int, b: int) -> Any:  # (B, H', W', groups, Cg): the input tap (a, b) multiplies
        return Xg[:, a * d_h:a * d_h + rows:s_h, b * d_w:b * d_w + cols:s_w]

    if Cg == 1:
        terms = (window(a, b) * ops.reshape(Kg[:, :, 0, a, b], (1, 1, 1, groups, Og))
                 for a in range(h) for b in range(w))
    else:
        terms = (ops.einsum("zijgc,goc->zijgo", window(a, b), Kg[:, :, :, a, b]) for a in range(h) for b in range(w))
    return ops.reshape(_sum(terms), (*lead, out_h, out_w, O))


def rank_one_bank(K: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """``(columns (O, h), rows (O, w))`` with ``K[o, 0] == outer(columns[o], rows[o])`` for every ``o``, or None.

    Only for kernels of one input channel per group (``K.shape[1] == 1``), each checked as
    :func:`d2lconv.methods.rank_one_factors` checks a 2-D kernel.
    """
    if K.shape[1] != 1:
        return None
    factors = [methods.rank_one_factors(k) for k in K[:, 0]]
    if any(f is None for f in factors):
        return None
    return np.stack([f[0] for f in factors]), np.stack([f[1] for f in factors])


def separable(ops: Any, X: Any, columns: Any, rows_: Any, stride: tuple[int, int] = ONE,
              dilation: tuple[int, int] = ONE, groups: int = 1) -> Any:
    """``C // groups == 1`` with rank-one kernels ``outer(columns[o], rows_[o])``: a row pass, then a column pass."""
    lead, (H, W) = tuple(X.shape[:-3]), tuple(X.shape[-2:])
    (O, h), w = tuple(columns.shape), rows_.shape[1]
    Og, (s_h, s_w), (d_h, d_w) = O // groups, stride, dilation
    out_h, out_w = methods.valid_shape((H, W), (h, w), stride, dilation)
    rows, cols = (out_h - 1) * s_h + 1, (out_w - 1) * s_w + 1
    Xg = ops.reshape(X, (-1, groups, 1, H, W))
    row_weights, column_weights = ops.reshape(rows_, (groups, Og, w)), ops.reshape(columns, (groups, Og, h))

    def weight(factors: Any, i: int) -> Any:  # (1, groups, Og, 1, 1): one factor per output channel
        return ops.reshape(factors[:, :, i], (1, groups, Og, 1, 1))

    Z = _sum(Xg[:, :, :, :, b * d_w:b * d_w + cols:s_w] * weight(row_weights, b) for b in range(w))
    Y = _sum(Z[:, :, :, a * d_h:a * d_h + rows:s_h, :] * weight(column_weights, a) for a in range(h))
    return ops.reshape(Y, (*lead, O, out_h, out_w))


def fft(ops: Any, X: Any, K: Any, stride: tuple[int, int] = ONE, dilation: tuple[int, int] = ONE, groups: int = 1,
        *, rfft2: Callable, irfft2: Callable, conj: Callable) -> Any:
    """Every channel's spectrum once, the contraction over channels per frequency, one inverse per output.

    Multiplying by the *conjugate* kernel spectrum gives the circular cross-correlation, exact on the valid
    part (the top-left corner) on a grid at least as large as the input. ``rfft2(x, grid)`` and
    ``irfft2(x, grid)`` transform the last two axes.
    """
    if dilation != ONE:
        K = methods.dilate(K, dilation, stack=ops.stack, reshape=ops.reshape)
    lead, C, H, W, O, Cg, Og, h, w, out_h, out_w = _shapes(X, K, stride, ONE, groups)
    grid = (methods.fast_length(H), methods.fast_length(W))
    spectra = rfft2(ops.reshape(X, (-1, groups, Cg, H, W)), grid)
    kernels = conj(rfft2(ops.reshape(K, (groups, Og, Cg, h, w)), grid))
    if Cg == 1:
        product = spectra * kernels[None, :, :, 0]
    else:
        product = ops.einsum("zgcuv,gocuv->zgouv", spectra, kernels)
    full = irfft2(product, grid)
    Y = full[..., :(out_h - 1) * stride[0] + 1:stride[0], :(out_w - 1) * stride[1] + 1:stride[1]]
    return ops.reshape(Y, (*lead, O, out_h, out_w))


def in_layout(ops: Any, compute: Callable[[Any], Any], X: Any, padding: tuple[tuple[int, int], tuple[int, int]],
              channels_last: bool, compute_last: Callable[[Any], Any] | None = None) -> Any:
    """``compute`` on ``X`` laid out channels first and padded, its result back in ``X``'s layout; or, for a
    channels-last ``X`` and a ``compute_last`` that takes that layout, ``compute_last`` on the padded ``X``.

    Under ``jax.jit`` or XLA in TensorFlow the moves and the padding fuse with the computation (no extra
    pass over a channels-last output); in NumPy and PyTorch the moves are views.
    """
    if channels_last and compute_last is not None:
        if padding != ((0, 0), (0, 0)):
            X = ops.moveaxis(ops.pad(ops.moveaxis(X, -1, -3), *padding), -3, -1)
        return compute_last(X)
    if channels_last:
        X = ops.moveaxis(X, -1, -3)
    if padding != ((0, 0), (0, 0)):
        X = ops.pad(X, *padding)
    Y = compute(X)
    return ops.moveaxis(Y, -3, -1) if channels_last else Y


# ----------------------------------------------------------------------------- gradients (NumPy has no autodiff)


def kernel_gradient(X: np.ndarray, G: np.ndarray, kernel_shape: tuple[int, int], stride: tuple[int, int] = ONE,
                    dilation: tuple[int, int] = ONE, groups: int = 1) -> np.ndarray:
    """The gradient of ``sum(G * direct(X, K))`` with respect to ``K`` (``(O, C/groups, h, w)``), in NumPy."""
    C, H, W = X.shape[-3:]
    O, out_h, out_w = G.shape[-3:]
    Cg, Og, (h, w) = C // groups, O // groups, kernel_shape
    rows, cols = (out_h - 1) * stride[0] + 1, (out_w - 1) * stride[1] + 1
    Xg, Gg = X.reshape(-1, groups, Cg, H, W), G.reshape(-1, groups, Og, out_h, out_w)
    dK = np.empty((groups, Og, Cg, h, w), dtype=G.dtype)
    for a in range(h):
        for b in range(w):
            dK[..., a, b] = np.einsum("zgoij,zgcij->goc", Gg, Xg[_tap(a, b, rows, cols, stride, dilation)],
                                      optimize=True)
    return dK.reshape(O, Cg, h, w)


def input_gradient(G: np.ndarray, K: np.ndarray, input_shape: tuple[int, ...], stride: tuple[int, int] = ONE,
                   dilation: tuple[int, int] = ONE, groups: int = 1) -> np.ndarray:
    """The gradient of ``sum(G * direct(X, K))`` with respect to ``X``: each output spreads back through ``K``."""
    C, H, W = input_shape[-3:]
    O, Cg, h, w = K.shape
    out_h, out_w = G.shape[-2:]
    Og = O // groups
    rows, cols = (out_h - 1) * stride[0] + 1, (out_w - 1) * stride[1] + 1
    Gg, Kg = G.reshape(-1, groups, Og, out_h, out_w), K.reshape(groups, Og, Cg, h, w)
    grad = np.zeros((Gg.shape[0], groups, Cg, H, W), dtype=G.dtype)
    for a in range(h):
        for b in range(w):
            grad[_tap(a, b, rows, cols, stride, dilation)] += np.einsum("zgoij,goc->zgcij", Gg, Kg[..., a, b],
                                                                         optimize=True)
    return grad.reshape(input_shape)
