"""JAX/Flax fast paths for ``corr2d``: the methods ``auto`` chooses between, and its cost-model numbers.

They compute the valid cross-correlation of an already padded input (see ``d2lconv.backends``).
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import jax
from jax import lax
from jax import numpy as jnp

from d2lconv import methods
from d2lconv.backends.jax.tensors import reshape, stack

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
ONE = (1, 1)


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


def _direct(X: jax.Array, K: jax.Array, stride: tuple[int, int], dilation: tuple[int, int]) -> jax.Array:
    """``methods.corr2d_direct`` (the sum of shifted slices), summed as a tree; ``jit`` fuses it into one pass."""
    (h, w), (s_h, s_w), (d_h, d_w) = K.shape, stride, dilation
    out_h, out_w = methods.valid_shape(X.shape, K.shape, stride, dilation)
    rows, cols = (out_h - 1) * s_h + 1, (out_w - 1) * s_w + 1
    return _tree_sum(X[..., a * d_h:a * d_h + rows:s_h, b * d_w:b * d_w + cols:s_w] * K[a, b]
                     for a in range(h) for b in range(w))


def _direct_by_rows(X: jax.Array, K: jax.Array, stride: tuple[int, int], dilation: tuple[int, int]) -> jax.Array:
    """The sum of shifted slices with one kernel row per iteration of ``lax.fori_loop``.

    Why: XLA compiles one row's ``w`` taps instead of all ``h * w``, and fuses them well where the whole sum
    no longer fuses; each iteration is then a pass over the output.
    """
    (h, w), (s_h, s_w), (d_h, d_w) = K.shape, stride, dilation
    out_h, out_w = methods.valid_shape(X.shape, K.shape, stride, dilation)
    rows, cols = (out_h - 1) * s_h + 1, (out_w - 1) * s_w + 1

    def add_row(a: Any, Y: jax.Array) -> jax.Array:
        band, taps = lax.dynamic_slice_in_dim(X, a * d_h, rows, X.ndim - 2)[..., ::s_h, :], K[a]
        return Y + _tree_sum(band[..., b * d_w:b * d_w + cols:s_w] * taps[b] for b in range(w))

    return lax.fori_loop(0, h, add_row, jnp.zeros((*X.shape[:-2], out_h, out_w), X.dtype))


# Up to this many taps XLA fuses the whole sum of slices into one fast pass; beyond it the fused sum slows
# down several times (2048x2048: 0.62 s at k = 21, 1.37 s at k = 31; by rows 0.08 s and 0.18 s; at k = 15 the
# fused sum takes 58 ms, the rows 280 ms) and takes seconds to compile.
FUSED_MAX_TAPS = 225


def _direct_any(X: jax.Array, K: jax.Array, stride: tuple[int, int], dilation: tuple[int, int]) -> jax.Array:
    """The fused sum up to ``FUSED_MAX_TAPS`` kernel taps, the row loop beyond."""
    fused = K.shape[0] * K.shape[1] <= FUSED_MAX_TAPS
    return (_direct if fused else _direct_by_rows)(X, K, stride, dilation)


def _separable(X: jax.Array, column: jax.Array, row: jax.Array, stride: tuple[int, int],
               dilation: tuple[int, int]) -> jax.Array:
    """``methods.corr2d_separable`` (a row pass, then a column pass), each summed as a tree."""
    (h, w), (s_h, s_w), (d_h, d_w) = (column.shape[0], row.shape[0]), stride, dilation
    out_h, out_w = methods.valid_shape(X.shape, (h, w), stride, dilation)
    rows, cols = (out_h - 1) * s_h + 1, (out_w - 1) * s_w + 1
    Z = _tree_sum(X[..., :, b * d_w:b * d_w + cols:s_w] * row[b] for b in range(w))
    return _tree_sum(Z[..., a * d_h:a * d_h + rows:s_h, :] * column[a] for a in range(h))


def _fft_2d(X: jax.Array, K: jax.Array, stride: tuple[int, int]) -> jax.Array:
    """``methods.corr2d_fft``: rfft2 of ``X`` and of ``K`` on a 5-smooth grid, one irfft2, all in one jit.

    Multiplying by the *conjugate* kernel spectrum gives the circular cross-correlation directly (no flip);
    on a grid at least as large as ``X`` it is exact on the valid part, the top-left corner. XLA's CPU FFT
    (DUCC) runs in complex64 for float32 inputs. (Building the kernel's spectrum from its h x w nonzeros as
    two thin DFT matrix products measured no faster here: XLA's CPU complex dot is slow.)
    """
    s_h, s_w = stride
    out_h, out_w = methods.valid_shape(X.shape, K.shape, stride)
    grid = (methods.fast_length(X.shape[-2]), methods.fast_length(X.shape[-1]))
    full = jnp.fft.irfft2(jnp.fft.rfft2(X, s=grid) * jnp.conj(jnp.fft.rfft2(K, s=grid)), s=grid)
    return full[..., :(out_h - 1) * s_h + 1:s_h, :(out_w - 1) * s_w + 1:s_w]


def _fft_rows(X: jax.Array, K: jax.Array, stride: tuple[int, int]) -> jax.Array:
    """FFT along the width only, then the sum of ``h`` shifted rows along the height, then the inverse FFT.

    Why: a row FFT is cheap and cache-friendly, while the 2-D FFT's column pass is not; for kernels of up to
    ~31 rows, ``h`` fused complex multiply-adds per spectrum element cost less than the column passes
    (2048x2048: about 0.5x the 2-D path at k = 15, 0.9x at k = 31). Real and imaginary parts are kept
    apart so that XLA fuses plain float multiply-adds.
    """
    h, (s_h, s_w) = K.shape[0], stride
    out_h, out_w = methods.valid_shape(X.shape, K.shape, stride)
    rows, n = (out_h - 1) * s_h + 1, methods.fast_length(X.shape[-1])
    spectrum = jnp.fft.rfft(X, n=n, axis=-1)
    kernel = jnp.conj(jnp.fft.rfft(K, n=n, axis=-1))  # conjugate: the circular correlation along each row
    x_re, x_im, k_re, k_im = spectrum.real, spectrum.imag, kernel.real, kernel.imag
    re = _tree_sum(x_re[..., a:a + rows:s_h, :] * k_re[a] - x_im[..., a:a + rows:s_h, :] * k_im[a] for a in range(h))
    im = _tree_sum(x_re[..., a:a + rows:s_h, :] * k_im[a] + x_im[..., a:a + rows:s_h, :] * k_re[a] for a in range(h))
    return jnp.fft.irfft(lax.complex(re, im), n=n, axis=-1)[..., :(out_w - 1) * s_w + 1:s_w]


# _fft_rows costs ~h passes of the spectrum; beyond about this many kernel rows the 2-D FFT is cheaper
# (measured at 2048x2048: 0.9x at h = 31).
_FFT_ROWS_MAX = 32


def _fft(X: jax.Array, K: jax.Array, stride: tuple[int, int], dilation: tuple[int, int]) -> jax.Array:
    """The cheaper of the two exact FFT paths for this kernel's height (both differentiable); a dilated
    kernel is spread out with zeros first."""
    if dilation != ONE:
        K = methods.dilate(K, dilation, stack=stack, reshape=reshape)
    return (_fft_rows if K.shape[0] <= _FFT_ROWS_MAX else _fft_2d)(X, K, stride)


# The FFT method's derivative, written out: the correlation's linear map through the FFT (a custom_jvp, which
# JAX transposes for reverse mode, so jax.jvp and jax.grad both work). The tangent is corr2d(dX, K) +
# corr2d(X, dK), one spectrum product each and one inverse FFT; its transpose is a few FFTs again, fast to
# compile. (The direct method's derivative stays a direct sum, exact: zeros stay zeros, where the FFT would
# leave rounding noise; see _direct_jvp.)


def _tangent_fft(X: jax.Array, K: jax.Array, dX: jax.Array, dK: jax.Array, stride: tuple[int, int],
                 dilation: tuple[int, int]) -> jax.Array:
    """``corr2d(dX, K) + corr2d(X, dK)`` through one 2-D FFT grid (linear in ``dX`` and ``dK``)."""
    if dilation != ONE:
        K, dK = (methods.dilate(k, dilation, stack=stack, reshape=reshape) for k in (K, dK))
    s_h, s_w = stride
    out_h, out_w = methods.valid_shape(X.shape, K.shape, stride)
    grid = (methods.fast_length(X.shape[-2]), methods.fast_length(X.shape[-1]))
    spectrum = (jnp.fft.rfft2(dX, s=grid) * jnp.conj(jnp.fft.rfft2(K, s=grid))
                + jnp.fft.rfft2(X, s=grid) * jnp.conj(jnp.fft.rfft2(dK, s=grid)))
    full = jnp.fft.irfft2(spectrum, s=grid)
    return full[..., :(out_h - 1) * s_h + 1:s_h, :(out_w - 1) * s_w + 1:s_w]


@partial(jax.custom_jvp, nondiff_argnums=(2, 3))
def _direct_differentiable(X: jax.Array, K: jax.Array, stride: tuple[int, int],
                           dilation: tuple[int, int]) -> jax.Array:
    return _direct_any(X, K, stride, dilation)


@_direct_differentiable.defjvp
def _direct_jvp(stride: tuple[int, int], dilation: tuple[int, int], primals: tuple[jax.Array, jax.Array],
                tangents: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
    """The derivative JAX derives from the fused sum of slices (exact), also where the value takes the row
    loop (JAX's transpose of the loop itself ran far slower: 2048x2048, k = 15: 4 s per gradient); for small
    outputs with many taps, the same linear map through ``lax.conv_general_dilated``."""
    (X, K), (dX, dK) = primals, tangents
    out_h, out_w = methods.valid_shape(X.shape, K.shape, stride, dilation)
    if K.shape[0] * K.shape[1] > CONV_TANGENT_TAPS and math.prod(X.shape[:-2]) * out_h * out_w < CONV_TANGENT_OUTPUT:
        tangent = _native(dX, K, stride, dilation) + _native(X, dK, stride, dilation)
    else:
        tangent = _direct(dX, K, stride, dilation) + _direct(X, dK, stride, dilation)
    return _direct_any(X, K, stride, dilation), tangent


# Small outputs with many taps: the tangent through lax.conv_general_dilated, whose transpose XLA compiles as
# one convolution again (a first corr2d_gradients of 64x64 with a 15x15 kernel: 5-25 s through the slices'
# own derivative, which JAX transposes into h * w pads; ~0.3 s this way, and faster per call). A direct sum
# like the slices (exact: zeros stay zeros); on large outputs XLA's CPU convolution is slower than the fused
# slices (512x512, k = 15: 115 ms per gradient), so they keep the slices.
CONV_TANGENT_TAPS = 49
CONV_TANGENT_OUTPUT = 1 << 16


@partial(jax.custom_jvp, nondiff_argnums=(2, 3))
def _fft_differentiable(X: jax.Array, K: jax.Array, stride: tuple[int, int], dilation: tuple[int, int]) -> jax.Array:
    return _fft(X, K, stride, dilation)


@_fft_differentiable.defjvp
def _fft_jvp(stride: tuple[int, int], dilation: tuple[int, int], primals: tuple[jax.Array, jax.Array],
             tangents: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
    """The FFT method's derivative is the same linear map: derived by JAX through the row FFTs' h slices of
    the spectrum instead, it compiled for 3-5 s (a first gradient of 64x64 with 15x15 taps) and ran slower."""
    (X, K), (dX, dK) = primals, tangents
    return _fft(X, K, stride, dilation), _tangent_fft(X, K, dX, dK, stride, dilation)


# Compiled once per shape, dtype and stride (the stride is static: it decides the slices); each whole
# method is one jit, so XLA fuses the slices, products and sums around the FFTs.
_direct_jit = jax.jit(_direct_differentiable, static_argnums=(2, 3))
_separable_jit = jax.jit(_separable, static_argnums=(3, 4))
_fft_jit = jax.jit(_fft_differentiable, static_argnums=(2, 3))


def corr2d_direct(X: jax.Array, K: jax.Array, stride: tuple[int, int] = ONE,
                  dilation: tuple[int, int] = ONE) -> jax.Array:
    return _direct_jit(X, K, stride, dilation)


def corr2d_separable(X: jax.Array, column: jax.Array, row: jax.Array, stride: tuple[int, int] = ONE,
                     dilation: tuple[int, int] = ONE) -> jax.Array:
    return _separable_jit(X, column, row, stride, dilation)


def corr2d_fft(X: jax.Array, K: jax.Array, stride: tuple[int, int] = ONE, dilation: tuple[int, int] = ONE) -> jax.Array:
    return _fft_jit(X, K, stride, dilation)


@partial(jax.jit, static_argnums=(2, 3))
def _native(X: jax.Array, K: jax.Array, stride: tuple[int, int], dilation: tuple[int, int]) -> jax.Array:
    """``lax.conv_general_dilated`` with the tab's NHWC layout: the planes as images, one channel in and out."""
    lead, (H, W) = X.shape[:-2], X.shape[-2:]
    Y = lax.conv_general_dilated(
        X.reshape((-1, H, W, 1)), K[:, :, None, None], stride, "VALID", rhs_dilation=dilation,
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        precision=lax.Precision.HIGHEST,  # exact float32 on GPU/TPU too (their default rounds to bf16/tf32)
    )
    return Y.reshape((*lead, *Y.shape[1:3]))


def corr2d_native(X: jax.Array, K: jax.Array, stride: tuple[int, int] = ONE,
                  dilation: tuple[int, int] = ONE) -> jax.Array:
    return _native(X, K, stride, dilation)
