"""The book's NumPy tab: its ``corr2d`` loop, its ``Conv2D`` layer and its learning loop.

The fast methods live in ``kernels.py`` beside this file; this module reads like the tab.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from d2lconv import channel_methods, methods
from d2lconv._corr import correlate
from d2lconv._inputs import as_tensor, pad_amounts, pair
from d2lconv._layers import Correlation
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
    """The book's ``Conv2D``: ``corr2d(x, weight) + bias``, with a hand-written backward.

    With ``channels=(in, out, groups)`` the weight is ``(out, in // groups, h, w)``, the bias ``(out,)``, and
    the layer computes ``corr2d_multi_in_out(x, weight, groups=groups) + bias``.
    """

    def __init__(self, kernel_size: tuple[int, int], *, bias: bool = True, seed: int | None = None,
                 padding: Any = 0, stride: Any = 1, dilation: Any = (1, 1), channels: Any = None,
                 data_format: str = "channels_first") -> None:
        self.conv = Correlation(tuple(kernel_size), channels, padding, pair(stride, "stride", minimum=1),
                                tuple(dilation), data_format)
        rng = np.random.default_rng(seed)
        self.weight = rng.random(self.conv.weight_shape, dtype=np.float32)  # torch.rand in the PyTorch tab
        self.bias = np.zeros(self.conv.bias_shape, dtype=np.float32) if bias else None
        self._input: np.ndarray | None = None  # the input of the last forward, for backward

    def __call__(self, x: Any) -> np.ndarray:
        return self.forward(x)

    def forward(self, x: Any) -> np.ndarray:
        x = as_tensor(_this, x, "x")
        Y = self.conv(_this, x, self.weight, self.bias)  # corr2d(x, self.weight) + self.bias
        self._input = x
        return Y

    def backward(self, grad_output: np.ndarray) -> dict[str, np.ndarray]:
        """Gradients of ``sum(grad_output * forward(x))`` for the last ``x`` passed forward."""
        if self._input is None:
            raise RuntimeError("call the layer on an input before backward()")
        conv, x, G = self.conv, self._input, np.asarray(grad_output)
        channel_axis = -1 if conv.data_format == "channels_last" else -3
        if conv.channels is not None and channel_axis == -1:
            x, G = np.moveaxis(x, -1, -3), np.moveaxis(G, -1, -3)
        rows, cols = pad_amounts(conv.padding, x.shape[-2:], methods.dilated_shape(conv.kernel_size, conv.dilation),
                                 conv.stride)
        padded = pad(x, rows, cols).astype(G.dtype, copy=False)
        if conv.channels is None:
            weight = methods.kernel_gradient(padded, G, conv.kernel_size, conv.stride, conv.dilation)
        else:
            weight = channel_methods.kernel_gradient(padded, G, conv.kernel_size, conv.stride, conv.dilation,
                                                     conv.channels[2])
        grads = {"weight": weight.astype(self.weight.dtype, copy=False)}
        if self.bias is not None:
            total = G.sum() if conv.channels is None else G.sum(axis=tuple(i for i in range(G.ndim) if i != G.ndim - 3))
            grads["bias"] = np.asarray(total, dtype=self.bias.dtype).reshape(self.bias.shape)
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

    def parameters(self) -> tuple[np.ndarray, np.ndarray | None]:
        return self.layer.weight.copy(), None if self.layer.bias is None else self.layer.bias.copy()


def make_trainer(X: np.ndarray, Y: np.ndarray, kernel_size: tuple[int, int], *, layer: str, bias: bool,
                 init: str, seed: int | None, lr: float, channels: tuple[int, int] | None = None) -> _Trainer:
    """NumPy has no built-in conv layer: both ``layer="builtin"`` and ``"custom"`` train ``Conv2D``
    (with ``channels=(in, out)``, its multi-channel form)."""
    conv2d = Conv2D(kernel_size, bias=bias, seed=seed, channels=None if channels is None else (*channels, 1))
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
