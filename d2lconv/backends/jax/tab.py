"""The book's JAX/Flax tab: its ``corr2d`` loop, its ``Conv2D`` layer and its learning loop.

The fast methods live in ``kernels.py`` beside this file; this module reads like the tab.
"""

from __future__ import annotations

import secrets
import sys
from functools import partial
from typing import Any

import jax
import numpy as np
from flax import linen as nn
from jax import lax
from jax import numpy as jnp

from d2lconv._channels import correlate_channels
from d2lconv._corr import correlate
from d2lconv._layers import Correlation

# The adapter package this tab belongs to: the common API is called with it (``correlate(_this, ...)``).
_this = sys.modules[__package__]


def corr2d_loop(X: jax.Array, K: jax.Array) -> jax.Array:
    """Compute 2D cross-correlation (the book's loop, as in its JAX tab)."""
    h, w = K.shape
    # The tab's jnp.zeros has no dtype: keep X's, or 64-bit mode would turn float32 inputs into float64
    Y = jnp.zeros((X.shape[0] - h + 1, X.shape[1] - w + 1), dtype=X.dtype)
    for i in range(Y.shape[0]):
        for j in range(Y.shape[1]):
            Y = Y.at[i, j].set((X[i:i + h, j:j + w] * K).sum())
    return Y


_PARAMETERS = ("weight", "bias")  # in the order of the other backends (JAX sorts dict keys: bias first)


class Conv2D(nn.Module):
    """The book's ``Conv2D``: ``corr2d(x, weight) + bias`` with Flax parameters ``weight`` and ``bias``.

    ``d2lconv.Conv2D`` returns it bound to initialised variables, so ``layer(x)`` and ``layer.weight`` work;
    the unbound class (``Conv2DModule``) is the usual Flax module for ``init``/``apply``. With
    ``channels=(in, out, groups)`` the weight is ``(out, in // groups, h, w)``, the bias ``(out,)``, and the
    layer computes ``corr2d_multi_in_out(x, weight, groups=groups) + bias``.
    """

    kernel_size: tuple[int, int]
    use_bias: bool = True
    padding: Any = 0
    stride: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    channels: tuple[int, int, int] | None = None
    data_format: str = "channels_first"

    @property
    def conv(self) -> Correlation:
        return Correlation(self.kernel_size, self.channels, self.padding, self.stride, self.dilation, self.data_format)

    def setup(self) -> None:
        # The tab calls nn.param (not in flax.linen) with an uncalled initialiser and int shapes
        # float32 like the other backends' layers, also in 64-bit mode (a float64 input casts them up)
        self.weight = self.param("weight", nn.initializers.uniform(), self.conv.weight_shape, jnp.float32)
        self.bias = (self.param("bias", nn.initializers.zeros, self.conv.bias_shape, jnp.float32) if self.use_bias
                     else None)

    def __call__(self, x: Any) -> jax.Array:  # the tab names it forward, which Flax never calls
        return self.conv(_this, x, self.weight, self.bias)  # corr2d(x, self.weight) + self.bias


# The Flax class keeps its name (type(layer).__name__ == "Conv2D"); the contract's Conv2D below builds and binds it.
Conv2DModule = Conv2D


def Conv2D(kernel_size: tuple[int, int], *, bias: bool = True, seed: int | None = None,  # noqa: F811
           padding: Any = 0, stride: tuple[int, int] = (1, 1), dilation: tuple[int, int] = (1, 1),
           channels: tuple[int, int, int] | None = None, data_format: str = "channels_first") -> Conv2DModule:
    """A :class:`Conv2DModule` initialised from ``PRNGKey(seed)`` (a fresh key when None) and bound to it."""
    kernel_size = tuple(kernel_size)
    padding = tuple(padding) if isinstance(padding, list) else padding  # Flax module fields must be hashable
    module = Conv2DModule(kernel_size, use_bias=bias, padding=padding, stride=tuple(stride), dilation=tuple(dilation),
                          channels=channels, data_format=data_format)
    key = jax.random.PRNGKey(secrets.randbits(32) if seed is None else seed)
    span = tuple((k - 1) * d + 1 for k, d in zip(kernel_size, dilation))  # an input the kernel fits
    if channels is not None:
        span = (*span, channels[0]) if data_format == "channels_last" else (channels[0], *span)
    variables = module.init(key, jnp.zeros(span, dtype=jnp.float32))
    return module.bind(variables)


def _conv_general_dilated(lhs: jax.Array, rhs: jax.Array, window_strides: Any, padding: Any, **options: Any) -> Any:
    """``lax.conv_general_dilated`` for ``nn.Conv``, through d2lconv for valid, undilated NHWC convolutions.

    XLA's CPU convolution takes about 8 ms on a 512x512 single-channel image; the jitted sum of shifted
    slices (or the FFT for large kernels) takes 0.2 ms, which makes the compiled training step over 10x
    faster than the tab's eager loop instead of ~1.7x. One image with one channel goes to ``corr2d``;
    batches and channels to ``corr2d_multi_in_out``, whose ``auto`` takes XLA's own op where it is the faster.
    Anything else (padding, dilation, other layouts) goes to ``lax.conv_general_dilated``.
    """
    plain = all(tuple(options.get(name) or (1, 1)) == (1, 1) for name in ("lhs_dilation", "rhs_dilation"))
    nhwc = lax.conv_dimension_numbers(lhs.shape, rhs.shape, ("NHWC", "HWIO", "NHWC"))
    if lhs.ndim == 4 and padding == "VALID" and plain and options.get("dimension_numbers") in (None, nhwc):
        if lhs.shape[0] == lhs.shape[3] == rhs.shape[2] == rhs.shape[3] == 1:  # the tab's one image, one channel
            Y = correlate(_this, lhs[0, :, :, 0], rhs[:, :, 0, 0], stride=tuple(window_strides))
            return Y[None, :, :, None]
        K = jnp.transpose(rhs, (3, 2, 0, 1))  # Flax's (h, w, in, out) as the book's (out, in, h, w)
        return correlate_channels(_this, lhs, K, groups=options.get("feature_group_count", 1),
                                  stride=tuple(window_strides), data_format="channels_last")
    return lax.conv_general_dilated(lhs, rhs, window_strides, padding, **options)


@partial(jax.jit, static_argnums=0)
def _train_step(model: nn.Module, params: Any, X: jax.Array, Y: jax.Array, lr: float) -> tuple[Any, jax.Array]:
    """One epoch of the tab's loop, compiled once per model and shapes (the tab runs it eagerly)."""

    def loss(params, X, Y):
        Y_hat = model.apply(params, X)
        return ((Y_hat - Y) ** 2).sum()

    l, grads = jax.value_and_grad(loss)(params, X, Y)
    # Update the kernel (the tab's jax.tree_map was removed in JAX 0.6)
    params = jax.tree_util.tree_map(lambda p, g: p - lr * g, params, grads)
    return params, l


class _Trainer:
    """Plain gradient descent on the summed squared error, one compiled ``step()`` per epoch."""

    def __init__(self, model: nn.Module, params: Any, X: jax.Array, Y: jax.Array, lr: float,
                 kernel_size: tuple[int, int], kernel_name: str) -> None:
        self.model, self.params, self.X, self.Y, self.lr = model, params, X, Y, lr
        self.kernel_size, self.kernel_name = kernel_size, kernel_name

    def step(self) -> float:
        self.params, l = _train_step(self.model, self.params, self.X, self.Y, self.lr)
        return float(l)

    def parameters(self) -> tuple[np.ndarray, np.ndarray | None]:
        params = self.params["params"]
        kernel = np.array(params[self.kernel_name])
        if self.kernel_name == "kernel":
            kernel = kernel.transpose(3, 2, 0, 1)  # nn.Conv's (h, w, in, out) as the book's (out, in, h, w)
        return kernel, (np.array(params["bias"]) if "bias" in params else None)


def make_trainer(X: jax.Array, Y: jax.Array, kernel_size: tuple[int, int], *, layer: str, bias: bool,
                 init: str, seed: int | None, lr: float, channels: tuple[int, int] | None = None) -> _Trainer:
    """``layer="builtin"``: the tab's ``nn.Conv`` on NHWC; ``"custom"``: this module's ``Conv2D``;
    ``channels=(in, out)`` learns an ``(out, in, h, w)`` kernel."""
    key = jax.random.PRNGKey(secrets.randbits(32) if seed is None else seed)
    if layer == "builtin":
        # The two-dimensional convolutional layer uses four-dimensional input and output in the format of
        # (example, height, width, channel), where the batch size and the number of channels are both 1
        # (here a batch of images is the example axis, and channels the channel axis)
        conv2d = nn.Conv(1 if channels is None else channels[1], kernel_size=kernel_size, use_bias=bias,
                         padding="VALID", conv_general_dilated=_conv_general_dilated)
        if channels is None:
            X, Y = X.reshape((-1, *X.shape[-2:], 1)), Y.reshape((-1, *Y.shape[-2:], 1))
        else:
            X = jnp.moveaxis(X.reshape((-1, *X.shape[-3:])), 1, 3)
            Y = jnp.moveaxis(Y.reshape((-1, *Y.shape[-3:])), 1, 3)
        kernel_name = "kernel"
    else:
        conv2d = Conv2DModule(kernel_size, use_bias=bias, channels=None if channels is None else (*channels, 1))
        kernel_name = "weight"
    params = conv2d.init(key, X)
    params = jax.tree_util.tree_map(lambda p: p.astype(X.dtype), params)  # float64 data trains float64 weights
    if init == "zeros":
        params = jax.tree_util.tree_map(jnp.zeros_like, params)
    return _Trainer(conv2d, params, X, Y, lr, kernel_size, kernel_name)


def vjp(function: Any, X: jax.Array, K: jax.Array, G: jax.Array,
        options: dict[str, Any]) -> tuple[jax.Array, jax.Array]:
    """Gradients of ``sum(G * function(X, K, **options))`` in ``X`` and ``K``, by ``jax.vjp``."""
    _, pullback = jax.vjp(lambda X, K: function(X, K, **options), X, K)
    return pullback(G)


def corr2d_vjp(X: jax.Array, K: jax.Array, G: jax.Array, *, method: str, padding: Any,
               stride: tuple[int, int], dilation: tuple[int, int] = (1, 1)) -> tuple[jax.Array, jax.Array]:
    """Gradients of ``sum(G * corr2d(X, K))`` by ``jax.vjp`` (``"separable"`` refuses a traced kernel)."""
    options = {"method": method, "padding": padding, "stride": stride, "dilation": dilation}
    return vjp(partial(correlate, _this), X, K, G, options)


def layer_vjp(layer: Conv2DModule, x: jax.Array, G: jax.Array) -> dict[str, jax.Array]:
    """Gradients of ``sum(G * layer(x))`` with respect to the bound layer's parameters."""
    module, variables = layer.unbind()
    _, pullback = jax.vjp(lambda params: module.apply({"params": params}, x), variables["params"])
    (grads,) = pullback(G)
    return {name: grads[name] for name in _PARAMETERS if name in grads}


def layer_parameters(layer: Conv2DModule) -> dict[str, np.ndarray]:
    """The bound layer's parameters as NumPy arrays (copies), by name."""
    params = layer.variables["params"]
    return {name: np.array(params[name]) for name in _PARAMETERS if name in params}
