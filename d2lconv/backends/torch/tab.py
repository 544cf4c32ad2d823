"""The book's PyTorch tab: its ``corr2d`` loop, its ``Conv2D`` layer and its learning loop.

The fast methods live in ``kernels.py`` beside this file; this module reads like the tab.
"""

from __future__ import annotations

import sys
from functools import partial
from typing import Any

import numpy as np
import torch
from torch import nn

from d2lconv._corr import correlate
from d2lconv._inputs import pair
from d2lconv._layers import Correlation
from d2lconv.backends.torch.tensors import to_numpy

# The adapter package this tab belongs to: the common API is called with it (``correlate(_this, ...)``).
_this = sys.modules[__package__]


def corr2d_loop(X: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Compute 2D cross-correlation (the book's loop, as in its PyTorch tab)."""
    h, w = K.shape
    # The tab's torch.zeros((...)) is always float32; keep the input's dtype and device instead.
    Y = torch.zeros((X.shape[0] - h + 1, X.shape[1] - w + 1), dtype=X.dtype, device=X.device)
    for i in range(Y.shape[0]):
        for j in range(Y.shape[1]):
            Y[i, j] = (X[i:i + h, j:j + w] * K).sum()
    return Y


class Conv2D(nn.Module):
    """The book's ``Conv2D``: ``corr2d(x, self.weight) + self.bias`` with ``weight`` from ``torch.rand``.

    With ``channels=(in, out, groups)`` the weight is ``(out, in // groups, h, w)``, the bias ``(out,)``, and
    the layer computes ``corr2d_multi_in_out(x, self.weight, groups=groups) + self.bias``.
    """

    def __init__(self, kernel_size: tuple[int, int], *, bias: bool = True, seed: int | None = None,
                 padding: Any = 0, stride: Any = 1, dilation: Any = (1, 1), channels: Any = None,
                 data_format: str = "channels_first") -> None:
        super().__init__()
        self.conv = Correlation(tuple(kernel_size), channels, padding, pair(stride, "stride", minimum=1),
                                tuple(dilation), data_format)
        generator = None if seed is None else torch.Generator().manual_seed(seed)
        self.weight = nn.Parameter(torch.rand(self.conv.weight_shape, generator=generator))
        if bias:
            self.bias = nn.Parameter(torch.zeros(self.conv.bias_shape))
        else:
            self.register_parameter("bias", None)

    def extra_repr(self) -> str:
        return f"{self.conv.describe()}, bias={self.bias is not None}"

    def forward(self, x: Any) -> torch.Tensor:
        return self.conv(_this, x, self.weight, self.bias)  # corr2d(x, self.weight) + self.bias


class _Trainer:
    """The tab's learning loop, one ``step()`` per epoch, on either layer."""

    def __init__(self, X: torch.Tensor, Y: torch.Tensor, conv2d: nn.Module, kernel_size: tuple[int, int],
                 lr: float) -> None:
        self.X, self.Y, self.conv2d, self.kernel_size, self.lr = X, Y, conv2d, kernel_size, lr

    def step(self) -> float:
        conv2d, lr = self.conv2d, self.lr
        Y_hat = conv2d(self.X)
        l = (Y_hat - self.Y) ** 2
        conv2d.zero_grad()
        loss = l.sum()
        loss.backward()
        # Update the kernel
        conv2d.weight.data[:] -= lr * conv2d.weight.grad
        if conv2d.bias is not None:  # the tab has no bias; with one it takes the same step
            conv2d.bias.data[:] -= lr * conv2d.bias.grad
        return loss.item()

    def parameters(self) -> tuple[np.ndarray, np.ndarray | None]:
        kernel = to_numpy(self.conv2d.weight).copy()
        return kernel, None if self.conv2d.bias is None else to_numpy(self.conv2d.bias).copy()


def make_trainer(X: torch.Tensor, Y: torch.Tensor, kernel_size: tuple[int, int], *, layer: str, bias: bool,
                 init: str, seed: int | None, lr: float, channels: tuple[int, int] | None = None) -> _Trainer:
    """``nn.LazyConv2d`` on (example, channel, height, width) tensors as the tab trains it, or this module's
    ``Conv2D``; ``channels=(in, out)`` learns an ``(out, in, h, w)`` kernel."""
    if layer == "builtin":
        # The tab's layer makes float32 weights; dtype=X.dtype lets a float64 X train too.
        conv2d = nn.LazyConv2d(1 if channels is None else channels[1], kernel_size=kernel_size, bias=bias,
                               dtype=X.dtype)
        # The tab's X.reshape((1, 1, 6, 8)): a batch of images is the example axis, a single image one example
        shape = (-1, 1, *X.shape[-2:]) if channels is None else (-1, *X.shape[-3:])
        X = X.reshape(shape)
        Y = Y.reshape((X.shape[0], -1, *Y.shape[-2:]))
        with torch.random.fork_rng(devices=[], enabled=seed is not None), torch.no_grad():
            if seed is not None:
                torch.manual_seed(seed)  # only inside the fork: the user's global RNG is left as it was
            conv2d(X)  # a lazy layer makes (and initialises) its weights on its first call
    else:
        conv2d = Conv2D(kernel_size, bias=bias, seed=seed,
                        channels=None if channels is None else (*channels, 1)).to(X.dtype)
    if init == "zeros":
        with torch.no_grad():
            for param in conv2d.parameters():
                param.zero_()
    return _Trainer(X, Y, conv2d, kernel_size, lr)


def vjp(function: Any, X: torch.Tensor, K: torch.Tensor, G: torch.Tensor,
        options: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients of ``sum(G * function(X, K, **options))`` in ``X`` and ``K``, by autograd."""
    X = X.detach().requires_grad_()
    K = K.detach().requires_grad_()
    Y = function(X, K, **options)
    dX, dK = torch.autograd.grad(Y, (X, K), G.to(Y.dtype))
    return dX, dK


def corr2d_vjp(X: torch.Tensor, K: torch.Tensor, G: torch.Tensor, *, method: str, padding: Any,
               stride: tuple[int, int], dilation: tuple[int, int] = (1, 1)) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients of ``sum(G * corr2d(X, K))`` by autograd, through the common ``correlate``."""
    options = {"method": method, "padding": padding, "stride": stride, "dilation": dilation}
    return vjp(partial(correlate, _this), X, K, G, options)


def layer_vjp(layer: Conv2D, x: torch.Tensor, G: torch.Tensor) -> dict[str, torch.Tensor]:
    """Gradients of ``sum(G * layer(x))`` for each named parameter, leaving their ``.grad`` untouched."""
    params = dict(layer.named_parameters())
    Y = layer(x)
    grads = torch.autograd.grad(Y, tuple(params.values()), G.to(Y.dtype))
    return dict(zip(params, grads))


def layer_parameters(layer: Conv2D) -> dict[str, np.ndarray]:
    """The layer's parameters as NumPy arrays (copies), by name."""
    return {name: to_numpy(param).copy() for name, param in layer.named_parameters()}
