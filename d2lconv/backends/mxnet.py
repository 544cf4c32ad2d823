"""The MXNet backend: ``mxnet.numpy`` arrays, Gluon blocks and ``autograd.record()``, as in the book's MXNet tab.

MXNet 1.9.1 is its last release and needs numpy<1.24. Its ``corr2d`` tab writes the output in place,
which autograd refuses to record, so only the vectorised methods are differentiable here.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import Any

import mxnet as mx
import numpy as onp
from mxnet import autograd, np, npx
from mxnet.gluon import nn

from d2lconv import methods
from d2lconv._corr import correlate
from d2lconv._inputs import pair

npx.set_np()  # the tab's first cell: Gluon works on mxnet.numpy arrays only after this

NAME = "mxnet"
NATIVE_TYPE = "mxnet.numpy.ndarray (legacy NDArrays convert with x.as_np_ndarray())"
NO_FFT = "MXNet has no FFT on the CPU (its contrib.fft operators run on GPUs only)"
FFT_PASSES = None
# npx.convolution has a fast path for kernels up to 3x3 (2.4-3x faster than the compiled direct sum at
# 64..4096 pixels) and is 4-5x slower than it from 7x7 up (benchmarks/RESULTS.md).
NATIVE_TAPS = 9
NATIVE_BELOW = 1 << 12  # npx.convolution is one call (88 us on the book's input, direct 169 us) but slow at scale
_this = sys.modules[__name__]


def is_native(x: Any) -> bool:
    return isinstance(x, np.ndarray)


def from_numpy(array: onp.ndarray) -> np.ndarray:
    return np.array(array, dtype=array.dtype)  # without dtype, mxnet.numpy makes float64 input float32


def to_numpy(x: np.ndarray) -> onp.ndarray:
    return x.asnumpy()


def dtype_of(x: np.ndarray) -> onp.dtype:
    return onp.dtype(x.dtype)


def cast(x: np.ndarray, dtype: onp.dtype) -> np.ndarray:
    return x.astype(dtype)


def is_constant(x: np.ndarray) -> bool:
    """No gradient can reach ``x`` when it has no gradient buffer and nothing is being recorded.

    MXNet does not expose whether an array was computed from one with a gradient buffer, so while
    ``autograd.record()`` is on every kernel counts as variable.
    """
    return x.grad is None and not autograd.is_recording()


def transpose(x: np.ndarray) -> np.ndarray:
    return x.T


def flip(x: np.ndarray) -> np.ndarray:
    return np.flip(x, axis=(0, 1))


def pad(x: np.ndarray, rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
    return np.pad(x, (rows, cols))


def corr2d_loop(X: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Compute 2D cross-correlation (the book's loop; its in-place writes cannot be recorded by autograd)."""
    h, w = K.shape
    Y = np.zeros((X.shape[0] - h + 1, X.shape[1] - w + 1), dtype=X.dtype)
    for i in range(Y.shape[0]):
        for j in range(Y.shape[1]):
            Y[i, j] = (X[i:i + h, j:j + w] * K).sum()
    return Y


class _Shaped:
    """A symbol with the static shape that the shared methods read (MXNet symbols have no ``.shape``)."""

    def __init__(self, name: str, shape: tuple[int, ...]) -> None:
        self.symbol, self.shape = mx.sym.var(name).as_np_ndarray(), shape

    def __getitem__(self, key: Any) -> Any:
        return self.symbol[key]


def _compile(graph: Any) -> Callable[..., np.ndarray]:
    """A ``CachedOp`` of ``graph`` (what ``hybridize()`` builds, without a Block's per-call overhead).

    It is differentiable under ``autograd.record()`` and takes its inputs by name.
    """
    op = mx.nd.CachedOp(graph, flags=[("static_alloc", True), ("static_shape", True)])
    order = graph.list_inputs()
    return lambda **inputs: op(*(inputs[name] for name in order))


# One graph per shape and stride, as jax.jit retraces per shape; eager MXNet spends ~0.1 ms on every slice.
@lru_cache(maxsize=32)
def _direct(x_shape: tuple[int, int], k_shape: tuple[int, int], stride: tuple[int, int]) -> Callable:
    return _compile(methods.corr2d_direct(_Shaped("X", x_shape), _Shaped("K", k_shape), stride))


@lru_cache(maxsize=32)
def _separable(x_shape: tuple[int, int], h: int, w: int, stride: tuple[int, int]) -> Callable:
    return _compile(methods.corr2d_separable(_Shaped("X", x_shape), _Shaped("column", (h,)),
                                             _Shaped("row", (w,)), stride))


@lru_cache(maxsize=32)
def _native(x_shape: tuple[int, int], k_shape: tuple[int, int], stride: tuple[int, int]) -> Callable:
    X, K = (mx.sym.var(name).as_np_ndarray() for name in ("X", "K"))
    Y = mx.sym.npx.convolution(X.reshape(1, 1, *x_shape), K.reshape(1, 1, *k_shape), no_bias=True, num_filter=1,
                               kernel=k_shape, stride=stride)
    return _compile(Y.reshape(methods.valid_shape(x_shape, k_shape, stride)))


def corr2d_direct(X: np.ndarray, K: np.ndarray, stride: tuple[int, int] = (1, 1)) -> np.ndarray:
    """``methods.corr2d_direct``, compiled once per shape and stride."""
    return _direct(X.shape, K.shape, stride)(X=X, K=K)


def corr2d_separable(X: np.ndarray, column: np.ndarray, row: np.ndarray,
                     stride: tuple[int, int] = (1, 1)) -> np.ndarray:
    """``methods.corr2d_separable``, compiled once per shape and stride."""
    return _separable(X.shape, column.shape[0], row.shape[0], stride)(X=X, column=column, row=row)


corr2d_fft = None


def corr2d_native(X: np.ndarray, K: np.ndarray, stride: tuple[int, int]) -> np.ndarray:
    """``npx.convolution`` on the tab's NCHW layout (batch and channel of size one), compiled with its reshapes."""
    return _native(X.shape, K.shape, stride)(X=X, K=K)


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
    """The book's ``Conv2D`` as a Gluon ``Block``: ``corr2d(x, weight) + bias``, initialised on creation."""

    def __init__(self, kernel_size: tuple[int, int], *, bias: bool = True, seed: int | None = None,
                 padding: Any = 0, stride: Any = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.weight = self.params.get('weight', shape=kernel_size)
        # The tab's params.get('bias') would take the default Uniform initialiser; Gluon's own Conv2D and
        # the other tabs start the bias at zero.
        self.bias = self.params.get('bias', shape=(1,), init=mx.init.Zero()) if bias else None
        self.padding, self.stride = padding, pair(stride, "stride", minimum=1)
        with _seeded(seed):
            self.initialize()  # the default initialiser (Uniform(-0.07, 0.07)), so that layer(x) works at once

    def forward(self, x: Any) -> np.ndarray:
        Y = correlate(_this, x, self.weight.data(), padding=self.padding, stride=self.stride)
        return Y if self.bias is None else Y + self.bias.data()


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

    def parameters(self) -> tuple[onp.ndarray, float | None]:
        weight = self.conv2d.weight.data().asnumpy()
        bias = None if self.conv2d.bias is None else float(self.conv2d.bias.data()[0])
        return weight.reshape(weight.shape[-2:]), bias


def make_trainer(X: np.ndarray, Y: np.ndarray, kernel_size: tuple[int, int], *, layer: str, bias: bool,
                 init: str, seed: int | None, lr: float) -> _Trainer:
    """``layer="builtin"`` trains Gluon's ``nn.Conv2D`` on NCHW data as the tab does; ``"custom"`` trains ``Conv2D``."""
    if layer == "builtin":
        # in_channels=1 (the tab lets Gluon infer it on the first call) creates the weight now, under the seed
        conv2d = nn.Conv2D(1, kernel_size=kernel_size, use_bias=bias, in_channels=1)
        with _seeded(seed):
            conv2d.initialize(mx.init.Zero() if init == "zeros" else mx.init.Uniform())  # Uniform: the default
        X, Y = X.reshape(1, 1, *X.shape), Y.reshape(1, 1, *Y.shape)
    else:
        conv2d = Conv2D(kernel_size, bias=bias, seed=seed)
        if init == "zeros":
            conv2d.weight.data()[:] = 0
    conv2d.cast(X.dtype)
    return _Trainer(X, Y, conv2d, lr)


def corr2d_vjp(X: np.ndarray, K: np.ndarray, G: np.ndarray, *, method: str, padding: Any,
               stride: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Gradients of ``sum(G * corr2d(X, K))`` by ``autograd``; the book's loop cannot be recorded."""
    X, K = X.copy(), K.copy()  # attach_grad on copies, so the caller's arrays stay constant
    X.attach_grad()
    K.attach_grad()
    try:
        with autograd.record():
            Y = correlate(_this, X, K, method=method, padding=padding, stride=stride)
    except mx.MXNetError as error:
        if method != "loop":
            raise
        raise ValueError(
            "method='loop' is not differentiable on MXNet: the book's corr2d writes its output in place "
            "(Y[i, j] = ...), which autograd cannot record; use method='direct' or 'auto'"
        ) from error
    Y.backward(G.astype(Y.dtype, copy=False))
    return X.grad, K.grad


def layer_vjp(layer: Conv2D, x: np.ndarray, G: np.ndarray) -> dict[str, np.ndarray]:
    """Gradients of ``sum(G * layer(x))`` with respect to the layer's parameters, by ``autograd``."""
    with autograd.record():
        y = layer(x)
    y.backward(G.astype(y.dtype, copy=False))
    return {name: param.grad().copy() for name, param in _parameters(layer).items()}


def layer_parameters(layer: Conv2D) -> dict[str, onp.ndarray]:
    """The layer's parameters as NumPy arrays, by name."""
    return {name: param.data().asnumpy() for name, param in _parameters(layer).items()}


def sparse_matrix(rows: onp.ndarray, cols: onp.ndarray, values: onp.ndarray, shape: tuple[int, int]) -> Any:
    """MXNet's own sparse matrix, a ``CSRNDArray`` (``mxnet.numpy`` has no sparse type).

    The entries arrive unique and sorted by row, so the row pointers are the running count per row.
    """
    indptr = onp.concatenate([[0], onp.cumsum(onp.bincount(rows, minlength=shape[0]))])
    return mx.nd.sparse.csr_matrix((values, cols, indptr), shape=shape, dtype=values.dtype)
