"""The book's MXNet tab: its ``corr2d`` loop, its ``Conv2D`` layer and its learning loop.

The fast methods live in ``kernels.py`` beside this file; this module reads like the tab.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from functools import partial
from typing import Any

import mxnet as mx
import numpy as onp
from mxnet import autograd, np
from mxnet.gluon import nn

from d2lconv._corr import correlate
from d2lconv._inputs import pair
from d2lconv._layers import Correlation

# The adapter package this tab belongs to: the common API is called with it (``correlate(_this, ...)``).
_this = sys.modules[__package__]


def corr2d_loop(X: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Compute 2D cross-correlation (the book's loop; its in-place writes cannot be recorded by autograd)."""
    h, w = K.shape
    Y = np.zeros((X.shape[0] - h + 1, X.shape[1] - w + 1), dtype=X.dtype)
    for i in range(Y.shape[0]):
        for j in range(Y.shape[1]):
            Y[i, j] = (X[i:i + h, j:j + w] * K).sum()
    return Y


@contextlib.contextmanager
def _seeded(seed: int | None) -> Iterator[None]:
    """Run the block with MXNet's RNG seeded by ``seed``, then reseed it from the user's own stream.

    MXNet cannot save its RNG state, so a seed drawn from that stream beforehand keeps the user's later
    draws a function of the user's own seeding rather than of ours.
    """
    if seed is None:
        yield
        return
    resume = int(np.random.randint(0, 2 ** 31 - 1, size=()))
    mx.random.seed(seed)
    try:
        yield
    finally:
        mx.random.seed(resume)


class Conv2D(nn.Block):
    """The book's ``Conv2D`` as a Gluon ``Block``: ``corr2d(x, weight) + bias``, initialised on creation.

    With ``channels=(in, out, groups)`` the weight is ``(out, in // groups, h, w)``, the bias ``(out,)``, and
    the layer computes ``corr2d_multi_in_out(x, weight, groups=groups) + bias``.
    """

    def __init__(self, kernel_size: tuple[int, int], *, bias: bool = True, seed: int | None = None,
                 padding: Any = 0, stride: Any = 1, dilation: Any = (1, 1), channels: Any = None,
                 data_format: str = "channels_first", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.conv = Correlation(tuple(kernel_size), channels, padding, pair(stride, "stride", minimum=1),
                                tuple(dilation), data_format)
        self.weight = self.params.get('weight', shape=self.conv.weight_shape)
        # The tab's params.get('bias') would take the default Uniform initialiser; Gluon's own Conv2D and
        # the other tabs start the bias at zero.
        self.bias = self.params.get('bias', shape=self.conv.bias_shape, init=mx.init.Zero()) if bias else None
        with _seeded(seed):
            self.initialize()  # the default initialiser (Uniform(-0.07, 0.07)), so that layer(x) works at once

    def forward(self, x: Any) -> np.ndarray:
        bias = None if self.bias is None else self.bias.data()
        return self.conv(_this, x, self.weight.data(), bias)  # corr2d(x, self.weight) + self.bias


def _parameters(layer: Conv2D) -> dict[str, Any]:
    """The layer's Gluon parameters by the book's names."""
    return {"weight": layer.weight} if layer.bias is None else {"weight": layer.weight, "bias": layer.bias}


class _Trainer:
    """The tab's loop: record the forward pass, ``l.backward()``, update the parameters in place."""

    def __init__(self, X: np.ndarray, Y: np.ndarray, conv2d: nn.Block, lr: float) -> None:
        self.X, self.Y, self.conv2d, self.lr = X, Y, conv2d, lr
        self.params = [conv2d.weight] if conv2d.bias is None else [conv2d.weight, conv2d.bias]

    def step(self) -> float:
        with autograd.record():
            Y_hat = self.conv2d(self.X)
            l = (Y_hat - self.Y) ** 2
        l.backward()
        # Update the kernel
        for param in self.params:
            param.data()[:] -= self.lr * param.grad()
        return float(l.sum())

    def parameters(self) -> tuple[onp.ndarray, onp.ndarray | None]:
        bias = None if self.conv2d.bias is None else self.conv2d.bias.data().asnumpy()
        return self.conv2d.weight.data().asnumpy(), bias


def make_trainer(X: np.ndarray, Y: np.ndarray, kernel_size: tuple[int, int], *, layer: str, bias: bool,
                 init: str, seed: int | None, lr: float, channels: tuple[int, int] | None = None) -> _Trainer:
    """``layer="builtin"`` trains Gluon's ``nn.Conv2D`` on NCHW data as the tab does; ``"custom"`` trains ``Conv2D``;
    ``channels=(in, out)`` learns an ``(out, in, h, w)`` kernel."""
    in_channels, out_channels = channels or (1, 1)
    if layer == "builtin":
        # in_channels (the tab lets Gluon infer it on the first call) creates the weight now, under the seed
        conv2d = nn.Conv2D(out_channels, kernel_size=kernel_size, use_bias=bias, in_channels=in_channels)
        with _seeded(seed):
            conv2d.initialize(mx.init.Zero() if init == "zeros" else mx.init.Uniform())  # Uniform: the default
        # The tab's X.reshape(1, 1, 6, 8): a batch of images is the example axis, a single image one example
        X = X.reshape(-1, in_channels, *X.shape[-2:])
        Y = Y.reshape(X.shape[0], out_channels, *Y.shape[-2:])
    else:
        conv2d = Conv2D(kernel_size, bias=bias, seed=seed, channels=None if channels is None else (*channels, 1))
        if init == "zeros":
            conv2d.weight.data()[:] = 0
    conv2d.cast(X.dtype)
    return _Trainer(X, Y, conv2d, lr)


def vjp(function: Any, X: np.ndarray, K: np.ndarray, G: np.ndarray,
        options: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Gradients of ``sum(G * function(X, K, **options))`` in ``X`` and ``K``, by ``autograd``; the book's loop
    cannot be recorded."""
    X, K = X.copy(), K.copy()  # attach_grad on copies, so the caller's arrays stay constant
    X.attach_grad()
    K.attach_grad()
    try:
        with autograd.record():
            Y = function(X, K, **options)
    except mx.MXNetError as error:
        if options.get("method") != "loop":
            raise
        raise ValueError(
            "method='loop' is not differentiable on MXNet: the book's corr2d writes its output in place "
            "(Y[i, j] = ...), which autograd cannot record; use method='direct' or 'auto'"
        ) from error
    Y.backward(G.astype(Y.dtype, copy=False))
    return X.grad, K.grad


def corr2d_vjp(X: np.ndarray, K: np.ndarray, G: np.ndarray, *, method: str, padding: Any,
               stride: tuple[int, int], dilation: tuple[int, int] = (1, 1)) -> tuple[np.ndarray, np.ndarray]:
    """Gradients of ``sum(G * corr2d(X, K))`` by ``autograd``; the book's loop cannot be recorded."""
    options = {"method": method, "padding": padding, "stride": stride, "dilation": dilation}
    return vjp(partial(correlate, _this), X, K, G, options)


def layer_vjp(layer: Conv2D, x: np.ndarray, G: np.ndarray) -> dict[str, np.ndarray]:
    """Gradients of ``sum(G * layer(x))`` with respect to the layer's parameters, by ``autograd``."""
    with autograd.record():
        y = layer(x)
    y.backward(G.astype(y.dtype, copy=False))
    return {name: param.grad().copy() for name, param in _parameters(layer).items()}


def layer_parameters(layer: Conv2D) -> dict[str, onp.ndarray]:
    """The layer's parameters as NumPy arrays, by name."""
    return {name: param.data().asnumpy() for name, param in _parameters(layer).items()}
