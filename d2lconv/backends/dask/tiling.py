"""Splitting a strided valid cross-correlation of a chunked array into independent blocks.

Window ``i`` of an axis starts at input row ``i * stride`` and spans ``k`` rows. Each output block holds the
windows that *start* in one input chunk, so it needs that chunk plus the ``k - 1`` rows after it and the
``k - 1`` columns to its right (its halo: strips of the chunks below, to the right and diagonally), and nothing
before it. ``map_blocks`` then computes each block once, from its chunk and the three strips. Where a block's
first window starts inside its chunk (``stride > 1``), the block skips to it, so the windows, and so the
results, are those of the whole array whatever the chunks.

Memory. A chunk that gives strips to its neighbours stays in memory until its own block runs, which in any
order of the blocks is about a row (or column) of chunks later: peak memory is about one row of chunks
plus a few chunks per worker thread. Chunks that span the whole width (``chunks=(rows, -1)``) make a row
one chunk, and memory a few chunks per thread, whatever the image's size.

Two adjustments keep every block simple: chunks shorter than the halo or the stride are merged with their
neighbours (so a halo never reaches past the next chunk, and every chunk starts a window), and the chunks
past the last window's start are merged into the chunk before them (they only hold its halo).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import dask.array as da
import numpy as np
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

NAME_PREFIX = "d2lconv-"  # the names of the arrays made by d2lconv's blocks


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
    """Where each block's windows lie: small tuples of ints, sent with every block's task.

    The windows slide over the last two axes; any axes before them (a batch, channels) ride along whole in
    each block, as the arrays' own chunks cut them.
    """

    rows: Axis
    cols: Axis
    extent: tuple[int, int]  # the rows and columns one window spans (a dilated kernel spans more than its size)
    stride: tuple[int, int]
    leading: int  # how many axes come before the last two

    @property
    def pieces(self) -> int:
        """How many arrays make a block: its chunk, then the strips below, to the right and diagonally."""
        below, right = self.extent[0] > 1, self.extent[1] > 1
        return 1 + below + right + (below and right)

    @property
    def largest_block(self) -> tuple[int, int]:
        """The input rows and columns of the largest block's windows (what one chunk computation sees)."""
        (h, w), (s_h, s_w) = self.extent, self.stride
        return (max(self.rows.counts) - 1) * s_h + h, (max(self.cols.counts) - 1) * s_w + w

    def parts(self, pieces: tuple[np.ndarray, ...],
              block_id: tuple[int, ...]) -> list[tuple[slice, slice, np.ndarray]]:
        """Block ``block_id`` as ``(output rows, output columns, input window)`` parts.

        The windows that fit inside the chunk read it in place (a view, no copy); only the last rows and
        columns of outputs, whose windows reach into the halo, get small windows copied from the chunk's
        edge and the strips. One part when the block needs no halo.
        """
        i, j = block_id[self.leading], block_id[self.leading + 1]
        (h, w), (s_h, s_w) = self.extent, self.stride
        top, left = self.rows.offsets[i], self.cols.offsets[j]
        count_r, count_c = self.rows.counts[i], self.cols.counts[j]
        chunk_rows, chunk_cols = pieces[0].shape[-2:]
        inner_r = min(count_r, max(0, (chunk_rows - top - h) // s_h + 1))  # outputs whose windows fit
        inner_c = min(count_c, max(0, (chunk_cols - left - w) // s_w + 1))

        def window(first_r: int, stop_r: int, first_c: int, stop_c: int) -> np.ndarray:
            return _rectangle(pieces, self.extent, top + first_r * s_h, top + (stop_r - 1) * s_h + h,
                              left + first_c * s_w, left + (stop_c - 1) * s_w + w)

        parts = []
        if inner_r and inner_c:
            parts.append((slice(0, inner_r), slice(0, inner_c), window(0, inner_r, 0, inner_c)))
        if inner_r and inner_c < count_c:
            parts.append((slice(0, inner_r), slice(inner_c, count_c), window(0, inner_r, inner_c, count_c)))
        if inner_r < count_r:
            parts.append((slice(inner_r, count_r), slice(0, count_c), window(inner_r, count_r, 0, count_c)))
        return parts


def _rectangle(pieces: tuple[np.ndarray, ...], extent: tuple[int, int], r0: int, r1: int, c0: int,
               c1: int) -> np.ndarray:
    """Rows ``r0:r1`` and columns ``c0:c1`` of a chunk extended by its strips: a view when inside the chunk."""
    chunk = pieces[0]
    rows, cols = chunk.shape[-2:]
    if r1 <= rows and c1 <= cols:
        return chunk[..., r0:r1, c0:c1]
    below = pieces[1] if extent[0] > 1 else None
    right = pieces[1 + (extent[0] > 1)] if extent[1] > 1 else None
    out = np.empty((*chunk.shape[:-2], r1 - r0, c1 - c0), dtype=chunk.dtype)
    inside_r, inside_c = max(0, min(r1, rows) - r0), max(0, min(c1, cols) - c0)
    if inside_r and inside_c:
        out[..., :inside_r, :inside_c] = chunk[..., r0:r0 + inside_r, c0:c0 + inside_c]
    if inside_r and inside_c < c1 - c0:
        out[..., :inside_r, inside_c:] = right[..., r0:r0 + inside_r, max(c0 - cols, 0):c1 - cols]
    if inside_r < r1 - r0:
        if inside_c:
            out[..., inside_r:, :inside_c] = below[..., max(r0 - rows, 0):r1 - rows, c0:c0 + inside_c]
        if inside_c < c1 - c0:
            out[..., inside_r:, inside_c:] = pieces[-1][..., max(r0 - rows, 0):r1 - rows, max(c0 - cols, 0):c1 - cols]
    return out


@dataclass(frozen=True)
class Tiling:
    """A padded input cut into blocks, one per block of the correlation's output, with their halos."""

    pieces: tuple[da.Array, ...]  # the chunks, then the strips below, to the right and diagonally, block-aligned
    plan: Plan
    leading_chunks: tuple[tuple[int, ...], ...]  # the input's chunks along the axes before the last two

    def output_chunks(self, leading: tuple[tuple[int, ...], ...] | None = None) -> tuple[tuple[int, ...], ...]:
        """The output's chunks: ``leading`` (the input's by default) then one block per window plan."""
        return (*(self.leading_chunks if leading is None else leading), self.plan.rows.counts, self.plan.cols.counts)


def tile(X: da.Array, extent: tuple[int, int], stride: tuple[int, int]) -> Tiling:
    """Plan the blocks of a valid correlation of ``X`` (already padded) over its last two axes; cut the halos.

    ``extent`` is the rows and columns one window spans: the kernel's shape, or ``(h - 1) d + 1`` with a
    dilation ``d``.
    """
    rows = plan_axis(X.chunks[-2], X.shape[-2], extent[0], stride[0])
    cols = plan_axis(X.chunks[-1], X.shape[-1], extent[1], stride[1])
    if (rows.chunks, cols.chunks) != X.chunks[-2:]:
        X = X.rechunk((*X.chunks[:-2], rows.chunks, cols.chunks))
    plan = Plan(rows, cols, tuple(extent), tuple(stride), X.ndim - 2)
    return Tiling((X, *_halos(X, extent[0] - 1, extent[1] - 1)), plan, X.chunks[:-2])


def _halos(X: da.Array, depth: int, width: int) -> list[da.Array]:
    """The strips each block needs from the chunks below, to the right and diagonally (zeros past the edge)."""
    halos = []
    if depth:
        halos.append(_neighbour_strips(X, depth, None, 1, 0))
    if width:
        halos.append(_neighbour_strips(X, None, width, 0, 1))
    if depth and width:
        halos.append(_neighbour_strips(X, depth, width, 1, 1))
    return halos


def _neighbour_strips(X: da.Array, rows: int | None, cols: int | None, down: int, right: int) -> da.Array:
    """Block ``(..., i, j)``: a copy of the first ``rows`` rows / ``cols`` columns of ``X``'s block
    ``(..., i + down, j + right)``, or zeros past the array's edge (never read). One task per block, straight
    from the neighbouring chunk (no slicing or concatenation layers for the scheduler to run)."""
    (row_chunks, col_chunks), (n_rows, n_cols) = X.chunks[-2:], X.numblocks[-2:]
    chunks = (*X.chunks[:-2], (rows,) * n_rows if rows else row_chunks, (cols,) * n_cols if cols else col_chunks)
    name = f"{NAME_PREFIX}halo-{tokenize(X, rows, cols, down, right)}"
    graph = {}
    for index in np.ndindex(X.numblocks):
        i, j = index[-2:]
        if i + down < n_rows and j + right < n_cols:
            graph[(name, *index)] = (_corner, (X.name, *index[:-2], i + down, j + right), rows, cols)
        else:
            shape = tuple(sizes[k] for sizes, k in zip(chunks, index))
            graph[(name, *index)] = (partial(np.zeros, shape, dtype=X.dtype),)
    layers = HighLevelGraph.from_collections(name, graph, dependencies=[X])
    return da.Array(layers, name, chunks, meta=np.empty((0,) * X.ndim, X.dtype))


def _corner(chunk: np.ndarray, rows: int | None, cols: int | None) -> np.ndarray:
    """A copy of the chunk's first rows or columns (a copy: a view would keep the whole chunk in memory)."""
    return chunk[..., :rows, :cols].copy()


def map_windows(function: Callable[..., np.ndarray], tiling: Tiling, *aligned: da.Array, dtype: Any,
                leading: tuple[tuple[int, ...], ...] | None = None, **kwargs: Any) -> da.Array:
    """The lazy output array: ``function(window, *aligned_blocks, **kwargs)`` for each output block.

    ``aligned`` arrays have the output's shape; each is cut into the output's blocks. ``leading`` gives the
    output's chunks along the axes before the last two when they are not the input's (channels in, out).
    A block computed in parts calls ``function(..., out=view)`` for each, which must write into ``view``.
    """
    chunks = tiling.output_chunks(leading)
    aligned = tuple(a if a.chunks == chunks else a.rechunk(chunks) for a in aligned)
    return da.map_blocks(_call_on_window, *tiling.pieces, *aligned, function=function, plan=tiling.plan,
                         out_leading=chunks[:-2], block_dtype=np.dtype(dtype), chunks=chunks, dtype=dtype,
                         meta=np.empty((0,) * len(chunks), dtype=dtype), token=NAME_PREFIX + "corr2d", **kwargs)


def block_sums(function: Callable[..., np.ndarray], tiling: Tiling, *aligned: da.Array, size: int,
               leading: tuple[tuple[int, ...], ...] | None = None, **kwargs: Any) -> da.Array:
    """The sum over all blocks of ``function(window, *aligned_blocks, **kwargs)``, a float64 vector of ``size``.

    Dask reduces the per-block vectors in a tree, so memory holds a few vectors, never the blocks' inputs.
    """
    chunks = tiling.output_chunks(leading)
    aligned = tuple(a if a.chunks == chunks else a.rechunk(chunks) for a in aligned)
    counts = tuple((1,) * len(axis) for axis in chunks)
    parts = da.map_blocks(_vector_of_window, *tiling.pieces, *aligned, function=function, plan=tiling.plan,
                          chunks=(*counts, (size,)), new_axis=len(chunks), dtype=np.float64,
                          meta=np.empty((0,) * (len(chunks) + 1), dtype=np.float64), token=NAME_PREFIX + "sums",
                          **kwargs)
    return parts.sum(axis=tuple(range(len(chunks))))


def _call_on_window(*arrays: np.ndarray, function: Callable[..., np.ndarray], plan: Plan,
                    out_leading: tuple[tuple[int, ...], ...], block_dtype: Any,
                    block_id: tuple[int, ...] | None = None, **kwargs: Any) -> np.ndarray:
    pieces, aligned = arrays[:plan.pieces], arrays[plan.pieces:]
    parts = plan.parts(pieces, block_id)
    if len(parts) == 1:
        return function(parts[0][2], *aligned, **kwargs)
    lead = tuple(sizes[index] for sizes, index in zip(out_leading, block_id))
    i, j = block_id[plan.leading], block_id[plan.leading + 1]
    out = np.empty((*lead, plan.rows.counts[i], plan.cols.counts[j]), dtype=block_dtype)
    for rows, cols, window in parts:  # each part written straight into its place
        function(window, *(a[..., rows, cols] for a in aligned), out=out[..., rows, cols], **kwargs)
    return out


def _vector_of_window(*arrays: np.ndarray, function: Callable[..., np.ndarray], plan: Plan,
                      block_id: tuple[int, ...] | None = None, **kwargs: Any) -> np.ndarray:
    pieces, aligned = arrays[:plan.pieces], arrays[plan.pieces:]
    vector = sum(np.asarray(function(window, *(a[..., rows, cols] for a in aligned), **kwargs), dtype=np.float64)
                 for rows, cols, window in plan.parts(pieces, block_id))
    return vector.reshape((1,) * (len(block_id) - 1) + (-1,))
