"""NumPy tensors: conversions to and from NumPy, dtypes, and the small ops the common API needs."""

from __future__ import annotations

from typing import Any

import numpy as np


def is_native(x: Any) -> bool:
    return isinstance(x, np.ndarray)


def from_numpy(array: np.ndarray) -> np.ndarray:
    return array


def to_numpy(x: Any) -> np.ndarray:
    return np.asarray(x)


def dtype_of(x: np.ndarray) -> np.dtype:
    return x.dtype


def cast(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    return x.astype(dtype)


def is_constant(x: np.ndarray) -> bool:
    """NumPy arrays never carry gradients, so a kernel can always be factorised."""
    return True


def transpose(x: np.ndarray) -> np.ndarray:
    return x.T


def flip(x: np.ndarray) -> np.ndarray:
    """Both of the last two axes reversed."""
    return x[..., ::-1, ::-1]


def pad(x: np.ndarray, rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
    """Zeros around the last two axes (leading axes, a batch or channels, are not padded)."""
    return np.pad(x, ((0, 0),) * (x.ndim - 2) + (rows, cols))


def reshape(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    return x.reshape(shape)


def stack(xs: list[np.ndarray], axis: int = 0) -> np.ndarray:
    return np.stack(xs, axis)


def einsum(spec: str, *operands: np.ndarray) -> np.ndarray:
    return np.einsum(spec, *operands, optimize=True)  # optimize: BLAS for the contractions over channels


def moveaxis(x: np.ndarray, source: int, destination: int) -> np.ndarray:
    return np.moveaxis(x, source, destination)


def sparse_matrix(rows: np.ndarray, cols: np.ndarray, values: np.ndarray, shape: tuple[int, int]) -> Any:
    """NumPy has no sparse type; SciPy's CSR matrix is the one its users have."""
    try:
        from scipy import sparse
    except ModuleNotFoundError as error:
        raise ImportError("sparse=True on the numpy backend needs SciPy: pip install scipy") from error
    return sparse.csr_matrix((values, (rows, cols)), shape=shape)


def zero_where(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``x`` with zeros where the NumPy boolean ``mask`` is True."""
    return np.where(mask, x.dtype.type(0), x)


def concat(tensors: list[np.ndarray], axis: int) -> np.ndarray:
    return np.concatenate(tensors, axis=axis)
