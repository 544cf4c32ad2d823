"""The chapter's data, so that demos and tests say ``book.edge_image()`` instead of repeating literals.

Every function returns a native tensor of the active backend.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from d2lconv._backend import active_adapter


def _native(array: np.ndarray) -> Any:
    return active_adapter().from_numpy(np.asarray(array, dtype=np.float32))


def figure_input() -> Any:
    """The 3x3 input ``X`` of the chapter's figure: ``[[0, 1, 2], [3, 4, 5], [6, 7, 8]]``."""
    return _native(np.arange(9.0).reshape(3, 3))


def figure_kernel() -> Any:
    """The figure's 2x2 kernel ``K``: ``[[0, 1], [2, 3]]``."""
    return _native([[0.0, 1.0], [2.0, 3.0]])


FIGURE_OUTPUT = ((19.0, 25.0), (37.0, 43.0))
"""``corr2d(figure_input(), figure_kernel())``, as the book prints it."""


def edge_image() -> Any:
    """The 6x8 "image": ones, with the middle four columns black (0)."""
    X = np.ones((6, 8))
    X[:, 2:6] = 0
    return _native(X)


def edge_kernel() -> Any:
    """``[[1, -1]]``: ``x[i, j] - x[i, j + 1]``, a horizontal difference that detects vertical edges.

    (The chapter's text writes ``x[i, j] - x[i + 1, j]``; the kernel computes the horizontal one.)
    """
    return _native([[1.0, -1.0]])


EDGE_ROW = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0, 0.0)
"""Every row of ``corr2d(edge_image(), edge_kernel())`` (6x7), as the book prints it."""


def diagonal_image(n: int = 8) -> Any:
    """An ``n x n`` image with a diagonal edge: ones on and below the main diagonal, zeros above."""
    return _native(np.tril(np.ones((n, n))))


LEARNING_RATE = 3e-2
EPOCHS = 10
KERNEL_SIZE = (1, 2)
