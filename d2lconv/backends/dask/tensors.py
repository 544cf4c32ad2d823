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
    """``array`` in Dask's "auto" chunks (one chunk when empty: Dask cannot size chunks of nothing)."""
    return da.from_array(array, chunks="auto" if array.size else -1)


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
    return x[..., ::-1, ::-1]


def pad(x: da.Array, rows: tuple[int, int], cols: tuple[int, int]) -> da.Array:
    """Zeros around the last two axes of ``x``, lazily (``dask.array.pad`` adds them as chunks of their own)."""
    return da.pad(x, ((0, 0),) * (x.ndim - 2) + (tuple(rows), tuple(cols)), mode="constant")


def reshape(x: Any, shape: tuple[int, ...]) -> Any:
    return x.reshape(shape)


def stack(xs: list[da.Array], axis: int) -> da.Array:
    return da.stack(xs, axis=axis)


def moveaxis(x: da.Array, source: int, destination: int) -> da.Array:
    return da.moveaxis(x, source, destination)


def einsum(spec: str, *operands: Any) -> da.Array:
    """``einsum`` block by block, each block computed by the chunk backend's own ``einsum``.

    Every index that is summed over is made one chunk in each operand (channels are few), so each output
    block is one call of the chunk backend on whole blocks of the operands, as ``d2lconv``'s 1x1 convolution
    (``"oc,...chw->...ohw"``) needs: every pixel's channels in one block.
    """
    from d2lconv.backends.dask.selection import get_chunk_backend

    inputs, output = spec.replace(" ", "").split("->")
    operands = tuple(x if isinstance(x, da.Array) else da.from_array(np.asarray(x)) for x in operands)
    terms = inputs.split(",")
    width = max(x.ndim - len(t.replace("...", "")) for x, t in zip(operands, terms))
    spare = "".join(c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" if c not in spec)[:width]
    names = [t.replace("...", spare[width - (x.ndim - len(t.replace("...", ""))):]) for x, t in zip(operands, terms)]
    output = output.replace("...", spare)
    summed = set("".join(names)) - set(output)
    operands = tuple(x.rechunk({axis: -1 for axis, index in enumerate(name) if index in summed})
                     for x, name in zip(operands, names))
    pairs = [item for x, name in zip(operands, names) for item in (x, name)]
    dtype = np.result_type(*(x.dtype for x in operands))
    return da.blockwise(_einsum_block, output, *pairs, spec=",".join(names) + "->" + output,
                        backend=get_chunk_backend(), dtype=dtype, concatenate=True,
                        meta=np.empty((0,) * len(output), dtype))


def _einsum_block(*blocks: np.ndarray, spec: str, backend: str) -> np.ndarray:
    from d2lconv._backend import load_adapter

    adapter = load_adapter(backend)
    result = adapter.einsum(spec, *(adapter.from_numpy(np.ascontiguousarray(b)) for b in blocks))
    return np.asarray(adapter.to_numpy(result))


def sparse_matrix(rows: np.ndarray, cols: np.ndarray, values: np.ndarray, shape: tuple[int, int]) -> Any:
    """Dask has no sparse matrix type of its own (its arrays hold SciPy or pydata chunks): SciPy's CSR matrix."""
    try:
        from scipy import sparse
    except ModuleNotFoundError as error:
        raise ImportError("sparse=True on the dask backend needs SciPy: pip install scipy") from error
    return sparse.csr_matrix((values, (rows, cols)), shape=shape)
