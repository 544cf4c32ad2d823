"""Kernel design (the chapter's exercise 2), as tensors of the active backend.

Conventions: ``corr2d`` computes ``Y[i, j] = sum_{a, b} X[i + a, j + b] * K[a, b]``; axis 0 runs down the
rows (y), axis 1 along the columns (x). So ``derivative(1, axis=1)`` is ``[[-1, 1]]``: ``x[i, j + 1] -
x[i, j]``, and the book's ``[[1, -1]]`` is its negative.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from d2lconv._backend import active_adapter


def _native(kernel: np.ndarray) -> Any:
    return active_adapter().from_numpy(np.ascontiguousarray(kernel, dtype=np.float32))


def _check_axis(axis: Any) -> int:
    if axis not in (0, 1) or isinstance(axis, bool):
        raise ValueError(f"axis must be 0 (down the rows) or 1 (along the columns), got {axis!r}")
    return axis


def _along(row: np.ndarray, axis: int) -> np.ndarray:
    row = np.asarray(row, dtype=np.float64)[None, :]
    return row if _check_axis(axis) == 1 else row.T


def difference_coefficients(order: int) -> np.ndarray:
    """The forward difference of ``order`` d: ``sum_k (-1)^(d-k) C(d, k) f(x + k)``, d + 1 coefficients."""
    if not isinstance(order, int) or isinstance(order, bool) or order < 1:
        raise ValueError(f"order must be an int >= 1, got {order!r}")
    return np.array([(-1) ** (order - k) * math.comb(order, k) for k in range(order + 1)], dtype=np.float64)


def derivative(order: int = 1, axis: int = 1) -> Any:
    """The smallest finite-difference kernel for the ``order``-th derivative along ``axis`` (size order + 1).

    It maps polynomials of degree < order to zero and ``x ** order`` to the constant ``order!``.
    """
    return _native(_along(difference_coefficients(order), axis))


def second_derivative(axis: int = 1) -> Any:
    """``[1, -2, 1]`` along ``axis``."""
    return derivative(2, axis)


def laplacian() -> Any:
    """The 5-point Laplacian ``d2/dy2 + d2/dx2``: ``[[0, 1, 0], [1, -4, 1], [0, 1, 0]]``."""
    return _native(np.array([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]]))


def box(size: int = 3) -> Any:
    """The ``size x size`` mean filter: keeps the mean of an image, reduces its variance."""
    _check_size(size)
    return _native(np.full((size, size), 1.0 / size**2))


def gaussian(sigma: float = 1.0, size: int | None = None) -> Any:
    """A normalised Gaussian blur; ``size`` defaults to ``2 * ceil(3 sigma) + 1``."""
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma!r}")
    size = 2 * math.ceil(3 * sigma) + 1 if size is None else size
    _check_size(size)
    t = np.arange(size) - (size - 1) / 2
    g = np.exp(-(t**2) / (2 * sigma**2))
    kernel = np.outer(g, g)
    return _native(kernel / kernel.sum())


def sobel(axis: int = 1) -> Any:
    """Sobel: a central difference along ``axis``, smoothed ``[1, 2, 1]`` across it."""
    return _native(_smoothed_difference([1.0, 2.0, 1.0], axis))


def prewitt(axis: int = 1) -> Any:
    """Prewitt: a central difference along ``axis``, averaged ``[1, 1, 1]`` across it."""
    return _native(_smoothed_difference([1.0, 1.0, 1.0], axis))


def _smoothed_difference(smooth: list[float], axis: int) -> np.ndarray:
    kernel = np.outer(smooth, [-1.0, 0.0, 1.0])  # a difference along the columns (axis 1)
    return kernel if _check_axis(axis) == 1 else kernel.T


def edge_detector(direction: tuple[float, float]) -> Any:
    """A 3x3 kernel that responds to edges across ``direction`` = (v_y, v_x) and not to edges along it.

    It is the central-difference derivative along the unit vector ``v``: zero on any image that changes
    only perpendicular to ``v`` (exactly, on linear ramps), and ``|grad|`` on a ramp along ``v``.
    """
    v = np.asarray(direction, dtype=np.float64)
    if v.shape != (2,) or not np.isfinite(v).all() or not np.any(v):
        raise ValueError(f"direction must be two finite numbers, not both zero, got {direction!r}")
    v = v / np.linalg.norm(v)
    kernel = np.zeros((3, 3))
    kernel[0, 1], kernel[2, 1] = -v[0] / 2, v[0] / 2
    kernel[1, 0], kernel[1, 2] = -v[1] / 2, v[1] / 2
    return _native(kernel)


def book_edge() -> Any:
    """The chapter's ``[[1, -1]]``: detects vertical edges (1 for white to black)."""
    return _native(np.array([[1.0, -1.0]]))


def _check_size(size: Any) -> None:
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ValueError(f"size must be an int >= 1, got {size!r}")


NAMED = {
    "edge": book_edge,
    "edge-t": lambda: active_adapter().transpose(book_edge()),
    "sobel-x": lambda: sobel(axis=1),
    "sobel-y": lambda: sobel(axis=0),
    "prewitt-x": lambda: prewitt(axis=1),
    "prewitt-y": lambda: prewitt(axis=0),
    "laplacian": laplacian,
    "box": lambda: box(3),
    "gaussian": lambda: gaussian(1.0),
    "dx": lambda: derivative(1, axis=1),
    "dy": lambda: derivative(1, axis=0),
    "dxx": lambda: second_derivative(axis=1),
}
"""Kernels by name, for the command line: ``edge`` is the book's ``[[1, -1]]``, ``edge-t`` its transpose."""


def named(name: str) -> Any:
    """The kernel called ``name`` (see :data:`NAMED`), or a ``ValueError`` listing the names."""
    try:
        return NAMED[name.strip().lower()]()
    except KeyError:
        raise ValueError(f"unknown kernel {name!r}; choose one of {', '.join(NAMED)}") from None
