"""The book's NumPy tab: its ``corr2d`` loop, its ``Conv2D`` layer and its learning loop.

The fast methods live in ``kernels.py`` beside this file; this module reads like the tab.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from d2lconv import methods
from d2lconv._corr import correlate
from d2lconv._inputs import as_tensor, check_matrix, pad_amounts, pair
from d2lconv.backends.numpy.tensors import pad

# The adapter package this tab belongs to: the common API is called with it (``correlate(_this, ...)``).
_this = sys.modules[__package__]


def corr2d_loop(X: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Compute 2D cross-correlation (the book's loop, as in its MXNet tab)."""
    h, w = K.shape
    Y = np.zeros((X.shape[0] - h + 1, X.shape[1] - w + 1), dtype=X.dtype)
    for i in range(Y.shape[0]):
        for j in range(Y.shape[1]):
            Y[i, j] = (X[i:i + h, j:j + w] * K).sum()
    return Y


class Conv2D:
    """The book's ``Conv2D``: ``corr2d(x, weight) + bias``, with a hand-written backward."""

    def __init__(self, kernel_size: tuple[int, int], *, bias: bool = True, seed: int | None = None,
                 padding: Any = 0, stride: Any = 1) -> None:
        rng = np.random.default_rng(seed)
        self.weight = rng.random(kernel_size, dtype=np.float32)  # torch.rand(kernel_size) in the PyTorch tab
        self.bias = np.zeros(1, dtype=np.float32) if bias else None
        self.padding, self.stride = padding, pair(stride, "stride", minimum=1)
        self._input: np.ndarray | None = None  # the padded input of the last forward, for backward

    def __call__(self, x: Any) -> np.ndarray:
        return self.forward(x)

    def forward(self, x: Any) -> np.ndarray:
        x = as_tensor(_this, x, "x")
        rows, cols = pad_amounts(self.padding, check_matrix(x, "x"), self.weight.shape, self.stride)
        self._input = pad(x, rows, cols)
        Y = correlate(_this, self._input, self.weight, stride=self.stride)
        return Y if self.bias is None else Y + self.bias

    def backward(self, grad_output: np.ndarray) -> dict[str, np.ndarray]:
        """Gradients of ``sum(grad_output * forward(x))`` for the last ``x`` passed forward."""
        if self._input is None:
            raise RuntimeError("call the layer on an input before backward()")
        grads = {"weight": methods.kernel_gradient(self._input, grad_output, self.weight.shape, self.stride)}
        if self.bias is not None:
            grads["bias"] = np.asarray([grad_output.sum()], dtype=self.bias.dtype)
        return grads

    def parameters(self) -> dict[str, np.ndarray]:
        return {"weight": self.weight} if self.bias is None else {"weight": self.weight, "bias": self.bias}


class _Trainer:
    """Plain gradient descent on the summed squared error, one ``step()`` per epoch."""

    def __init__(self, X: np.ndarray, Y: np.ndarray, layer: Conv2D, lr: float) -> None:
        self.X, self.Y, self.layer, self.lr = X, Y, layer, lr

    def step(self) -> float:
        Y_hat = self.layer(self.X)
        l = (Y_hat - self.Y) ** 2
        grads = self.layer.backward(2 * (Y_hat - self.Y))
        # Update the kernel
        for name, value in self.layer.parameters().items():
            value -= self.lr * grads[name]
        return float(l.sum())

    def parameters(self) -> tuple[np.ndarray, float | None]:
        bias = None if self.layer.bias is None else float(self.layer.bias[0])
        return self.layer.weight.copy(), bias


def make_trainer(X: np.ndarray, Y: np.ndarray, kernel_size: tuple[int, int], *, layer: str, bias: bool,
                 init: str, seed: int | None, lr: float) -> _Trainer:
    """NumPy has no built-in conv layer: both ``layer="builtin"`` and ``"custom"`` train ``Conv2D``."""
    conv2d = Conv2D(kernel_size, bias=bias, seed=seed)
    conv2d.weight = conv2d.weight.astype(X.dtype)
    if init == "zeros":
        conv2d.weight[...] = 0
    if conv2d.bias is not None:
        conv2d.bias = conv2d.bias.astype(X.dtype)
    return _Trainer(X, Y, conv2d, lr)


def corr2d_vjp(X: np.ndarray, K: np.ndarray, G: np.ndarray, *, method: str, padding: Any,
               stride: tuple[int, int], dilation: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Gradients of ``sum(G * corr2d(X, K))``: NumPy has no autodiff, so they are the analytic adjoints."""
    # the forward pass, as autodiff would run it (and with its errors)
    correlate(_this, X, K, method=method, padding=padding, stride=stride, dilation=dilation)
    (H, W) = X.shape[-2:]
    rows, cols = pad_amounts(padding, (H, W), methods.dilated_shape(K.shape, dilation), stride)
    padded = pad(X, rows, cols)
    dK = methods.kernel_gradient(padded, G, K.shape, stride, dilation)
    dX = methods.input_gradient(G, K, padded.shape, stride, dilation)
    return dX[..., rows[0]:rows[0] + H, cols[0]:cols[0] + W], dK


def layer_vjp(layer: Conv2D, x: np.ndarray, G: np.ndarray) -> dict[str, np.ndarray]:
    """Gradients of ``sum(G * layer(x))`` with respect to the layer's parameters (its own backward)."""
    layer(x)
    return layer.backward(G)


def layer_parameters(layer: Conv2D) -> dict[str, np.ndarray]:
    """The layer's parameters as NumPy arrays, by name."""
    return {name: value.copy() for name, value in layer.parameters().items()}
