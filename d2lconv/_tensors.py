"""Making native tensors of the active backend and turning any tensor back into NumPy."""

from __future__ import annotations

from typing import Any

import numpy as np

from d2lconv._backend import active_adapter
from d2lconv._inputs import as_tensor, check_matrix, kernel_size_pair, pair, to_numpy

__all__ = ["tensor", "zeros", "ones", "transpose", "to_numpy", "Conv2D"]


def tensor(data: Any) -> Any:
    """``data`` (nested lists, a NumPy array or a native tensor) as a float tensor of the active backend.

    Float64 stays float64; everything else real (ints, bools, float16) becomes float32.
    """
    return as_tensor(active_adapter(), data, "data")


def zeros(shape: Any) -> Any:
    """A float32 tensor of zeros of the active backend."""
    return active_adapter().from_numpy(np.zeros(pair(shape, "shape", minimum=0), dtype=np.float32))


def ones(shape: Any) -> Any:
    """A float32 tensor of ones of the active backend."""
    return active_adapter().from_numpy(np.ones(pair(shape, "shape", minimum=0), dtype=np.float32))


def transpose(x: Any) -> Any:
    """The transpose of a 2-D tensor (``X.t()``, ``tf.transpose(X)``, ``X.T``), as a native tensor."""
    adapter = active_adapter()
    x = as_tensor(adapter, x, "x")
    check_matrix(x, "x")
    return adapter.transpose(x)


def Conv2D(kernel_size: Any, *, bias: bool = True, seed: int | None = None, padding: Any = 0, stride: Any = 1) -> Any:
    """The book's hand-written layer as a native layer of the active backend's framework.

    A ``torch.nn.Module``, a Keras ``Layer``, a ``flax.linen.Module``, a Gluon ``Block`` (on NumPy a small
    class with an analytic gradient) with parameters ``weight`` (``kernel_size``) and ``bias`` (``(1,)``),
    returning ``corr2d(x, weight, padding=..., stride=...) + bias`` for a 2-D input ``x``.
    """
    adapter = active_adapter()
    return adapter.Conv2D(
        kernel_size_pair(kernel_size), bias=bool(bias), seed=seed, padding=padding,
        stride=pair(stride, "stride", minimum=1),
    )

