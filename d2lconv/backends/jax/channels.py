"""JAX over channels: ``lax.conv_general_dilated`` as ``method="native"``, d2lconv's methods under ``jax.jit``,
and ``auto``'s numbers.

XLA's CPU convolution is strong with many channels and slow with one (84x slower than the jitted sum of
shifted slices on a single-channel 2048x2048 image, k = 3). With one input channel per group (filter banks,
batches, depthwise) d2lconv's methods run the whole bank in one fused, compiled pass.
"""

from __future__ import annotations

import sys
from functools import partial
from typing import Any

import jax
from jax import lax
from jax import numpy as jnp

from d2lconv import channel_methods
from d2lconv._auto import ChannelAuto, choose_bank_method
from d2lconv.backends.jax import tensors

CHANNEL_AUTO = ChannelAuto(native_from=2)


def _compute(method: str, X: jax.Array, K: Any, stride: tuple[int, int], dilation: tuple[int, int],
             groups: int) -> jax.Array:
    """``method`` of ``channel_methods`` on a padded, channels-first ``X`` (``K`` is the factors for separable)."""
    if method == "separable":
        return channel_methods.separable(tensors, X, *K, stride, dilation, groups)
    if method == "fft":
        return channel_methods.fft(tensors, X, K, stride, dilation, groups, rfft2=lambda x, s: jnp.fft.rfft2(x, s=s),
                                   irfft2=lambda x, s: jnp.fft.irfft2(x, s=s), conj=jnp.conj)
    return channel_methods.direct(tensors, X, K, stride, dilation, groups)


@partial(jax.jit, static_argnums=(0, 3, 4, 5, 6, 7))
def _compiled(method: str, X: jax.Array, K: Any, stride: tuple[int, int], dilation: tuple[int, int], groups: int,
              padding: tuple[tuple[int, int], tuple[int, int]], channels_last: bool) -> jax.Array:
    """One compiled call per method, shapes and options: the layout moves, the padding and the sums over taps
    fuse into one pass."""
    last = None if method != "direct" else (  # channels last stays channels last under XLA (1.25x faster)
        lambda X: channel_methods.direct_last(tensors, X, K, stride, dilation, groups))
    return channel_methods.in_layout(tensors, lambda X: _compute(method, X, K, stride, dilation, groups), X,
                                     padding, channels_last, last)


def corr2d_channels(X: jax.Array, K: jax.Array, stride: tuple[int, int], dilation: tuple[int, int], groups: int,
                    padding: tuple[tuple[int, int], tuple[int, int]], channels_last: bool, method: str,
                    factors: Any = None) -> jax.Array:
    """d2lconv's ``method`` (``"direct"``, ``"separable"``, ``"fft"`` or ``"per_kernel"``) on ``X`` in its layout.
    ``"per_kernel"`` runs the whole bank in one compiled call (XLA fuses it)."""
    if method == "per_kernel":
        adapter = sys.modules[__package__]
        size = X.size // X.shape[-1 if channels_last else -3]
        method = choose_bank_method(adapter, K, size * K.shape[0])
        if method == "separable":
            from d2lconv._channels import _bank_factors

            factors = _bank_factors(adapter, K)
    return _compiled(method, X, tuple(factors) if method == "separable" else K, stride, dilation, groups, padding,
                     channels_last)


@partial(jax.jit, static_argnums=(2, 3, 4, 5, 6))
def _native(X: jax.Array, K: jax.Array, stride: tuple[int, int], dilation: tuple[int, int], groups: int,
            padding: tuple[tuple[int, int], tuple[int, int]], channels_last: bool) -> jax.Array:
    """``lax.conv_general_dilated`` in the input's own layout (XLA takes either), leading axes flattened."""
    lead = X.shape[:-3]
    layout = "NHWC" if channels_last else "NCHW"
    Y = lax.conv_general_dilated(  # the kernel as HWIO, Flax's layout (OIHW ran 5-10% slower on the CPU)
        X.reshape((-1, *X.shape[-3:])), jnp.transpose(K, (2, 3, 1, 0)), stride, padding, rhs_dilation=dilation,
        dimension_numbers=(layout, "HWIO", layout), feature_group_count=groups,
        precision=lax.Precision.HIGHEST,  # exact float32 on GPU/TPU too (their default rounds to bf16/tf32)
    )
    return Y.reshape((*lead, *Y.shape[1:]))


def corr2d_channels_native(X: jax.Array, K: jax.Array, stride: tuple[int, int], dilation: tuple[int, int],
                           groups: int, padding: tuple[tuple[int, int], tuple[int, int]],
                           channels_last: bool) -> jax.Array:
    return _native(X, K, stride, dilation, groups, padding, channels_last)
