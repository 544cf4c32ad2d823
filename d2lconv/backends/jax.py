"""The JAX/Flax backend: the book's JAX tab, with ``jax.jit`` for everything that is not the tab's own loop.

JAX computes in float32 unless 64-bit mode is on: a float64 input silently becomes float32 here (as
``jnp.asarray`` makes it). For float64 results set ``JAX_ENABLE_X64=1`` in the environment, or call
``jax.config.update("jax_enable_x64", True)`` before creating any array.
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

from d2lconv import methods
from d2lconv._corr import correlate

NAME = "jax"
NATIVE_TYPE = "jax.Array"
# method="auto"'s cost model (d2lconv._auto). FFT_PASSES is where corr2d_fft and corr2d_direct cross, in units
# of one direct pass. How: in one process at 2048x2048 float32, time both (interleaved, median CPU time) for
# k = 7..45 and divide the fft time by one direct pass (direct time / k*k). With jax 0.10 on 2 CPU cores the
# fft cost ~100 passes at k = 7, ~125 at k = 11 (where the two tie), ~150 at k = 15 and ~300 at k = 31 (the
# row-FFT path grows with the kernel's height), so k <= 10 stays direct. Beyond ~500 taps XLA stops fusing
# the direct sum (k = 23: 15x slower), which this FFT_PASSES keeps auto well away from.
FFT_PASSES = 120
# The jitted direct sum's dispatch costs less than the jitted lax.conv_general_dilated even on the book's 3x3 input.
NATIVE_BELOW = 0
NATIVE_TAPS = 0
_this = sys.modules[__name__]


def is_native(x: Any) -> bool:
    """``jax.Array``, including the tracers that ``jax.jit`` and ``jax.grad`` pass around."""
    return isinstance(x, jax.Array)


def from_numpy(array: np.ndarray) -> jax.Array:
    return jnp.asarray(array)  # float64 stays float64 only with JAX_ENABLE_X64 (else float32, silently)


def to_numpy(x: jax.Array) -> np.ndarray:
    return np.asarray(x)


def dtype_of(x: jax.Array) -> np.dtype:
    return x.dtype  # already a NumPy dtype, for arrays and tracers alike


def cast(x: jax.Array, dtype: np.dtype) -> jax.Array:
    # canonicalize_dtype maps float64 to float32 without JAX_ENABLE_X64, so astype does not warn about it
    return x.astype(jax.dtypes.canonicalize_dtype(dtype))


def is_constant(x: jax.Array) -> bool:
    """A concrete array is constant; a tracer may be what ``jax.grad`` differentiates, so it is not."""
    return not isinstance(x, jax.core.Tracer)


def transpose(x: jax.Array) -> jax.Array:
    return x.T


def flip(x: jax.Array) -> jax.Array:
    return jnp.flip(x, (0, 1))


def pad(x: jax.Array, rows: tuple[int, int], cols: tuple[int, int]) -> jax.Array:
    return jnp.pad(x, (rows, cols))


def corr2d_loop(X: jax.Array, K: jax.Array) -> jax.Array:
    """Compute 2D cross-correlation (the book's loop, as in its JAX tab)."""
    h, w = K.shape
    # The tab's jnp.zeros has no dtype: keep X's, or 64-bit mode would turn float32 inputs into float64
    Y = jnp.zeros((X.shape[0] - h + 1, X.shape[1] - w + 1), dtype=X.dtype)
    for i in range(Y.shape[0]):
        for j in range(Y.shape[1]):
            Y = Y.at[i, j].set((X[i:i + h, j:j + w] * K).sum())
    return Y


def _tree_sum(terms: Any) -> Any:
    """Add the terms in pairs, then the pairs in pairs, ...

    Why: XLA fuses the sum into one loop either way, but a left-to-right sum is one chain of dependent adds
    per output element; a balanced tree keeps several in flight (2048x2048: 1.3x faster at k = 7, 11 and 15;
    the same at k = 3, where memory bounds it).
    """
    terms = list(terms)
    while len(terms) > 1:
        terms = [terms[i] + terms[i + 1] if i + 1 < len(terms) else terms[i] for i in range(0, len(terms), 2)]
    return terms[0]


def _direct(X: jax.Array, K: jax.Array, stride: tuple[int, int]) -> jax.Array:
    """``methods.corr2d_direct`` (the sum of shifted slices), summed as a tree; ``jit`` fuses it into one pass."""
    (h, w), (s_h, s_w) = K.shape, stride
    out_h, out_w = methods.valid_shape(X.shape, K.shape, stride)
    rows, cols = (out_h - 1) * s_h + 1, (out_w - 1) * s_w + 1
    return _tree_sum(X[a:a + rows:s_h, b:b + cols:s_w] * K[a, b] for a in range(h) for b in range(w))


def _separable(X: jax.Array, column: jax.Array, row: jax.Array, stride: tuple[int, int]) -> jax.Array:
    """``methods.corr2d_separable`` (a row pass, then a column pass), each summed as a tree."""
    (h, w), (s_h, s_w) = (column.shape[0], row.shape[0]), stride
    out_h, out_w = methods.valid_shape(X.shape, (h, w), stride)
    rows, cols = (out_h - 1) * s_h + 1, (out_w - 1) * s_w + 1
    Z = _tree_sum(X[:, b:b + cols:s_w] * row[b] for b in range(w))
    return _tree_sum(Z[a:a + rows:s_h, :] * column[a] for a in range(h))


def _fft_2d(X: jax.Array, K: jax.Array, stride: tuple[int, int]) -> jax.Array:
    """``methods.corr2d_fft``: rfft2 of ``X`` and of ``K`` on a 5-smooth grid, one irfft2, all in one jit.

    Multiplying by the *conjugate* kernel spectrum gives the circular cross-correlation directly (no flip);
    on a grid at least as large as ``X`` it is exact on the valid part, the top-left corner. XLA's CPU FFT
    (DUCC) runs in complex64 for float32 inputs. (Building the kernel's spectrum from its h x w nonzeros as
    two thin DFT matrix products measured no faster here: XLA's CPU complex dot is slow.)
    """
    s_h, s_w = stride
    out_h, out_w = methods.valid_shape(X.shape, K.shape, stride)
    grid = (methods.fast_length(X.shape[0]), methods.fast_length(X.shape[1]))
    full = jnp.fft.irfft2(jnp.fft.rfft2(X, s=grid) * jnp.conj(jnp.fft.rfft2(K, s=grid)), s=grid)
    return full[:(out_h - 1) * s_h + 1:s_h, :(out_w - 1) * s_w + 1:s_w]


def _fft_rows(X: jax.Array, K: jax.Array, stride: tuple[int, int]) -> jax.Array:
    """FFT along the width only, then the sum of ``h`` shifted rows along the height, then the inverse FFT.

    Why: a row FFT is cheap and cache-friendly, while the 2-D FFT's column pass is not; for kernels of up to
    ~31 rows, ``h`` fused complex multiply-adds per spectrum element cost less than the column passes
    (2048x2048: about 0.5x the 2-D path at k = 15, 0.9x at k = 31). Real and imaginary parts are kept
    apart so that XLA fuses plain float multiply-adds.
    """
    h, (s_h, s_w) = K.shape[0], stride
    out_h, out_w = methods.valid_shape(X.shape, K.shape, stride)
    rows, n = (out_h - 1) * s_h + 1, methods.fast_length(X.shape[1])
    spectrum = jnp.fft.rfft(X, n=n, axis=1)
    kernel = jnp.conj(jnp.fft.rfft(K, n=n, axis=1))  # conjugate: the circular correlation along each row
    x_re, x_im, k_re, k_im = spectrum.real, spectrum.imag, kernel.real, kernel.imag
    re = _tree_sum(x_re[a:a + rows:s_h] * k_re[a] - x_im[a:a + rows:s_h] * k_im[a] for a in range(h))
    im = _tree_sum(x_re[a:a + rows:s_h] * k_im[a] + x_im[a:a + rows:s_h] * k_re[a] for a in range(h))
    return jnp.fft.irfft(lax.complex(re, im), n=n, axis=1)[:, :(out_w - 1) * s_w + 1:s_w]


# _fft_rows costs ~h passes of the spectrum; beyond about this many kernel rows the 2-D FFT is cheaper
# (measured at 2048x2048: 0.9x at h = 31).
_FFT_ROWS_MAX = 32


def _fft(X: jax.Array, K: jax.Array, stride: tuple[int, int]) -> jax.Array:
    """The cheaper of the two exact FFT paths for this kernel's height (both differentiable)."""
    return (_fft_rows if K.shape[0] <= _FFT_ROWS_MAX else _fft_2d)(X, K, stride)


# Compiled once per shape, dtype and stride (the stride is static: it decides the slices); each whole
# method is one jit, so XLA fuses the slices, products and sums around the FFTs.
corr2d_direct = jax.jit(_direct, static_argnums=2)
corr2d_separable = jax.jit(_separable, static_argnums=3)
corr2d_fft = jax.jit(_fft, static_argnums=2)


@partial(jax.jit, static_argnums=2)
def corr2d_native(X: jax.Array, K: jax.Array, stride: tuple[int, int] = (1, 1)) -> jax.Array:
    """``lax.conv_general_dilated`` with the tab's NHWC layout: one image, one channel in and out."""
    Y = lax.conv_general_dilated(
        X[None, :, :, None], K[:, :, None, None], stride, "VALID",
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        precision=lax.Precision.HIGHEST,  # exact float32 on GPU/TPU too (their default rounds to bf16/tf32)
    )
    return Y[0, :, :, 0]


_PARAMETERS = ("weight", "bias")  # in the order of the other backends (JAX sorts dict keys: bias first)


class Conv2D(nn.Module):
    """The book's ``Conv2D``: ``corr2d(x, weight) + bias`` with Flax parameters ``weight`` and ``bias``.

    ``d2lconv.Conv2D`` returns it bound to initialised variables, so ``layer(x)`` and ``layer.weight`` work;
    the unbound class (``Conv2DModule``) is the usual Flax module for ``init``/``apply``.
    """

    kernel_size: tuple[int, int]
    use_bias: bool = True
    padding: Any = 0
    stride: tuple[int, int] = (1, 1)

    def setup(self) -> None:
        # The tab calls nn.param (not in flax.linen) with an uncalled initialiser and int shapes
        # float32 like the other backends' layers, also in 64-bit mode (a float64 input casts them up)
        self.weight = self.param("weight", nn.initializers.uniform(), self.kernel_size, jnp.float32)
        self.bias = self.param("bias", nn.initializers.zeros, (1,), jnp.float32) if self.use_bias else None

    def __call__(self, x: Any) -> jax.Array:  # the tab names it forward, which Flax never calls
        Y = correlate(_this, x, self.weight, padding=self.padding, stride=self.stride)
        return Y if self.bias is None else Y + self.bias


# The Flax class keeps its name (type(layer).__name__ == "Conv2D"); the contract's Conv2D below builds and binds it.
Conv2DModule = Conv2D


def Conv2D(kernel_size: tuple[int, int], *, bias: bool = True, seed: int | None = None,  # noqa: F811
           padding: Any = 0, stride: tuple[int, int] = (1, 1)) -> Conv2DModule:
    """A :class:`Conv2DModule` initialised from ``PRNGKey(seed)`` (a fresh key when None) and bound to it."""
    kernel_size = tuple(kernel_size)
    padding = tuple(padding) if isinstance(padding, list) else padding  # Flax module fields must be hashable
    module = Conv2DModule(kernel_size, use_bias=bias, padding=padding, stride=tuple(stride))
    key = jax.random.PRNGKey(secrets.randbits(32) if seed is None else seed)
    variables = module.init(key, jnp.zeros(kernel_size, dtype=jnp.float32))
    return module.bind(variables)


def _conv_general_dilated(lhs: jax.Array, rhs: jax.Array, window_strides: Any, padding: Any, **options: Any) -> Any:
    """``lax.conv_general_dilated`` for ``nn.Conv``, through ``corr2d`` for one image with one channel.

    XLA's CPU convolution takes about 8 ms on a 512x512 single-channel image; the jitted sum of shifted
    slices (or the FFT for large kernels) takes 0.2 ms, which makes the compiled training step over 10x
    faster than the tab's eager loop instead of ~1.7x. Anything else goes to ``lax.conv_general_dilated``.
    """
    plain = all(tuple(options.get(name) or (1, 1)) == (1, 1) for name in ("lhs_dilation", "rhs_dilation"))
    if (lhs.ndim == 4 and lhs.shape[0] == lhs.shape[3] == rhs.shape[2] == rhs.shape[3] == 1 and padding == "VALID"
            and plain and options.get("feature_group_count", 1) == 1):
        Y = correlate(_this, lhs[0, :, :, 0], rhs[:, :, 0, 0], stride=tuple(window_strides))
        return Y[None, :, :, None]
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

    def parameters(self) -> tuple[np.ndarray, float | None]:
        params = self.params["params"]
        kernel = np.array(params[self.kernel_name]).reshape(self.kernel_size)  # (h, w, 1, 1) for nn.Conv
        return kernel, (float(params["bias"][0]) if "bias" in params else None)


def make_trainer(X: jax.Array, Y: jax.Array, kernel_size: tuple[int, int], *, layer: str, bias: bool,
                 init: str, seed: int | None, lr: float) -> _Trainer:
    """``layer="builtin"``: the tab's ``nn.Conv`` on NHWC; ``"custom"``: this module's ``Conv2D``."""
    key = jax.random.PRNGKey(secrets.randbits(32) if seed is None else seed)
    if layer == "builtin":
        # The two-dimensional convolutional layer uses four-dimensional input and output in the format of
        # (example, height, width, channel), where the batch size and the number of channels are both 1
        conv2d = nn.Conv(1, kernel_size=kernel_size, use_bias=bias, padding="VALID",
                         conv_general_dilated=_conv_general_dilated)
        X, Y = X.reshape((1, *X.shape, 1)), Y.reshape((1, *Y.shape, 1))
        kernel_name = "kernel"
    else:
        conv2d = Conv2DModule(kernel_size, use_bias=bias)
        kernel_name = "weight"
    params = conv2d.init(key, X)
    params = jax.tree_util.tree_map(lambda p: p.astype(X.dtype), params)  # float64 data trains float64 weights
    if init == "zeros":
        params = jax.tree_util.tree_map(jnp.zeros_like, params)
    return _Trainer(conv2d, params, X, Y, lr, kernel_size, kernel_name)


def corr2d_vjp(X: jax.Array, K: jax.Array, G: jax.Array, *, method: str, padding: Any,
               stride: tuple[int, int]) -> tuple[jax.Array, jax.Array]:
    """Gradients of ``sum(G * corr2d(X, K))`` by ``jax.vjp`` (``"separable"`` refuses a traced kernel)."""
    _, pullback = jax.vjp(lambda X, K: correlate(_this, X, K, method=method, padding=padding, stride=stride), X, K)
    return pullback(G)


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


def sparse_matrix(rows: np.ndarray, cols: np.ndarray, values: np.ndarray, shape: tuple[int, int]) -> Any:
    """A ``jax.experimental.sparse.BCOO`` matrix with duplicate entries summed (usable with ``@``)."""
    from jax.experimental import sparse  # only this function needs it

    indices = jnp.asarray(np.stack([rows, cols], axis=1))
    return sparse.BCOO((jnp.asarray(values), indices), shape=shape).sum_duplicates()
