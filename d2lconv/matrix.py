"""Convolution as a matrix product (the chapter's exercise 4).

A cross-correlation is linear in its input, so it is a matrix ``M`` of shape ``(out_h * out_w, in_h * in_w)``
with ``M @ X.ravel() == corr2d(X, K).ravel()``. Each row holds the kernel's values at the input positions
that its output element sees; padding drops the taps that fall outside the input, a stride skips rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from d2lconv._backend import active_adapter
from d2lconv._corr import check_fits, result_shape
from d2lconv._inputs import as_tensor, check_matrix, pad_amounts, pair, to_numpy


def corr2d_entries(
    kernel: np.ndarray, input_shape: tuple[int, int], padding: Any = 0, stride: Any = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int]]:
    """``(rows, cols, values, shape)`` of the nonzero pattern of the cross-correlation matrix (NumPy).

    Each output element sees each input element at most once, so the entries are unique, and they come
    sorted by row, then column (the order CSR and TensorFlow's sparse ops want).
    """
    kernel = np.asarray(kernel)
    H, W = input_shape
    strides = pair(stride, "stride", minimum=1)
    (top, _), (left, _) = pad_amounts(padding, input_shape, kernel.shape, strides)
    out_h, out_w = result_shape(input_shape, kernel.shape, padding, strides)
    i, j, a, b = np.meshgrid(np.arange(out_h), np.arange(out_w), np.arange(kernel.shape[0]),
                             np.arange(kernel.shape[1]), indexing="ij")
    y, x = i * strides[0] + a - top, j * strides[1] + b - left
    inside = (y >= 0) & (y < H) & (x >= 0) & (x < W)
    rows = (i * out_w + j)[inside]
    cols = (y * W + x)[inside]
    return rows, cols, kernel[a[inside], b[inside]], (out_h * out_w, H * W)


def corr2d_matrix(K: Any, input_shape: tuple[int, int], *, padding: Any = 0, stride: Any = 1,
                  sparse: bool = False) -> Any:
    """The matrix ``M`` with ``M @ X.ravel() == corr2d(X, K, padding=..., stride=...).ravel()``.

    Dense by default, as a tensor of the active backend. ``sparse=True`` returns the framework's own sparse
    matrix (``torch.sparse_coo_tensor``, ``tf.sparse.SparseTensor``, ``jax.experimental.sparse.BCOO``,
    MXNet's CSR, SciPy's CSR on NumPy), which stores only ``h * w`` values per row: use it for large
    inputs, where the dense matrix would need ``(H * W) ** 2`` numbers.
    """
    adapter = active_adapter()
    K = as_tensor(adapter, K, "K")
    kernel_shape = check_matrix(K, "K")
    shape = pair(input_shape, "input_shape", minimum=1)
    check_fits(shape, kernel_shape, padding, pair(stride, "stride", minimum=1))  # the errors corr2d gives
    kernel = to_numpy(K)
    rows, cols, values, matrix_shape = corr2d_entries(kernel, shape, padding, stride)
    if sparse:
        return adapter.sparse_matrix(rows, cols, values, matrix_shape)
    dense = np.zeros(matrix_shape, dtype=kernel.dtype)
    np.add.at(dense, (rows, cols), values)
    return adapter.from_numpy(dense)
