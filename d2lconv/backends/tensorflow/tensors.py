"""TensorFlow tensors: conversions to and from NumPy, dtypes, and the small ops the common API needs."""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow.python.eager import record  # the tapes' own check of whether a tensor is being watched


def is_native(x: Any) -> bool:
    return isinstance(x, (tf.Tensor, tf.Variable, tf.keras.Variable))


def _tensor(x: Any) -> tf.Tensor:
    """A plain ``tf.Tensor``: reads a ``tf.Variable`` or Keras variable (the read is recorded by tapes)."""
    if isinstance(x, tf.keras.Variable):
        x = x.value
    return x if isinstance(x, tf.Tensor) else tf.convert_to_tensor(x)


def from_numpy(array: np.ndarray) -> tf.Tensor:
    return tf.constant(array)


def to_numpy(x: Any) -> np.ndarray:
    return _tensor(x).numpy()


def dtype_of(x: Any) -> np.dtype:
    return np.dtype(tf.as_dtype(x.dtype).as_numpy_dtype)


def cast(x: Any, dtype: np.dtype) -> tf.Tensor:
    return tf.cast(_tensor(x), tf.as_dtype(dtype))


def is_constant(x: Any) -> bool:
    """True for an eager tensor that no active ``GradientTape`` watches; variables are always trainable."""
    if isinstance(x, (tf.Variable, tf.keras.Variable)) or not tf.executing_eagerly():
        return False  # a variable can be watched at any time; a graph tensor can be differentiated later
    return not record.should_record_backprop([x])


def transpose(x: Any) -> tf.Tensor:
    return tf.transpose(_tensor(x))


def flip(x: Any) -> tf.Tensor:
    """Both of the last two axes reversed."""
    return tf.reverse(_tensor(x), axis=[-2, -1])


def pad(x: Any, rows: tuple[int, int], cols: tuple[int, int]) -> tf.Tensor:
    """Zeros around the last two axes (leading axes, a batch or channels, are not padded)."""
    x = _tensor(x)
    return tf.pad(x, [(0, 0)] * (len(x.shape) - 2) + [rows, cols])


def reshape(x: Any, shape: tuple[int, ...]) -> tf.Tensor:
    return tf.reshape(_tensor(x), shape)


def stack(xs: list[Any], axis: int = 0) -> tf.Tensor:
    return tf.stack([_tensor(x) for x in xs], axis)


def einsum(spec: str, *operands: Any) -> tf.Tensor:
    return tf.einsum(spec, *(_tensor(x) for x in operands))


def moveaxis(x: Any, source: int, destination: int) -> tf.Tensor:
    x = _tensor(x)
    order = list(range(len(x.shape)))
    order.insert(destination % len(order), order.pop(source % len(order)))
    return tf.transpose(x, order)


def sparse_matrix(rows: np.ndarray, cols: np.ndarray, values: np.ndarray,
                  shape: tuple[int, int]) -> tf.sparse.SparseTensor:
    """A ``tf.sparse.SparseTensor`` (the entries arrive unique and in row-major order, as it needs)."""
    return tf.sparse.SparseTensor(np.stack([rows, cols], axis=1).astype(np.int64), tf.constant(values), shape)


def zero_where(x: Any, mask: np.ndarray) -> tf.Tensor:
    """``x`` with zeros where the NumPy boolean ``mask`` is True (differentiable in ``x``)."""
    x = _tensor(x)
    return tf.where(mask, tf.zeros_like(x), x)


def concat(tensors: list[Any], axis: int) -> tf.Tensor:
    return tf.concat([_tensor(t) for t in tensors], axis)
