"""MXNet fast paths for ``corr2d``: the methods ``auto`` chooses between, and its cost-model numbers.

They compute the valid cross-correlation of an already padded input (see ``d2lconv.backends``).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

import mxnet as mx
import numpy as onp
from mxnet import np

from d2lconv import _numba, methods
from d2lconv.backends.mxnet.tensors import is_constant

NO_FFT = "MXNet has no FFT on the CPU (its contrib.fft operators run on GPUs only)"
FFT_PASSES = None
# npx.convolution has a fast path for kernels up to 3x3 (2.4-3x faster than the compiled direct sum at
# 64..4096 pixels) and is 4-5x slower than it from 7x7 up (benchmarks/RESULTS.md).
NATIVE_TAPS = 9
NATIVE_BELOW = 1 << 12  # npx.convolution is one call (88 us on the book's input, direct 169 us) but slow at scale
ONE = (1, 1)


class _Shaped:
    """A symbol with the static shape that the shared methods read (MXNet symbols have no ``.shape``)."""

    def __init__(self, name: str, shape: tuple[int, ...]) -> None:
        self.symbol, self.shape = mx.sym.var(name).as_np_ndarray(), shape

    def __getitem__(self, key: Any) -> Any:
        return self.symbol[key]


def _compile(graph: Any) -> Callable[..., np.ndarray]:
    """A ``CachedOp`` of ``graph`` (what ``hybridize()`` builds, without a Block's per-call overhead).

    It is differentiable under ``autograd.record()`` and takes its inputs by name.
    """
    op = mx.nd.CachedOp(graph, flags=[("static_alloc", True), ("static_shape", True)])
    order = graph.list_inputs()
    return lambda **inputs: op(*(inputs[name] for name in order))


# One graph per shape, stride and dilation, as jax.jit retraces per shape; eager MXNet spends ~0.1 ms on every slice.
@lru_cache(maxsize=32)
def _direct(x_shape: tuple[int, ...], k_shape: tuple[int, int], stride: tuple[int, int],
            dilation: tuple[int, int]) -> Callable:
    return _compile(methods.corr2d_direct(_Shaped("X", x_shape), _Shaped("K", k_shape), stride, dilation))


@lru_cache(maxsize=32)
def _separable(x_shape: tuple[int, ...], h: int, w: int, stride: tuple[int, int],
               dilation: tuple[int, int]) -> Callable:
    return _compile(methods.corr2d_separable(_Shaped("X", x_shape), _Shaped("column", (h,)),
                                             _Shaped("row", (w,)), stride, dilation))


@lru_cache(maxsize=32)
def _native(x_shape: tuple[int, ...], k_shape: tuple[int, int], stride: tuple[int, int],
            dilation: tuple[int, int]) -> Callable:
    """``npx.convolution`` alone in its graph, on NCHW (reshapes compiled in beside it made a depthwise
    convolution 3-4x slower; see ``channels.py``)."""
    X, K = (mx.sym.var(name).as_np_ndarray() for name in ("X", "K"))
    return _compile(mx.sym.npx.convolution(X, K, no_bias=True, num_filter=1, kernel=k_shape, stride=stride,
                                           dilate=dilation))


# With the Numba accelerator (d2lconv._numba), arrays that no gradient flows to take the compiled loops,
# through one copy out to NumPy and one back (about a memory pass each): each of MXNet's h * w operators
# is a pass of its own, and it has no FFT on the CPU, so beyond tiny inputs this is faster than the
# compiled graph or npx.convolution (2048x2048: 4x at 3x3, 300x at 31x31).
_FLOATS = (onp.dtype(onp.float32), onp.dtype(onp.float64))


def _accelerated(*arrays: np.ndarray) -> bool:
    return _numba.get_accelerator() is not None and all(
        a.ctx.device_type == "cpu" and a.dtype in _FLOATS and a.dtype == arrays[0].dtype and is_constant(a)
        for a in arrays)


def compiled_costs(X: np.ndarray, K: np.ndarray) -> tuple[None, int, int] | None:
    """``(FFT_PASSES, NATIVE_BELOW, NATIVE_TAPS)`` for auto when the Numba accelerator will run these inputs."""
    return (None, NATIVE_BELOW, 0) if _accelerated(X, K) else None  # the copies cost more than tiny work


def corr2d_direct(X: np.ndarray, K: np.ndarray, stride: tuple[int, int] = ONE,
                  dilation: tuple[int, int] = ONE) -> np.ndarray:
    """``methods.corr2d_direct``, compiled once per shape, stride and dilation (or the Numba accelerator's)."""
    if _accelerated(X, K):
        return np.array(_numba.corr2d_direct(X.asnumpy(), K.asnumpy(), stride, "mxnet", dilation), dtype=X.dtype)
    return _direct(X.shape, K.shape, stride, dilation)(X=X, K=K)


def corr2d_separable(X: np.ndarray, column: np.ndarray, row: np.ndarray,
                     stride: tuple[int, int] = ONE, dilation: tuple[int, int] = ONE) -> np.ndarray:
    """``methods.corr2d_separable``, compiled once per shape, stride and dilation (or the Numba accelerator's)."""
    if _accelerated(X, column, row):
        Y = _numba.corr2d_separable(X.asnumpy(), column.asnumpy(), row.asnumpy(), stride, "mxnet", dilation)
        return np.array(Y, dtype=X.dtype)
    return _separable(X.shape, column.shape[0], row.shape[0], stride, dilation)(X=X, column=column, row=row)


corr2d_fft = None


def corr2d_native(X: np.ndarray, K: np.ndarray, stride: tuple[int, int] = ONE,
                  dilation: tuple[int, int] = ONE) -> np.ndarray:
    """``npx.convolution`` on the tab's NCHW layout (the planes as examples, one channel), compiled."""
    planes = X.reshape(-1, 1, *X.shape[-2:])
    Y = _native(planes.shape, K.shape, stride, dilation)(X=planes, K=K.reshape(1, 1, *K.shape))
    return Y.reshape(*X.shape[:-2], *Y.shape[-2:])
