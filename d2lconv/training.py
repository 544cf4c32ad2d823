"""The chapter's "Learning a Kernel" loop on any backend, with a guard against divergence.

The loss ``sum((corr2d(X, K) + b - Y) ** 2)`` is quadratic in the kernel (and bias), so plain gradient
descent is stable exactly when ``lr < 2 / L``, with ``L`` the largest eigenvalue of the loss's Hessian
``2 A^T A`` (``A`` maps the parameters to the prediction). :func:`largest_curvature` estimates ``L`` from
the data by power iteration; it tells a user which ``lr`` would be stable, and ``lr="auto"`` uses
``1 / L`` (the step that damps the stiffest direction fastest without overshoot).

Because the loss is quadratic, its minimum can also be solved for directly: :func:`least_squares_kernel`
solves the normal equations ``A^T A k = A^T y`` in float64, one pass over the data instead of the
hundreds or thousands of gradient steps a real photograph needs (``d2lconv learn`` uses it by default).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from numbers import Integral, Real
from types import SimpleNamespace
from typing import Any

import numpy as np

from d2lconv import channel_methods, methods
from d2lconv._backend import active_adapter, load_adapter
from d2lconv._inputs import as_tensor, check_matrix, framework_of, kernel_size_pair, to_numpy

LAYERS = ("builtin", "custom")
# The operations channel_methods needs, in NumPy (without loading the numpy adapter package).
_NUMPY = SimpleNamespace(reshape=np.reshape, einsum=partial(np.einsum, optimize=True))
INITS = ("random", "zeros")


class TrainingDivergedError(FloatingPointError):
    """Gradient descent blew up: the learning rate is too large for this data."""


@dataclass(frozen=True)
class TrainResult:
    """What ``train_kernel`` learned and how the loss went (one loss per epoch, before its update).

    ``kernel`` has shape ``kernel_size`` (``(out_channels, in_channels, h, w)`` when trained with channels);
    ``bias`` is a float (an array of ``out_channels`` values with channels), or None without a bias.
    """

    kernel: np.ndarray
    bias: float | np.ndarray | None
    losses: list[float] = field(repr=False)
    backend: str
    layer: str
    lr: float


def train_kernel(
    X: Any,
    Y: Any,
    kernel_size: Any = (1, 2),
    *,
    lr: float | str = 3e-2,
    epochs: int = 10,
    layer: str = "builtin",
    bias: bool = False,
    init: str = "random",
    seed: int | None = None,
    in_channels: int | None = None,
    out_channels: int | None = None,
    callback: Callable[[int, float], None] | None = None,
    verbose: bool = False,
) -> TrainResult:
    """Learn the kernel that maps ``X`` to ``Y`` by gradient descent on the summed squared error.

    ``X`` is one image ``(H, W)`` or a batch ``(N, H, W)``, with ``Y`` of shape ``(H', W')`` or
    ``(N, H', W')``: the loss sums over the batch. With ``in_channels`` and ``out_channels`` (either given
    makes the other default to 1) it learns an ``(out_channels, in_channels, h, w)`` kernel from ``X`` of
    shape ``(N, C, H, W)`` (or ``(C, H, W)``) and ``Y`` of shape ``(N, O, H', W')``.
    ``layer="builtin"`` trains the framework's own conv layer as the book's tab does (with channels, its
    multi-channel layer); ``"custom"`` trains :class:`d2lconv.Conv2D`. ``init="zeros"`` starts from a zero
    kernel, which makes the run the same on every backend; ``seed`` makes a random start repeatable.
    ``lr="auto"`` picks ``1 / L`` from the data. ``verbose`` prints the book's ``epoch 2, loss 4.915`` lines;
    ``callback(epoch, loss)`` is called after every epoch. Raises :class:`TrainingDivergedError` if the
    loss becomes non-finite or keeps growing, with the learning rate that would be stable.
    """
    adapter = active_adapter()
    size = kernel_size_pair(kernel_size)
    _check_options(lr, epochs, layer, init)
    X = as_tensor(adapter, X, "X")
    Y = as_tensor(adapter, Y, "Y")
    channels = _channels(X, Y, size, in_channels, out_channels)
    for name, data in (("X", X), ("Y", Y)):
        _check_finite(data, name)
    kernel_shape = size if channels is None else (channels[1], channels[0], *size)
    if adapter.dtype_of(Y) != adapter.dtype_of(X):
        Y = adapter.cast(Y, adapter.dtype_of(X))
    if lr == "auto":
        lr = 1.0 / largest_curvature(X, kernel_shape, bias=bias)
    trainer = adapter.make_trainer(X, Y, size, layer=layer, bias=bias, init=init, seed=seed, lr=lr, channels=channels)
    losses: list[float] = []
    for epoch in range(1, epochs + 1):
        loss = trainer.step()
        losses.append(loss)
        _check_progress(losses, lambda: largest_curvature(X, kernel_shape, bias=bias), lr)
        if verbose and epoch % 2 == 0:
            print(f"epoch {epoch}, loss {loss:.3f}")
        if callback is not None:
            callback(epoch, loss)
    kernel, learned_bias = trainer.parameters()
    if learned_bias is not None:  # one number for the book's layer, one per output channel with channels
        learned_bias = np.asarray(learned_bias).reshape(-1)
        learned_bias = float(learned_bias[0]) if channels is None else learned_bias.copy()
    return TrainResult(np.asarray(kernel).reshape(kernel_shape), learned_bias, losses, adapter.NAME, layer, lr)


def _channels(X: Any, Y: Any, size: tuple[int, int], in_channels: Any, out_channels: Any) -> tuple[int, int] | None:
    """Check the data's shapes; ``(C, O)`` when training with channels, else None. One-line errors."""
    x_shape, y_shape = tuple(X.shape), tuple(Y.shape)
    if in_channels is None and out_channels is None:
        if len(x_shape) not in (2, 3):
            raise ValueError(f"X must be (height, width) or a batch (N, height, width), got shape {x_shape} "
                             "(for channels, give in_channels and out_channels)")
        channels, lead = None, x_shape[:-2]
    else:
        counts = []
        for value, name in ((in_channels, "in_channels"), (out_channels, "out_channels")):
            if value is not None and (not isinstance(value, Integral) or isinstance(value, bool) or value < 1):
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
            counts.append(1 if value is None else int(value))
        if len(x_shape) not in (3, 4):
            raise ValueError(f"X must be (channels, height, width) or a batch (N, channels, height, width) with "
                             f"in_channels, got shape {x_shape}")
        if x_shape[-3] != counts[0]:
            raise ValueError(f"X has {x_shape[-3]} channels but in_channels={counts[0]}")
        channels, lead = (counts[0], counts[1]), (*x_shape[:-3], counts[1])
    (H, W), (h, w) = x_shape[-2:], size
    if h > H or w > W:
        raise ValueError(f"kernel_size {size} is larger than X of shape {x_shape[-2:]}")
    expected = (*lead, H - h + 1, W - w + 1)
    if y_shape != expected:
        kernel = f"a {size} kernel" + ("" if channels is None else f" with out_channels={channels[1]}")
        raise ValueError(f"Y has shape {y_shape} but {kernel} on X of shape {x_shape} gives {expected}")
    return channels


def least_squares_kernel(X: Any, Y: Any, kernel_size: Any) -> np.ndarray:
    """The kernel ``K`` that minimises ``sum((corr2d(X, K) - Y) ** 2)``, solved for, as a float64 array.

    The same loss :func:`train_kernel` descends (without a bias), minimised exactly: the loss is
    quadratic in ``K``, so its minimum solves the normal equations ``G k = A^T y``, where row ``i`` of
    ``A`` is the window of ``X`` under output ``i`` and ``G = A^T A`` is the loss's Hessian over 2.
    ``X`` and ``Y`` may be tensors of the active backend, NumPy arrays or nested lists; the work is done
    in float64 NumPy on their values (``A`` is built a block of rows at a time, never whole), costing one
    pass of ``h*w``-by-``h*w`` products over the outputs. Where the data do not pin the kernel down (fewer
    independent windows than kernel entries, e.g. a constant image), it returns the smallest-norm kernel
    of those that fit best.
    """
    adapter = active_adapter()
    kernel_shape = kernel_size_pair(kernel_size)
    X, Y = _training_data(adapter, X, Y, kernel_shape)
    if framework_of(X) == "dask":  # never loaded whole: the normal equations are summed block by block
        return load_adapter("dask").least_squares_kernel(X, Y, kernel_shape)
    X = np.asarray(to_numpy(X), dtype=np.float64)
    Y = np.asarray(to_numpy(Y), dtype=np.float64)
    windows = np.lib.stride_tricks.sliding_window_view(X, kernel_shape)  # (rows, cols, h, w), a view
    size = kernel_shape[0] * kernel_shape[1]
    gram = np.zeros((size, size))
    moment = np.zeros(size)
    rows_per_block = max(1, _BLOCK_ELEMENTS // (windows.shape[1] * size))
    for start in range(0, windows.shape[0], rows_per_block):
        block = windows[start:start + rows_per_block].reshape(-1, size)  # copies this block's windows only
        gram += block.T @ block
        moment += block.T @ Y[start:start + rows_per_block].ravel()
    # lstsq (an SVD of the small Gram matrix) rather than solve: a singular G gets the minimum-norm answer.
    kernel = np.linalg.lstsq(gram, moment, rcond=None)[0]
    return kernel.reshape(kernel_shape)


_BLOCK_ELEMENTS = 1 << 21  # float64 window values per block of A in least_squares_kernel (16 MiB)


def _training_data(adapter: Any, X: Any, Y: Any, kernel_shape: tuple[int, int]) -> tuple[Any, Any]:
    """``X`` and ``Y`` as tensors of the backend, checked to be 2-D and to fit a ``kernel_shape`` kernel."""
    X = as_tensor(adapter, X, "X")
    Y = as_tensor(adapter, Y, "Y")
    (H, W), y_shape = check_matrix(X, "X"), check_matrix(Y, "Y")
    expected = (H - kernel_shape[0] + 1, W - kernel_shape[1] + 1)
    if min(expected) < 1:
        raise ValueError(f"kernel_size {kernel_shape} is larger than X of shape {(H, W)}")
    if y_shape != expected:
        raise ValueError(
            f"Y has shape {y_shape} but a {kernel_shape} kernel on X of shape {(H, W)} gives {expected}"
        )
    for name, data in (("X", X), ("Y", Y)):
        _check_finite(data, name)
    return X, Y


def _check_options(lr: Any, epochs: Any, layer: Any, init: Any) -> None:
    if not (lr == "auto" or (isinstance(lr, Real) and not isinstance(lr, bool) and math.isfinite(lr) and lr > 0)):
        raise ValueError(f"lr must be a positive number or 'auto', got {lr!r}")
    if not isinstance(epochs, Integral) or isinstance(epochs, bool) or epochs < 1:
        raise ValueError(f"epochs must be an int >= 1, got {epochs!r}")
    if layer not in LAYERS:
        raise ValueError(f"unknown layer {layer!r}; choose one of {', '.join(map(repr, LAYERS))}")
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; choose one of {', '.join(map(repr, INITS))}")


def _check_finite(data: Any, name: str) -> None:
    """Training data with NaN or inf would only make the loss non-finite: say so before training.

    A Dask array is counted chunk by chunk (one pass), never loaded whole.
    """
    if framework_of(data) == "dask":
        size, (bad, nan) = data.size, load_adapter("dask").count_nonfinite(data)
    else:
        values = to_numpy(data)
        size, bad = values.size, int(values.size - np.count_nonzero(np.isfinite(values)))
        nan = int(np.count_nonzero(np.isnan(values))) if bad else 0
    if bad:
        kinds = ", ".join(f"{count} {kind}" for count, kind in ((nan, "NaN"), (bad - nan, "inf")) if count)
        raise ValueError(f"{name} holds {bad} non-finite value{'s' if bad > 1 else ''} ({kinds}) among its "
                         f"{size}; learning a kernel needs finite data")


def _check_progress(losses: list[float], curvature: Callable[[], float], lr: float) -> None:
    """Stop on a non-finite loss, or on a loss that grew three epochs running past its start."""
    loss = losses[-1]
    growing = len(losses) >= 4 and losses[-4] < losses[-3] < losses[-2] < loss and loss > losses[0]
    if math.isfinite(loss) and not growing:
        return
    L = curvature()
    raise TrainingDivergedError(
        f"training diverged at epoch {len(losses)} (loss {losses[0]:.4g} -> {loss:.4g}): lr={lr:g} is too "
        f"large for this data. Gradient descent on this loss is stable only for lr < {2 / L:.3g} (its "
        f"curvature reaches {L:.4g}); try lr={1 / L:.3g} or lr='auto'"
    )


def largest_curvature(X: Any, kernel_shape: tuple[int, ...], *, bias: bool = False,
                      iterations: int = 200, tolerance: float = 1e-6) -> float:
    """The largest eigenvalue of the Hessian of ``sum((corr2d(X, K) + b - Y) ** 2)``.

    ``X`` is an image ``(H, W)`` or a batch ``(N, H, W)`` with a 2-D ``kernel_shape``; with a 4-D
    ``kernel_shape`` ``(O, C, h, w)`` it is ``(C, H, W)`` or ``(N, C, H, W)`` and the loss is that of
    ``corr2d_multi_in_out``. Every output channel has its own kernel (and bias) and sees the same input, so the
    Hessian is ``O`` copies of one block: the curvature is that of one output channel.
    Power iteration on ``2 A^T A`` in float64, where ``A`` applies the kernel (and bias) to ``X`` and
    ``A^T`` is its adjoint (:func:`d2lconv.methods.kernel_gradient`). Costs two cross-correlations per iteration.
    ``X`` is a NumPy array or a tensor of any backend; a Dask array is never loaded whole: its blocks are summed
    in a few passes (see ``d2lconv.backends.dask.curvature``).
    """
    if framework_of(X) == "dask":
        return load_adapter("dask").largest_curvature(X, tuple(kernel_shape), bias=bias, iterations=iterations,
                                                      tolerance=tolerance)
    X = np.asarray(to_numpy(X), dtype=np.float64)
    channels = len(kernel_shape) == 4
    if channels:
        kernel_shape = (1, *kernel_shape[1:])

        def forward(K: np.ndarray) -> np.ndarray:
            return channel_methods.direct(_NUMPY, X, K)

        def adjoint(G: np.ndarray) -> np.ndarray:
            return channel_methods.kernel_gradient(X, G, kernel_shape[2:])
    else:
        def forward(K: np.ndarray) -> np.ndarray:
            return methods.corr2d_direct(X, K)

        def adjoint(G: np.ndarray) -> np.ndarray:
            return methods.kernel_gradient(X, G, kernel_shape)

    rng = np.random.default_rng(0)
    kernel = rng.random(kernel_shape) + 0.5
    offset = 1.0 if bias else 0.0
    estimate = 0.0
    for _ in range(iterations):
        norm = math.sqrt(float((kernel ** 2).sum()) + offset ** 2)
        kernel, offset = kernel / norm, offset / norm
        prediction = forward(kernel) + offset
        kernel = 2 * adjoint(prediction)
        offset = 2 * float(prediction.sum()) if bias else 0.0
        previous, estimate = estimate, math.sqrt(float((kernel ** 2).sum()) + offset ** 2)
        if abs(estimate - previous) <= tolerance * estimate:
            break
    return estimate
