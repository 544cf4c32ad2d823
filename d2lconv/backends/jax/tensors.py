"""JAX/Flax tensors: conversions to and from NumPy, dtypes, and the small ops the common API needs."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax import lax
from jax import numpy as jnp


def is_native(x: Any) -> bool:
    """``jax.Array``, including the tracers that ``jax.jit`` and ``jax.grad`` pass around."""
    return isinstance(x, jax.Array)


def from_numpy(array: np.ndarray) -> jax.Array:
    return jnp.asarray(array)  # float64 stays float64 only with JAX_ENABLE_X64 (else float32, silently)


def to_numpy(x: jax.Array) -> np.ndarray:
    return np.asarray(x)


def dtype_of(x: jax.Array) -> np.dtype:
    return x.dtype  # already a NumPy dtype, for arrays and tracers alike


def cast(x: jax.Array, dtype: np.dtype) -> jax.Array:
    # canonicalize_dtype maps float64 to float32 without JAX_ENABLE_X64, so astype does not warn about it
    return x.astype(jax.dtypes.canonicalize_dtype(dtype))


def is_constant(x: jax.Array) -> bool:
    """A concrete array is constant; a tracer may be what ``jax.grad`` differentiates, so it is not."""
    return not isinstance(x, jax.core.Tracer)


def transpose(x: jax.Array) -> jax.Array:
    return x.T


def flip(x: jax.Array) -> jax.Array:
    """Both of the last two axes reversed."""
    return jnp.flip(x, (-2, -1))


def pad(x: jax.Array, rows: tuple[int, int], cols: tuple[int, int]) -> jax.Array:
    """Zeros around the last two axes (leading axes, a batch or channels, are not padded)."""
    return jnp.pad(x, ((0, 0),) * (x.ndim - 2) + (rows, cols))


def reshape(x: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    return x.reshape(shape)


def stack(xs: list[jax.Array], axis: int = 0) -> jax.Array:
    return jnp.stack(xs, axis)


def einsum(spec: str, *operands: jax.Array) -> jax.Array:
    return jnp.einsum(spec, *operands, precision=lax.Precision.HIGHEST)  # exact float32 on GPU/TPU too


def moveaxis(x: jax.Array, source: int, destination: int) -> jax.Array:
    return jnp.moveaxis(x, source, destination)


def sparse_matrix(rows: np.ndarray, cols: np.ndarray, values: np.ndarray, shape: tuple[int, int]) -> Any:
    """A ``jax.experimental.sparse.BCOO`` matrix with duplicate entries summed (usable with ``@``)."""
    from jax.experimental import sparse  # only this function needs it

    indices = jnp.asarray(np.stack([rows, cols], axis=1))
    return sparse.BCOO((jnp.asarray(values), indices), shape=shape).sum_duplicates()


def zero_where(x: jax.Array, mask: np.ndarray) -> jax.Array:
    """``x`` with zeros where the NumPy boolean ``mask`` is True (differentiable in ``x``)."""
    return jnp.where(mask, jnp.zeros((), x.dtype), x)


def concat(tensors: list[jax.Array], axis: int) -> jax.Array:
    return jnp.concatenate(tensors, axis=axis)
