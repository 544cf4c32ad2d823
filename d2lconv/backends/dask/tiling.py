"""Splitting a strided valid cross-correlation of a chunked array into independent blocks.

Window ``i`` of an axis starts at input row ``i * stride`` and spans ``k`` rows. Each output block holds the
windows that *start* in one input chunk, so it needs that chunk plus the ``k - 1`` rows after it (its halo),
and nothing before it: ``dask.array.overlap`` copies the halo from the next chunk (an asymmetric depth,
``(0, k - 1)``), then ``map_blocks`` computes each block once. Where a block's first window starts inside
its chunk (``stride > 1``), the block skips to it, so the windows, and so the results, are those of the
whole array whatever the chunks.

Two adjustments keep every block simple: chunks shorter than the halo or the stride are merged with their
neighbours (so a halo never reaches past the next chunk, and every chunk starts a window), and the chunks
past the last window's start are merged into the chunk before them (they only hold its halo).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dask.array as da
import numpy as np


@dataclass(frozen=True)
class Axis:
    """The plan of one axis: input chunks, and per block its number of windows and its first window's offset."""

    chunks: tuple[int, ...]
    counts: tuple[int, ...]
    offsets: tuple[int, ...]


def merge_small(chunks: tuple[int, ...], minimum: int) -> tuple[int, ...]:
    """Neighbouring chunks merged until each holds at least ``minimum`` (a short remainder joins the last)."""
    merged: list[int] = []
    current = 0
    for size in chunks:
        current += size
        if current >= minimum:
            merged.append(current)
            current = 0
    if current:
        if merged:
            merged[-1] += current
        else:
            merged.append(current)
    return tuple(merged)


def plan_axis(chunks: tuple[int, ...], length: int, kernel: int, stride: int) -> Axis:
    """The blocks of one axis of a valid cross-correlation with a ``kernel``-long window and a ``stride``."""
    windows = (length - kernel) // stride + 1
    last_start = (windows - 1) * stride
    kept: list[int] = []
    start = 0
    for size in merge_small(chunks, max(kernel - 1, stride, 1)):
        if start > last_start:  # starts no window: it is only the halo of the chunk before
            kept[-1] += size
        else:
            kept.append(size)
        start += size
    counts, offsets = [], []
    start = 0
    for size in kept:
        first = -(-start // stride)  # the first window starting at or after `start`
        stop = min(-(-(start + size) // stride), windows)
        counts.append(stop - first)
        offsets.append(first * stride - start)
        start += size
    return Axis(tuple(kept), tuple(counts), tuple(offsets))


@dataclass(frozen=True)
class Plan:
    """Where each block's windows lie: small tuples of ints, sent with every block's task."""

    rows: Axis
    cols: Axis
    kernel_shape: tuple[int, int]
    stride: tuple[int, int]

    @property
    def output_chunks(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        return self.rows.counts, self.cols.counts

    @property
    def largest_block(self) -> tuple[int, int]:
        """The input shape of the largest block's windows (what one chunk computation sees)."""
        (h, w), (s_h, s_w) = self.kernel_shape, self.stride
        return (max(self.rows.counts) - 1) * s_h + h, (max(self.cols.counts) - 1) * s_w + w

    def window(self, block: np.ndarray, block_id: tuple[int, ...]) -> np.ndarray:
        """The part of an overlapped ``block`` that its windows cover (a view)."""
        i, j = block_id[0], block_id[1]
        (h, w), (s_h, s_w) = self.kernel_shape, self.stride
        top, left = self.rows.offsets[i], self.cols.offsets[j]
        rows, cols = (self.rows.counts[i] - 1) * s_h + h, (self.cols.counts[j] - 1) * s_w + w
        return block[top:top + rows, left:left + cols]


@dataclass(frozen=True)
class Tiling:
    """A padded input cut into overlapping blocks, one per block of the correlation's output."""

    blocks: da.Array  # the input with each chunk extended by the halo of the next
    plan: Plan


def tile(X: da.Array, kernel_shape: tuple[int, int], stride: tuple[int, int]) -> Tiling:
    """Plan the blocks of ``corr2d(X, K, stride)`` (``X`` already padded) and overlap ``X`` accordingly."""
    rows = plan_axis(X.chunks[0], X.shape[0], kernel_shape[0], stride[0])
    cols = plan_axis(X.chunks[1], X.shape[1], kernel_shape[1], stride[1])
    if (rows.chunks, cols.chunks) != X.chunks:
        X = X.rechunk((rows.chunks, cols.chunks))
    halo = {0: (0, kernel_shape[0] - 1), 1: (0, kernel_shape[1] - 1)}
    if kernel_shape != (1, 1):
        X = da.overlap.overlap(X, depth=halo, boundary="none")
    return Tiling(X, Plan(rows, cols, kernel_shape, stride))


def map_windows(function: Callable[..., np.ndarray], tiling: Tiling, *aligned: da.Array, dtype: Any,
                **kwargs: Any) -> da.Array:
    """The lazy output array: ``function(window, *aligned_blocks, **kwargs)`` for each output block.

    ``aligned`` arrays have the output's shape; each is cut into the output's blocks.
    """
    chunks = tiling.plan.output_chunks
    aligned = tuple(a if a.chunks == chunks else a.rechunk(chunks) for a in aligned)
    return da.map_blocks(_call_on_window, tiling.blocks, *aligned, function=function, plan=tiling.plan,
                         chunks=chunks, dtype=dtype, meta=np.empty((0, 0), dtype=dtype), **kwargs)


def block_sums(function: Callable[..., np.ndarray], tiling: Tiling, *aligned: da.Array, size: int,
               **kwargs: Any) -> da.Array:
    """The sum over all blocks of ``function(window, *aligned_blocks, **kwargs)``, a float64 vector of ``size``.

    Dask reduces the per-block vectors in a tree, so memory holds a few vectors, never the blocks' inputs.
    """
    chunks = tiling.plan.output_chunks
    aligned = tuple(a if a.chunks == chunks else a.rechunk(chunks) for a in aligned)
    counts = tuple((1,) * len(axis) for axis in chunks)
    parts = da.map_blocks(_vector_of_window, tiling.blocks, *aligned, function=function, plan=tiling.plan,
                          chunks=(*counts, (size,)), new_axis=2, dtype=np.float64,
                          meta=np.empty((0, 0, 0), dtype=np.float64), **kwargs)
    return parts.sum(axis=(0, 1))


def _call_on_window(block: np.ndarray, *aligned: np.ndarray, function: Callable[..., np.ndarray], plan: Plan,
                    block_id: tuple[int, ...] | None = None, **kwargs: Any) -> np.ndarray:
    return function(plan.window(block, block_id), *aligned, **kwargs)


def _vector_of_window(block: np.ndarray, *aligned: np.ndarray, function: Callable[..., np.ndarray],
                      plan: Plan, block_id: tuple[int, ...] | None = None, **kwargs: Any) -> np.ndarray:
    vector = np.asarray(function(plan.window(block, block_id), *aligned, **kwargs), dtype=np.float64)
    return vector.reshape(1, 1, -1)
