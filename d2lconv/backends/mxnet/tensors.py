"""MXNet tensors: conversions to and from NumPy, dtypes, and the small ops the common API needs."""

from __future__ import annotations

from typing import Any

import mxnet as mx
import numpy as onp
from mxnet import autograd, np, npx

npx.set_np()  # the tab's first cell: Gluon works on mxnet.numpy arrays only after this


def is_native(x: Any) -> bool:
    return isinstance(x, np.ndarray)


def from_numpy(array: onp.ndarray) -> np.ndarray:
    return np.array(array, dtype=array.dtype)  # without dtype, mxnet.numpy makes float64 input float32


def to_numpy(x: np.ndarray) -> onp.ndarray:
    return x.asnumpy()


def dtype_of(x: np.ndarray) -> onp.dtype:
    return onp.dtype(x.dtype)


def cast(x: np.ndarray, dtype: onp.dtype) -> np.ndarray:
    return x.astype(dtype)


def is_constant(x: np.ndarray) -> bool:
    """No gradient can reach ``x`` when it has no gradient buffer and is not part of what is being recorded.

    While ``autograd.record()`` is on, ``autograd.get_symbol`` finds the recorded history of an array that was
    computed (during recording) from one with a gradient buffer, and fails for an array outside it.
    """
    if x.grad is not None:
        return False
    if not autograd.is_recording():
        return True
    try:
        autograd.get_symbol(x)
    except mx.base.MXNetError:
        return True  # not in the recorded graph: a constant
    return False


def transpose(x: np.ndarray) -> np.ndarray:
    return x.T


def flip(x: np.ndarray) -> np.ndarray:
    """Both of the last two axes reversed (MXNet's flip takes non-negative axes only)."""
    return np.flip(x, axis=(x.ndim - 2, x.ndim - 1))


def pad(x: np.ndarray, rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
    """Zeros around the last two axes (leading axes, a batch or channels, are not padded)."""
    return np.pad(x, ((0, 0),) * (x.ndim - 2) + (rows, cols))


def reshape(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    return x.reshape(shape)


def stack(xs: list[np.ndarray], axis: int = 0) -> np.ndarray:
    return np.stack(xs, axis)


def einsum(spec: str, *operands: np.ndarray) -> np.ndarray:
    return np.einsum(spec, *operands)


def moveaxis(x: np.ndarray, source: int, destination: int) -> np.ndarray:
    return np.moveaxis(x, source, destination)


def sparse_matrix(rows: onp.ndarray, cols: onp.ndarray, values: onp.ndarray, shape: tuple[int, int]) -> Any:
    """MXNet's own sparse matrix, a ``CSRNDArray`` (``mxnet.numpy`` has no sparse type).

    The entries arrive unique and sorted by row, so the row pointers are the running count per row.
    """
    indptr = onp.concatenate([[0], onp.cumsum(onp.bincount(rows, minlength=shape[0]))])
    return mx.nd.sparse.csr_matrix((values, cols, indptr), shape=shape, dtype=values.dtype)


def zero_where(x: np.ndarray, mask: onp.ndarray) -> np.ndarray:
    """``x`` with zeros where the NumPy boolean ``mask`` is True (differentiable in ``x``)."""
    return np.where(np.array(mask), np.zeros((), dtype=x.dtype), x)


def concat(tensors: list[np.ndarray], axis: int) -> np.ndarray:
    return np.concatenate(tensors, axis=axis)
