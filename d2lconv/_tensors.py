"""Making native tensors of the active backend and turning any tensor back into NumPy."""

from __future__ import annotations

from numbers import Integral
from typing import Any

import numpy as np

from d2lconv._backend import active_adapter
from d2lconv._channels import _layout, check_groups
from d2lconv._inputs import as_tensor, check_matrix, dilation_pair, kernel_size_pair, pair, to_numpy

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


def Conv2D(kernel_size: Any, *, in_channels: int | None = None, out_channels: int | None = None, groups: int = 1,
           bias: bool = True, seed: int | None = None, padding: Any = 0, stride: Any = 1, dilation: Any = 1,
           data_format: str = "channels_first") -> Any:
    """The book's hand-written layer as a native layer of the active backend's framework.

    A ``torch.nn.Module``, a Keras ``Layer``, a ``flax.linen.Module``, a Gluon ``Block`` (on NumPy a small
    class with an analytic gradient) with parameters ``weight`` and ``bias``, trained with the framework's
    own autodiff. Without channels it is the book's layer: ``weight`` of shape ``kernel_size``, ``bias`` of
    shape ``(1,)``, returning ``corr2d(x, weight, padding=..., stride=..., dilation=...) + bias`` for an input
    ``(H, W)`` or a batch ``(..., H, W)``. With ``in_channels`` and ``out_channels`` (either given makes the
    other default to 1) it takes ``(..., C, H, W)`` (``(..., H, W, C)`` with ``data_format="channels_last"``)
    and returns ``corr2d_multi_in_out(x, weight, groups=...) + bias``: ``weight`` of shape
    ``(out_channels, in_channels // groups, h, w)``, ``bias`` of shape ``(out_channels,)``.
    """
    adapter = active_adapter()
    size = kernel_size_pair(kernel_size)
    _layout(data_format)
    channels = None
    if in_channels is not None or out_channels is not None or groups != 1:
        counts = tuple(_channel_count(n, name) for n, name in ((in_channels, "in_channels"),
                                                               (out_channels, "out_channels")))
        channels = (*counts, check_groups(groups, *counts))
    elif data_format != "channels_first":
        raise ValueError("data_format applies to layers with channels: give in_channels and out_channels too")
    return adapter.Conv2D(size, bias=bool(bias), seed=seed, padding=tuple(padding) if isinstance(padding, list)
                          else padding, stride=pair(stride, "stride", minimum=1), dilation=dilation_pair(dilation),
                          channels=channels, data_format=data_format)


def _channel_count(value: Any, name: str) -> int:
    """A channel count: None means 1 (when the other count is given), else an int >= 1."""
    if value is None:
        return 1
    if not isinstance(value, Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return int(value)
