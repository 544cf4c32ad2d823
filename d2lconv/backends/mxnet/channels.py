"""MXNet over channels: ``npx.convolution`` as ``method="native"``, d2lconv's methods compiled into one
``CachedOp`` per shape, and ``auto``'s numbers.

``npx.convolution`` is MXNet's own (NCHW, with ``num_group``); its fast path for kernels up to 3x3 makes
it the choice there (``NATIVE_TAPS``). MXNet has no FFT on the CPU.
"""

from __future__ import annotations

from functools import lru_cache
from types import SimpleNamespace
from typing import Any

import mxnet as mx
from mxnet import np

from d2lconv import channel_methods
from d2lconv._auto import ChannelAuto
from d2lconv.backends.mxnet import tensors
from d2lconv.backends.mxnet.kernels import _compile, _Shaped

CHANNEL_AUTO = ChannelAuto(native_from=2, native_depthwise=True, native_below=1 << 14)


def _symbol(x: Any) -> Any:
    return x.symbol if isinstance(x, _Shaped) else x


# The operations channel_methods needs, on symbols.
_ops = SimpleNamespace(
    reshape=lambda x, shape: _symbol(x).reshape(shape),
    einsum=lambda spec, *operands: mx.sym.np.einsum(spec, *(_symbol(x) for x in operands)),
    stack=lambda xs, axis=0: mx.sym.np.stack([_symbol(x) for x in xs], axis=axis),
)


@lru_cache(maxsize=32)
def _direct(x_shape: tuple[int, ...], k_shape: tuple[int, ...], stride: tuple[int, int], dilation: tuple[int, int],
            groups: int) -> Any:
    return _compile(channel_methods.direct(_ops, _Shaped("X", x_shape), _Shaped("K", k_shape), stride, dilation,
                                           groups))


@lru_cache(maxsize=32)
def _separable(x_shape: tuple[int, ...], o: int, h: int, w: int, stride: tuple[int, int], dilation: tuple[int, int],
               groups: int) -> Any:
    return _compile(channel_methods.separable(_ops, _Shaped("X", x_shape), _Shaped("columns", (o, h)),
                                              _Shaped("rows", (o, w)), stride, dilation, groups))


def corr2d_channels(X: np.ndarray, K: np.ndarray, stride: tuple[int, int], dilation: tuple[int, int], groups: int,
                    padding: tuple[tuple[int, int], tuple[int, int]], channels_last: bool, method: str,
                    factors: Any = None) -> np.ndarray:
    """d2lconv's ``method`` (``"direct"``, ``"separable"`` or ``"per_kernel"``, which is the compiled direct
    sum here) on ``X`` in its layout."""
    def compute(X: np.ndarray) -> np.ndarray:
        if method == "separable":
            columns, rows = factors
            return _separable(X.shape, *columns.shape, rows.shape[1], stride, dilation, groups)(
                X=X, columns=columns, rows=rows)
        return _direct(X.shape, K.shape, stride, dilation, groups)(X=X, K=K)

    return channel_methods.in_layout(tensors, compute, X, padding, channels_last)


@lru_cache(maxsize=32)
def _native(x_shape: tuple[int, ...], k_shape: tuple[int, ...], stride: tuple[int, int], dilation: tuple[int, int],
            groups: int, pad: tuple[int, int]) -> Any:
    """``npx.convolution`` alone in its graph: with the reshapes of leading axes compiled in, a depthwise
    convolution ran 3-4x slower (0.95 ms against 0.26 ms for 32 channels at 112x112)."""
    X, K = (mx.sym.var(name).as_np_ndarray() for name in ("X", "K"))
    return _compile(mx.sym.npx.convolution(X, K, no_bias=True, num_filter=k_shape[0], num_group=groups,
                                           kernel=k_shape[2:], stride=stride, dilate=dilation, pad=pad))


def corr2d_channels_native(X: np.ndarray, K: np.ndarray, stride: tuple[int, int], dilation: tuple[int, int],
                           groups: int, padding: tuple[tuple[int, int], tuple[int, int]],
                           channels_last: bool) -> np.ndarray:
    """``npx.convolution`` on NCHW (its CPU layout), compiled; symmetric padding is its own."""
    if channels_last:
        X = np.moveaxis(X, -1, -3)
    (top, bottom), (left, right) = padding
    if top != bottom or left != right:
        X = np.pad(X, ((0, 0),) * (X.ndim - 2) + padding)
        top = left = 0
    lead, flat = X.shape[:-3], X.ndim != 4
    if flat:
        X = X.reshape(-1, *X.shape[-3:])
    Y = _native(X.shape, K.shape, stride, dilation, groups, (top, left))(X=X, K=K)
    if flat:
        Y = Y.reshape(*lead, *Y.shape[1:])
    return np.moveaxis(Y, -3, -1) if channels_last else Y
