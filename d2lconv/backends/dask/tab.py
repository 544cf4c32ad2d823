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

from d2lconv import methods
from d2lconv._channels import correlate_channels
from d2lconv._corr import correlate
from d2lconv._inputs import as_tensor, dilation_pair, pad_amounts, pair
from d2lconv._layers import Correlation
from d2lconv.backends.dask import blocks
from d2lconv.backends.dask.selection import get_chunk_backend
from d2lconv.backends.dask.tensors import pad, small_to_numpy
from d2lconv.backends.dask.tiling import block_sums, tile

# The adapter package this tab belongs to: the common API is called with it (``correlate(_this, ...)``).
_this = sys.modules[__package__]


def corr2d_loop(X: da.Array, K: da.Array) -> da.Array:
    """Compute 2D cross-correlation: the book's nested loop, run by the chunk backend on every block."""
    from d2lconv.backends.dask.kernels import correlate_blocks

    return correlate_blocks("loop", X, K, (1, 1))


def _padded(x: da.Array, padding: Any, span: tuple[int, int], stride: tuple[int, int]) -> da.Array:
    rows, cols = pad_amounts(padding, tuple(x.shape[-2:]), span, stride)
    return pad(x, rows, cols) if any(rows + cols) else x


def _whole_channels(x: da.Array) -> da.Array:
    """``x`` with its channel axis (``-3``) in one chunk: every output channel reads every input channel."""
    return x.rechunk({x.ndim - 3: -1}) if x.numblocks[-3] > 1 else x


def parameter_gradients(x: da.Array, G: da.Array, conv: Correlation) -> da.Array:
    """Lazy ``[dL/db..., dL/dK...]`` (float64) of ``L = sum(G * (conv(x, K) + b))``, one term per block.

    The kernel's gradient is the cross-correlation of the padded input with ``G`` (with channels, for every
    pair of an output channel and an input channel of its group); the bias's is ``G``'s sum (per output channel).
    """
    span = methods.dilated_shape(conv.kernel_size, conv.dilation)
    if conv.channels is None:
        tiling = tile(_padded(x, conv.padding, span, conv.stride), span, conv.stride)
        return block_sums(blocks.gradient_terms, tiling, G, size=1 + span_size(conv.weight_shape),
                          kernel_shape=conv.kernel_size, stride=conv.stride, dilation=conv.dilation)
    if conv.data_format == "channels_last":
        x, G = da.moveaxis(x, -1, -3), da.moveaxis(G, -1, -3)
    x = _whole_channels(_padded(x, conv.padding, span, conv.stride))
    O, groups = conv.channels[1], conv.channels[2]
    return block_sums(blocks.gradient_terms, tile(x, span, conv.stride), G, size=O + span_size(conv.weight_shape),
                      leading=(*x.chunks[:-3], (O,)), kernel_shape=conv.weight_shape, stride=conv.stride,
                      dilation=conv.dilation, groups=groups)


def span_size(shape: tuple[int, ...]) -> int:
    return int(np.prod(shape))


class Conv2D:
    """The book's ``Conv2D`` on Dask arrays: ``corr2d(x, weight) + bias``, lazily, with a hand-written backward.

    With ``channels=(in, out, groups)`` the weight is ``(out, in // groups, h, w)``, the bias ``(out,)``, and the
    layer computes ``corr2d_multi_in_out(x, weight, groups=groups) + bias`` (the channel axis one chunk).
    """

    def __init__(self, kernel_size: tuple[int, int], *, bias: bool = True, seed: int | None = None,
                 padding: Any = 0, stride: Any = 1, dilation: Any = (1, 1), channels: Any = None,
                 data_format: str = "channels_first") -> None:
        self.conv = Correlation(tuple(kernel_size), channels, padding, pair(stride, "stride", minimum=1),
                                tuple(dilation), data_format)
        rng = np.random.default_rng(seed)
        self.weight = rng.random(self.conv.weight_shape, dtype=np.float32)  # the NumPy layer's start, same seed
        self.bias = np.zeros(self.conv.bias_shape, dtype=np.float32) if bias else None
        self._input: da.Array | None = None  # the input of the last forward, for backward

    def __call__(self, x: Any) -> da.Array:
        return self.forward(x)

    def forward(self, x: Any) -> da.Array:
        x = as_tensor(_this, x, "x")
        Y = self.conv(_this, x, self.weight, self.bias)  # corr2d(x, self.weight) + self.bias
        self._input = x
        return Y

    def backward(self, grad_output: Any) -> dict[str, np.ndarray]:
        """Gradients of ``sum(grad_output * forward(x))`` for the last ``x`` passed forward (one pass over it)."""
        if self._input is None:
            raise RuntimeError("call the layer on an input before backward()")
        G = as_tensor(_this, grad_output, "grad_output").astype(self._input.dtype)
        sums = parameter_gradients(self._input, G, self.conv).compute()
        biases = self.conv.bias_shape[0]
        grads = {"weight": sums[biases:].reshape(self.weight.shape).astype(self.weight.dtype)}
        if self.bias is not None:
            grads["bias"] = sums[:biases].astype(self.bias.dtype)
        return grads

    def parameters(self) -> dict[str, np.ndarray]:
        return {"weight": self.weight} if self.bias is None else {"weight": self.weight, "bias": self.bias}


class _Trainer:
    """Plain gradient descent on the summed squared error; each ``step()`` is one Dask pass over X and Y.

    Every block returns its share of the loss and of both gradients; Dask adds them up, then the NumPy
    parameters take the step, exactly as the NumPy backend's loop does on the whole arrays.
    """

    def __init__(self, X: da.Array, Y: da.Array, layer: Conv2D, lr: float) -> None:
        channels = layer.conv.channels is not None
        if channels:
            X = _whole_channels(X)
        self.tiling = tile(X, layer.conv.kernel_size, (1, 1))
        leading = (*X.chunks[:-3], (Y.shape[-3],)) if channels else None
        self.Y = Y.rechunk(self.tiling.output_chunks(leading))
        self.leading, self.layer, self.lr = leading, layer, lr

    def step(self) -> float:
        layer, kernel = self.layer, self.layer.weight.copy()
        bias = None if layer.bias is None else layer.bias.copy()
        biases = layer.conv.bias_shape[0]
        sums = block_sums(blocks.training_terms, self.tiling, self.Y, size=1 + biases + kernel.size,
                          leading=self.leading, backend=get_chunk_backend(), method="auto", kernel=kernel,
                          bias=bias).compute()
        # Update the kernel
        layer.weight -= (self.lr * sums[1 + biases:].reshape(kernel.shape)).astype(layer.weight.dtype)
        if layer.bias is not None:
            layer.bias -= (self.lr * sums[1:1 + biases]).astype(layer.bias.dtype)
        return float(sums[0])

    def parameters(self) -> tuple[np.ndarray, np.ndarray | None]:
        return self.layer.weight.copy(), None if self.layer.bias is None else self.layer.bias.copy()


def make_trainer(X: da.Array, Y: da.Array, kernel_size: tuple[int, int], *, layer: str, bias: bool,
                 init: str, seed: int | None, lr: float, channels: tuple[int, int] | None = None) -> _Trainer:
    """Dask has no conv layer of its own: both ``layer="builtin"`` and ``"custom"`` train ``Conv2D``
    (with ``channels=(in, out)``, its multi-channel form)."""
    conv2d = Conv2D(kernel_size, bias=bias, seed=seed, channels=None if channels is None else (*channels, 1))
    conv2d.weight = conv2d.weight.astype(X.dtype)
    if init == "zeros":
        conv2d.weight[...] = 0
    if conv2d.bias is not None:
        conv2d.bias = conv2d.bias.astype(X.dtype)
    return _Trainer(X, Y, conv2d, lr)


def corr2d_vjp(X: da.Array, K: da.Array, G: da.Array, *, method: str, padding: Any,
               stride: tuple[int, int], dilation: tuple[int, int] = (1, 1)) -> tuple[da.Array, da.Array]:
    """Gradients of ``sum(G * corr2d(X, K))``, lazily: Dask has no autodiff, so they are the analytic adjoints.

    ``dK`` is the cross-correlation of the padded input with ``G`` (a sum over blocks); ``dX`` is the full
    correlation of ``G``, spread by the stride, with the flipped kernel (a "transposed convolution").
    """
    # the forward pass, as autodiff would run it (and with its errors)
    correlate(_this, X, K, method=method, padding=padding, stride=stride, dilation=dilation)
    kernel = small_to_numpy(K)
    conv = Correlation(tuple(kernel.shape), None, padding, tuple(stride), tuple(dilation))
    dK = parameter_gradients(X, G, conv)[1:].reshape(kernel.shape).astype(X.dtype)
    span = methods.dilated_shape(kernel.shape, dilation)
    rows, cols = pad_amounts(padding, tuple(X.shape[-2:]), span, stride)
    flipped = np.ascontiguousarray(kernel[::-1, ::-1])
    full = correlate(_this, _spread(G, stride), flipped, padding=tuple(s - 1 for s in span), dilation=dilation)
    return _cropped(full, X.shape, rows, cols), dK


def _spread(G: da.Array, stride: tuple[int, int]) -> da.Array:
    """``G`` with ``stride - 1`` zeros between its elements on the last two axes, lazily, block by block."""
    if stride == (1, 1):
        return G
    chunks = (*G.chunks[:-2], *(tuple(size * s for size in sizes) for sizes, s in zip(G.chunks[-2:], stride)))
    spread = G.map_blocks(blocks.dilate_block, stride=stride, chunks=chunks, dtype=G.dtype)
    return spread[..., :(G.shape[-2] - 1) * stride[0] + 1, :(G.shape[-1] - 1) * stride[1] + 1]


def _cropped(full: da.Array, shape: tuple[int, ...], rows: tuple[int, int], cols: tuple[int, int]) -> da.Array:
    """The gradient for the unpadded input: ``full`` covers the padded input up to the rows and columns no
    window reaches (zeros there), then the padding is cut off."""
    H, W = shape[-2:]
    padded = (H + rows[0] + rows[1], W + cols[0] + cols[1])
    rest = (padded[0] - full.shape[-2], padded[1] - full.shape[-1])
    if any(rest):
        full = pad(full, (0, rest[0]), (0, rest[1]))
    return full[..., rows[0]:rows[0] + H, cols[0]:cols[0] + W]


def channels_vjp(X: da.Array, K: Any, G: da.Array, *, groups: int = 1, method: str = "auto", padding: Any = 0,
                 stride: Any = 1, dilation: Any = 1,
                 data_format: str = "channels_first") -> tuple[da.Array, np.ndarray]:
    """Gradients of ``sum(G * corr2d_multi_in_out(X, K, ...))``, lazily, as the analytic adjoints.

    ``dK`` is summed over blocks; ``dX`` is ``corr2d_multi_in_out`` of ``G`` (spread by the stride) with the
    flipped kernel, input and output channels swapped within each group (the transposed convolution), so it
    is computed in blocks by the chunk backend like any correlation over channels.
    """
    correlate_channels(_this, X, K, groups=groups, method=method, padding=padding, stride=stride,
                       dilation=dilation, data_format=data_format)  # the forward pass, and its errors
    strides, dilations = pair(stride, "stride", minimum=1), dilation_pair(dilation)
    kernel = small_to_numpy(K)
    O, Cg, h, w = kernel.shape
    C = Cg * groups
    conv = Correlation((h, w), (C, O, groups), padding, strides, dilations, data_format)
    dK = parameter_gradients(X, G, conv)[O:].reshape(kernel.shape).astype(X.dtype)
    last = data_format == "channels_last"
    if last:
        X, G = da.moveaxis(X, -1, -3), da.moveaxis(G, -1, -3)
    span = methods.dilated_shape((h, w), dilations)
    rows, cols = pad_amounts(padding, tuple(X.shape[-2:]), span, strides)
    swapped = kernel.reshape(groups, O // groups, Cg, h, w).transpose(0, 2, 1, 3, 4).reshape(C, O // groups, h, w)
    full = correlate_channels(_this, _spread(G, strides), np.ascontiguousarray(swapped[..., ::-1, ::-1]),
                              groups=groups, padding=tuple(s - 1 for s in span), dilation=dilations)
    dX = _cropped(full, X.shape, rows, cols)
    return (da.moveaxis(dX, -3, -1) if last else dX), dK


def vjp(function: Any, X: da.Array, K: Any, G: da.Array, options: dict[str, Any]) -> tuple[da.Array, Any]:
    """Gradients of ``sum(G * function(X, K, **options))`` for d2lconv's own functions: Dask has no autodiff, so
    each is mapped onto its analytic adjoint, computed lazily in blocks."""
    from d2lconv._gradients import vjp_by_adjoints

    return vjp_by_adjoints(function, X, K, G, options, corr2d_vjp=corr2d_vjp, channels_vjp=channels_vjp,
                           flip=_flip, backend="dask", framework="Dask")


def _flip(K: Any) -> Any:
    return K[..., ::-1, ::-1]


def layer_vjp(layer: Conv2D, x: da.Array, G: da.Array) -> dict[str, np.ndarray]:
    """Gradients of ``sum(G * layer(x))`` with respect to the layer's parameters (its own backward)."""
    layer(x)
    return layer.backward(G)


def layer_parameters(layer: Conv2D) -> dict[str, np.ndarray]:
    """The layer's parameters as NumPy arrays, by name."""
    return {name: value.copy() for name, value in layer.parameters().items()}
