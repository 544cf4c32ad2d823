"""What a ``d2lconv.Conv2D`` layer computes besides holding its parameters, shared by the five frameworks' layers.

The book's layer is ``corr2d(x, self.weight) + self.bias`` with a 2-D weight and a bias of shape ``(1,)``;
with channels it is ``corr2d_multi_in_out(x, self.weight, groups=...) + self.bias`` with a weight of shape
``(O, C // groups, h, w)`` and one bias per output channel. Each backend's ``Conv2D`` (a ``torch.nn.Module``,
a Keras layer, a Flax module, a Gluon block) holds a :class:`Correlation` and calls it in its forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

from d2lconv._channels import correlate_channels
from d2lconv._corr import correlate


@dataclass(frozen=True)
class Correlation:
    """A layer's cross-correlation: its shapes and options (hashable, as Flax module fields must be)."""

    kernel_size: tuple[int, int]
    channels: tuple[int, int, int] | None = None  # (in_channels, out_channels, groups); None: the book's layer
    padding: Any = 0
    stride: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    data_format: str = "channels_first"

    @property
    def weight_shape(self) -> tuple[int, ...]:
        if self.channels is None:
            return self.kernel_size
        in_channels, out_channels, groups = self.channels
        return (out_channels, in_channels // groups, *self.kernel_size)

    @property
    def bias_shape(self) -> tuple[int]:
        return (1,) if self.channels is None else (self.channels[1],)

    def __call__(self, adapter: ModuleType, x: Any, weight: Any, bias: Any = None) -> Any:
        """``corr2d(x, weight) + bias`` (the book's layer), or ``corr2d_multi_in_out(x, weight) + bias``."""
        if self.channels is None:
            Y = correlate(adapter, x, weight, padding=self.padding, stride=self.stride, dilation=self.dilation)
            return Y if bias is None else Y + bias
        Y = correlate_channels(adapter, x, weight, groups=self.channels[2], padding=self.padding, stride=self.stride,
                               dilation=self.dilation, data_format=self.data_format, function="Conv2D")
        if bias is None:
            return Y
        return Y + (bias if self.data_format == "channels_last" else adapter.reshape(bias, (-1, 1, 1)))

    def describe(self) -> str:
        """The options for a layer's ``repr``."""
        text = f"kernel_size={self.kernel_size}"
        if self.channels is not None:
            text += f", in_channels={self.channels[0]}, out_channels={self.channels[1]}"
            text += f", groups={self.channels[2]}" if self.channels[2] != 1 else ""
        text += f", padding={self.padding!r}, stride={self.stride}"
        text += f", dilation={self.dilation}" if self.dilation != (1, 1) else ""
        if self.channels is not None and self.data_format != "channels_first":
            text += f", data_format={self.data_format!r}"
        return text
