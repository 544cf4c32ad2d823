"""Receptive fields (the chapter's section "Feature Map and Receptive Field").

For a stack of conv layers, each output element depends on a rectangle of the input. Going from the input
up, each layer with kernel ``k`` widens that rectangle by ``(k - 1)`` times the distance between
neighbouring elements of its input (the product of the strides below it, the "jump"); padding moves it
(it may reach beyond the input: "the receptive field may be larger than the actual size of the input").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from d2lconv._inputs import pair


@dataclass(frozen=True)
class ReceptiveField:
    """The input region that output element ``(i, j)`` of the stack sees.

    ``size`` is its height and width; it starts at ``start + (i, j) * jump`` in input coordinates
    (negative when padding puts part of it outside the input).
    """

    size: tuple[int, int]
    jump: tuple[int, int]
    start: tuple[int, int]

    def region(self, i: int, j: int) -> tuple[slice, slice]:
        """Row and column slices of the region of output ``(i, j)`` (unclipped)."""
        top, left = self.start[0] + i * self.jump[0], self.start[1] + j * self.jump[1]
        return slice(top, top + self.size[0]), slice(left, left + self.size[1])


def receptive_field(layers: Iterable[Any]) -> ReceptiveField:
    """The receptive field of one output element of a stack of conv layers, first layer first.

    Each layer is a kernel size, or a tuple ``(kernel, stride)`` or ``(kernel, stride, padding)``, where
    each entry is an int or a pair, and padding is per side as in :func:`d2lconv.corr2d`.
    Two stacked 2x2 layers see 3x3, as the chapter says: ``receptive_field([2, 2]).size == (3, 3)``.
    """
    size, jump, start = [1, 1], [1, 1], [0, 0]
    for number, layer in enumerate(layers):
        kernel, stride, padding = (tuple(layer) + (1, 0))[:3] if isinstance(layer, tuple) else (layer, 1, 0)
        k = pair(kernel, f"layer {number} kernel", minimum=1)
        s = pair(stride, f"layer {number} stride", minimum=1)
        p = pair(padding, f"layer {number} padding", minimum=0)
        for axis in (0, 1):
            size[axis] += (k[axis] - 1) * jump[axis]
            start[axis] -= p[axis] * jump[axis]
            jump[axis] *= s[axis]
    return ReceptiveField(tuple(size), tuple(jump), tuple(start))
