"""PyTorch tensors: conversions to and from NumPy, dtypes, and the small ops the common API needs."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.autograd.forward_ad as fwAD
import torch.nn.functional as F

# NumPy dtype <-> torch dtype, filled on first sight (dtype_of runs on every call, so it is a dict look-up).
_NUMPY_DTYPES: dict[torch.dtype, np.dtype] = {torch.float32: np.dtype(np.float32), torch.float64: np.dtype(np.float64)}
_TORCH_DTYPES: dict[np.dtype, torch.dtype] = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}


# torch.func's transforms (jvp, grad, vmap) wrap tensors; private, so looked up with a fallback.
_functorch = getattr(torch._C, "_functorch", None)


def is_native(x: Any) -> bool:
    return isinstance(x, torch.Tensor)


def from_numpy(array: np.ndarray) -> torch.Tensor:
    """The array as a CPU tensor of its dtype, sharing its memory (as ``torch.from_numpy`` does)."""
    return torch.from_numpy(array) if array.flags.writeable else torch.tensor(array)


def to_numpy(x: torch.Tensor) -> np.ndarray:
    """The tensor as NumPy; bfloat16 and float8, which NumPy lacks, come back as float32 (exactly).

    Also inside ``torch.func.jvp``/``grad``, which wrap the tensors they touch (a wrapper has no storage, and
    ``.numpy()`` fails on plain tensors too while a transform runs): the values are read beneath it.
    """
    if _functorch is None or _functorch.peek_interpreter_stack() is None:
        return _as_numpy(x.detach().cpu())
    while _functorch.is_functorch_wrapped_tensor(x):
        if _functorch.is_batchedtensor(x):
            raise ValueError("d2lconv cannot look at a tensor inside torch.func.vmap: pass the batch as a "
                             "leading axis instead (corr2d takes (..., H, W))")
        x = _functorch.get_unwrapped(x)
    with torch._C._DisableFuncTorch():
        return _as_numpy(x.detach().cpu())


def _as_numpy(x: torch.Tensor) -> np.ndarray:
    try:
        return x.numpy()
    except TypeError:
        if x.dtype.is_floating_point:
            return x.float().numpy()
        raise


def dtype_of(x: torch.Tensor) -> np.dtype:
    dtype = _NUMPY_DTYPES.get(x.dtype)
    if dtype is None:
        try:
            dtype = torch.empty(0, dtype=x.dtype).numpy().dtype
        except TypeError:  # bfloat16, float8, complex32: NumPy has none, so name a stand-in of the same kind
            dtype = np.dtype(np.complex64 if x.dtype.is_complex else np.float16 if x.dtype.is_floating_point
                             else np.int64)
        _NUMPY_DTYPES[x.dtype] = dtype
    return dtype


def cast(x: torch.Tensor, dtype: np.dtype) -> torch.Tensor:
    """``x.to(dtype)``: differentiable, so a gradient flows back in ``x``'s own dtype."""
    dtype = np.dtype(dtype)
    target = _TORCH_DTYPES.get(dtype)
    if target is None:
        target = _TORCH_DTYPES[dtype] = torch.from_numpy(np.empty(0, dtype=dtype)).dtype
    return x.to(target)


def is_constant(K: torch.Tensor) -> bool:
    """True when autograd cannot reach ``K``: it needs no gradient (or grad mode is off) and has no tangent.

    A forward-mode tangent (``torch.autograd.forward_ad``) does not set ``requires_grad`` but is a
    derivative all the same, so a dual tensor is not constant either. Outside every ``fwAD.dual_level()`` no
    tensor has a tangent (leaving the level drops them), so the look-up (a few microseconds, which show on
    the book's tiny inputs) is skipped there.
    """
    if K.requires_grad and torch.is_grad_enabled():
        return False
    if _functorch is not None and _functorch.is_functorch_wrapped_tensor(K):
        return False  # inside torch.func.jvp, grad or vmap: only the framework's own ops may see it
    return getattr(fwAD, "_current_level", 0) < 0 or fwAD.unpack_dual(K).tangent is None


def transpose(x: torch.Tensor) -> torch.Tensor:
    return x.t()


def flip(x: torch.Tensor) -> torch.Tensor:
    """Both of the last two axes reversed."""
    return torch.flip(x, (-2, -1))


def pad(x: torch.Tensor, rows: tuple[int, int], cols: tuple[int, int]) -> torch.Tensor:
    """Zeros around the last two axes (leading axes, a batch or channels, are not padded)."""
    return F.pad(x, (*cols, *rows))  # F.pad lists the last axis first


def reshape(x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    return x.reshape(shape)


def stack(xs: list[torch.Tensor], axis: int = 0) -> torch.Tensor:
    return torch.stack(xs, axis)


def einsum(spec: str, *operands: torch.Tensor) -> torch.Tensor:
    return torch.einsum(spec, *operands)


def moveaxis(x: torch.Tensor, source: int, destination: int) -> torch.Tensor:
    return torch.movedim(x, source, destination)


def sparse_matrix(rows: np.ndarray, cols: np.ndarray, values: np.ndarray, shape: tuple[int, int]) -> torch.Tensor:
    """A coalesced ``torch.sparse_coo_tensor`` (duplicate entries summed), ready for ``torch.sparse.mm``."""
    indices = torch.from_numpy(np.stack([rows, cols]).astype(np.int64))
    values = torch.from_numpy(np.ascontiguousarray(values))
    return torch.sparse_coo_tensor(indices, values, shape, check_invariants=True).coalesce()


def zero_where(x: torch.Tensor, mask: np.ndarray) -> torch.Tensor:
    """``x`` with zeros where the NumPy boolean ``mask`` is True (differentiable in ``x``)."""
    return x.masked_fill(torch.from_numpy(mask).to(x.device), 0)


def concat(tensors: list[torch.Tensor], axis: int) -> torch.Tensor:
    return torch.cat(tensors, dim=axis)
