"""Dask arrays: conversions to and from NumPy, dtypes, and the small lazy ops the common API needs.

``from_numpy`` splits an array with Dask's own ``chunks="auto"`` (its ``array.chunk-size`` setting, 128 MiB
unless configured); ``to_numpy`` computes an array with whatever scheduler is in force (the threaded one, or
a ``dask.distributed`` client). Everything else stays lazy.
"""

from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np


def is_native(x: Any) -> bool:
    return isinstance(x, da.Array)


def from_numpy(array: np.ndarray) -> da.Array:
    return da.from_array(array, chunks="auto")


def to_numpy(x: Any) -> np.ndarray:
    return np.asarray(x.compute() if isinstance(x, da.Array) else x)


def count_nonfinite(x: da.Array) -> tuple[int, int]:
    """How many entries of ``x`` are not finite, and how many of them are NaN: one pass, chunk by chunk."""
    import dask

    bad, nan = dask.compute(da.count_nonzero(~da.isfinite(x)), da.count_nonzero(da.isnan(x)))
    return int(bad), int(nan)


def small_to_numpy(x: Any) -> np.ndarray:
    """A small array (a kernel) as NumPy, computed in this process: no round trip to a cluster for a few numbers."""
    return np.asarray(x.compute(scheduler="synchronous") if isinstance(x, da.Array) else x)


def dtype_of(x: da.Array) -> np.dtype:
    return np.dtype(x.dtype)


def cast(x: da.Array, dtype: np.dtype) -> da.Array:
    return x.astype(dtype)


def is_constant(x: da.Array) -> bool:
    """Dask has no autodiff: nothing is ever differentiated through a Dask array, so a kernel can be factorised."""
    return True


def transpose(x: da.Array) -> da.Array:
    return x.T


def flip(x: da.Array) -> da.Array:
    return x[::-1, ::-1]


def pad(x: da.Array, rows: tuple[int, int], cols: tuple[int, int]) -> da.Array:
    """Zeros around ``x``, lazily (``dask.array.pad`` adds them as chunks of their own)."""
    return da.pad(x, (rows, cols), mode="constant")


def sparse_matrix(rows: np.ndarray, cols: np.ndarray, values: np.ndarray, shape: tuple[int, int]) -> Any:
    """Dask has no sparse matrix type of its own (its arrays hold SciPy or pydata chunks): SciPy's CSR matrix."""
    try:
        from scipy import sparse
    except ModuleNotFoundError as error:
        raise ImportError("sparse=True on the dask backend needs SciPy: pip install scipy") from error
    return sparse.csr_matrix((values, (rows, cols)), shape=shape)
