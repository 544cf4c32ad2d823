"""The kernel-learning loss's curvature (what ``lr="auto"`` needs) and its exact minimum, on Dask arrays.

The loss ``sum((corr2d(X, K) + b - Y) ** 2)`` has the Hessian ``2 A^T A``, where the columns of ``A`` are the
kernel's shifted windows of ``X`` (and a column of ones for a bias). For small kernels ``A^T A`` itself is
cheap: one pass over the data sums it block by block, and its largest eigenvalue is exact. For larger ones
(more than ``GRAM_TAPS`` elements) the power iteration of :func:`d2lconv.largest_curvature` runs with one
pass over the data per iteration, every block contributing its share of ``A^T A v``.
"""

from __future__ import annotations

import math

import dask.array as da
import numpy as np

from d2lconv.backends.dask import blocks
from d2lconv.backends.dask.tiling import block_sums, tile

# Up to this many kernel elements the exact Gram matrix (taps^2 multiply-adds per pixel, one pass) costs less
# than power iteration (2 taps multiply-adds per pixel per pass, tens of passes).
GRAM_TAPS = 64


def largest_curvature(X: da.Array, kernel_shape: tuple[int, ...], *, bias: bool = False, iterations: int = 200,
                      tolerance: float = 1e-6) -> float:
    """The largest eigenvalue of the Hessian of ``sum((corr2d(X, K) + b - Y) ** 2)``, for a Dask array ``X``.

    ``X`` is ``(..., H, W)`` with a 2-D ``kernel_shape``, or ``(..., C, H, W)`` with ``(O, C, h, w)`` (the loss
    of ``corr2d_multi_in_out``, whose Hessian is ``O`` copies of one output channel's: its curvature is
    that of one; the channel axis is made one chunk, as every output reads every channel).
    """
    channels = len(kernel_shape) == 4
    if channels and X.numblocks[-3] > 1:
        X = X.rechunk({X.ndim - 3: -1})
    size2d = tuple(kernel_shape[-2:])
    tiling = tile(X, size2d, (1, 1))
    shape = (1, *kernel_shape[1:]) if channels else size2d
    taps = int(np.prod(shape))
    leading = (*X.chunks[:-3], (1,)) if channels else None
    if taps <= GRAM_TAPS:
        size = taps + bool(bias)
        gram = block_sums(blocks.gram_terms, tiling, size=size * size, leading=leading, kernel_shape=size2d,
                          bias=bias, channels=channels)
        return 2 * float(np.linalg.eigvalsh(gram.compute().reshape(size, size))[-1])
    rng = np.random.default_rng(0)  # the same start and steps as d2lconv.largest_curvature
    kernel = rng.random(shape) + 0.5
    offset = 1.0 if bias else 0.0
    estimate = 0.0
    for _ in range(iterations):
        norm = math.sqrt(float((kernel ** 2).sum()) + offset ** 2)
        kernel, offset = kernel / norm, offset / norm
        sums = block_sums(blocks.normal_terms, tiling, size=1 + taps, leading=leading, kernel=kernel,
                          offset=offset).compute()
        kernel = 2 * sums[1:].reshape(shape)
        offset = 2 * float(sums[0]) if bias else 0.0
        previous, estimate = estimate, math.sqrt(float((kernel ** 2).sum()) + offset ** 2)
        if abs(estimate - previous) <= tolerance * estimate:
            break
    return estimate


def least_squares_kernel(X: da.Array, Y: da.Array, kernel_shape: tuple[int, int]) -> np.ndarray:
    """The kernel minimising ``sum((corr2d(X, K) - Y) ** 2)``, from the normal equations summed block by block.

    One pass over ``X`` and ``Y``; the small ``h w x h w`` system is then solved in NumPy as
    :func:`d2lconv.least_squares_kernel` solves it (least squares: the smallest-norm kernel where the data
    leave it undetermined).
    """
    size = kernel_shape[0] * kernel_shape[1]
    sums = block_sums(blocks.normal_equation_terms, tile(X, kernel_shape, (1, 1)), Y, size=size * size + size,
                      kernel_shape=kernel_shape).compute()
    gram, moment = sums[:size * size].reshape(size, size), sums[size * size:]
    return np.linalg.lstsq(gram, moment, rcond=None)[0].reshape(kernel_shape)
