"""The chapter's exercise 3, answered in code: is the book's loop differentiable, and is d2lconv's Conv2D?

The book's ``corr2d`` writes its output element by element. PyTorch and JAX differentiate that; MXNet
refuses in-place writes while recording, and TensorFlow's ``Variable.assign`` silently cuts the gradient.
d2lconv's ``Conv2D`` uses the vectorised, differentiable methods, so it trains on every backend.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from d2lconv import book
from d2lconv._backend import get_backend
from d2lconv._corr import corr2d
from d2lconv._gradients import corr2d_gradients, layer_gradients
from d2lconv._inputs import to_numpy
from d2lconv._tensors import Conv2D

# Backends without autodiff: their gradients are hand-written adjoints, whatever method computed the output.
NO_AUTODIFF = {
    "numpy": "NumPy has no autodiff: the loop has no gradient (d2lconv's layer has a hand-written one)",
    "dask": "Dask has no autodiff: the loop has no gradient (d2lconv's layer has a hand-written one, summed over "
            "chunks)",
}


@dataclass(frozen=True)
class GradientReport:
    """What the active backend's autodiff makes of the book's loop and of d2lconv's layer."""

    backend: str
    loop_differentiable: bool
    loop_message: str  # the framework's complaint, or what the gradient was
    layer_differentiable: bool


def check_gradients() -> GradientReport:
    """Differentiate the book's loop and d2lconv's ``Conv2D`` on the figure's data, and compare."""
    X, K = book.figure_input(), book.figure_kernel()
    G = np.ones((2, 2), dtype=np.float32)
    expected_dK = to_numpy(corr2d(X, G, method="direct"))  # d sum(corr2d(X, K)) / dK
    if get_backend() in NO_AUTODIFF:
        loop_ok, message = False, NO_AUTODIFF[get_backend()]
    else:
        try:
            _, dK = corr2d_gradients(X, K, G, method="loop")
            loop_ok = bool(np.allclose(dK, expected_dK))
            message = f"gradient {dK.tolist()}"
        except ValueError as error:
            loop_ok, message = False, str(error)
    grads = layer_gradients(Conv2D((2, 2), seed=0), X, G)
    layer_ok = bool(np.allclose(grads["weight"], expected_dK) and np.allclose(grads["bias"], [4.0]))
    return GradientReport(get_backend(), loop_ok, message, layer_ok)
