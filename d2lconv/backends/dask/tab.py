"""The chapter on Dask arrays: the book's loop on every block, its ``Conv2D`` layer and its learning loop.

The book has no Dask tab; this one reads like its NumPy/MXNet tab with the data in chunks. Parameters are
small NumPy arrays; the forward pass is a lazy Dask array; Dask has no autodiff, so the layer carries its
own backward, as on NumPy: the kernel's gradient is the cross-correlation of the input with the output's
gradient, a sum of one term per block that Dask adds up. Each training epoch is one pass over the data.
"""

from __future__ import annotations

import sys
from typing import Any

import dask.array as da
import numpy as np

from d2lconv._corr import correlate
from d2lconv._inputs import as_tensor, check_matrix, pad_amounts, pair
from d2lconv.backends.dask import blocks
from d2lconv.backends.dask.selection import get_chunk_backend
from d2lconv.backends.dask.tensors import pad, small_to_numpy
from d2lconv.backends.dask.tiling import Tiling, block_sums, tile

# The adapter package this tab belongs to: the common API is called with it (``correlate(_this, ...)``).
_this = sys.modules[__package__]


def corr2d_loop(X: da.Array, K: da.Array) -> da.Array:
    """Compute 2D cross-correlation: the book's nested loop, run by the chunk backend on every block."""
    from d2lconv.backends.dask.kernels import correlate_blocks

    return correlate_blocks("loop", X, K, (1, 1))


def _padded(x: da.Array, padding: Any, kernel_shape: tuple[int, int], stride: tuple[int, int]) -> da.Array:
    rows, cols = pad_amounts(padding, check_matrix(x, "x"), kernel_shape, stride)
    return pad(x, rows, cols) if any(rows + cols) else x


def _gradients(tiling: Tiling, G: da.Array) -> da.Array:
    """Lazy ``[dL/db, dL/dK...]`` of ``L = sum(G * corr2d(X, K) + b)`` for the tiled, padded ``X``."""
    (h, w), stride = tiling.plan.extent, tiling.plan.stride
    return block_sums(blocks.gradient_terms, tiling, G, size=1 + h * w, kernel_shape=(h, w), stride=stride)


class Conv2D:
    """The book's ``Conv2D`` on Dask arrays: ``corr2d(x, weight) + bias``, lazily, with a hand-written backward."""

    def __init__(self, kernel_size: tuple[int, int], *, bias: bool = True, seed: int | None = None,
                 padding: Any = 0, stride: Any = 1) -> None:
        rng = np.random.default_rng(seed)
        self.weight = rng.random(kernel_size, dtype=np.float32)  # the NumPy layer's start, for the same seed
        self.bias = np.zeros(1, dtype=np.float32) if bias else None
        self.padding, self.stride = padding, pair(stride, "stride", minimum=1)
        self._input: da.Array | None = None  # the padded input of the last forward, for backward

    def __call__(self, x: Any) -> da.Array:
        return self.forward(x)

    def forward(self, x: Any) -> da.Array:
        self._input = _padded(as_tensor(_this, x, "x"), self.padding, self.weight.shape, self.stride)
        Y = correlate(_this, self._input, self.weight, stride=self.stride)
        return Y if self.bias is None else Y + self.bias

    def backward(self, grad_output: Any) -> dict[str, np.ndarray]:
        """Gradients of ``sum(grad_output * forward(x))`` for the last ``x`` passed forward (one pass over it)."""
        if self._input is None:
            raise RuntimeError("call the layer on an input before backward()")
        G = as_tensor(_this, grad_output, "grad_output")
        sums = _gradients(tile(self._input, self.weight.shape, self.stride), G).compute()
        grads = {"weight": sums[1:].reshape(self.weight.shape).astype(self.weight.dtype)}
        if self.bias is not None:
            grads["bias"] = np.asarray([sums[0]], dtype=self.bias.dtype)
        return grads

    def parameters(self) -> dict[str, np.ndarray]:
        return {"weight": self.weight} if self.bias is None else {"weight": self.weight, "bias": self.bias}


class _Trainer:
    """Plain gradient descent on the summed squared error; each ``step()`` is one Dask pass over X and Y.

    Every block returns its share of the loss and of both gradients; Dask adds them up, then the NumPy
    parameters take the step, exactly as the NumPy backend's loop does on the whole arrays.
    """

    def __init__(self, X: da.Array, Y: da.Array, layer: Conv2D, lr: float) -> None:
        self.tiling = tile(X, layer.weight.shape, (1, 1))
        self.Y = Y.rechunk(self.tiling.output_chunks())
        self.layer, self.lr = layer, lr

    def step(self) -> float:
        layer, kernel = self.layer, self.layer.weight.copy()
        bias = None if layer.bias is None else float(layer.bias[0])
        sums = block_sums(blocks.training_terms, self.tiling, self.Y, size=2 + kernel.size,
                          backend=get_chunk_backend(), method="auto", kernel=kernel, bias=bias).compute()
        # Update the kernel
        layer.weight -= (self.lr * sums[2:].reshape(kernel.shape)).astype(layer.weight.dtype)
        if layer.bias is not None:
            layer.bias -= layer.bias.dtype.type(self.lr * sums[1])
        return float(sums[0])

    def parameters(self) -> tuple[np.ndarray, float | None]:
        bias = None if self.layer.bias is None else float(self.layer.bias[0])
        return self.layer.weight.copy(), bias


def make_trainer(X: da.Array, Y: da.Array, kernel_size: tuple[int, int], *, layer: str, bias: bool,
                 init: str, seed: int | None, lr: float) -> _Trainer:
    """Dask has no conv layer of its own: both ``layer="builtin"`` and ``"custom"`` train ``Conv2D``."""
    conv2d = Conv2D(kernel_size, bias=bias, seed=seed)
    conv2d.weight = conv2d.weight.astype(X.dtype)
    if init == "zeros":
        conv2d.weight[...] = 0
    if conv2d.bias is not None:
        conv2d.bias = conv2d.bias.astype(X.dtype)
    return _Trainer(X, Y, conv2d, lr)


def corr2d_vjp(X: da.Array, K: da.Array, G: da.Array, *, method: str, padding: Any,
               stride: tuple[int, int]) -> tuple[da.Array, da.Array]:
    """Gradients of ``sum(G * corr2d(X, K))``, lazily: Dask has no autodiff, so they are the analytic adjoints.

    ``dK`` is the cross-correlation of the padded input with ``G`` (a sum over blocks); ``dX`` is the full
    correlation of ``G``, dilated by the stride, with the flipped kernel (a "transposed convolution").
    """
    correlate(_this, X, K, method=method, padding=padding, stride=stride)  # the forward pass, as autodiff would
    kernel = small_to_numpy(K)
    rows, cols = pad_amounts(padding, X.shape, kernel.shape, stride)
    padded = _padded(X, padding, kernel.shape, stride)
    dK = _gradients(tile(padded, kernel.shape, stride), G)[1:].reshape(kernel.shape).astype(X.dtype)
    dX = input_gradient(G, kernel, padded.shape, stride)
    return dX[rows[0]:rows[0] + X.shape[0], cols[0]:cols[0] + X.shape[1]], dK


def input_gradient(G: da.Array, kernel: np.ndarray, input_shape: tuple[int, int],
                   stride: tuple[int, int]) -> da.Array:
    """The gradient of ``sum(G * corr2d(X, K))`` with respect to the (padded) ``X``, lazily."""
    h, w = kernel.shape
    if stride != (1, 1):
        chunks = tuple(tuple(size * s for size in sizes) for sizes, s in zip(G.chunks, stride))
        dilated = G.map_blocks(blocks.dilate_block, stride=stride, chunks=chunks, dtype=G.dtype)
        G = dilated[:(G.shape[0] - 1) * stride[0] + 1, :(G.shape[1] - 1) * stride[1] + 1]
    full = correlate(_this, G, np.ascontiguousarray(kernel[::-1, ::-1]), padding=(h - 1, w - 1))
    rest = (input_shape[0] - full.shape[0], input_shape[1] - full.shape[1])  # rows no window reaches
    return da.pad(full, ((0, rest[0]), (0, rest[1])), mode="constant") if any(rest) else full


def layer_vjp(layer: Conv2D, x: da.Array, G: da.Array) -> dict[str, np.ndarray]:
    """Gradients of ``sum(G * layer(x))`` with respect to the layer's parameters (its own backward)."""
    layer(x)
    return layer.backward(G)


def layer_parameters(layer: Conv2D) -> dict[str, np.ndarray]:
    """The layer's parameters as NumPy arrays, by name."""
    return {name: value.copy() for name, value in layer.parameters().items()}
