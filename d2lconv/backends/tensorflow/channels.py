"""TensorFlow over channels: ``tf.nn.conv2d`` as ``method="native"``, d2lconv's methods compiled with XLA,
and ``auto``'s numbers.

``tf.nn.conv2d`` (NHWC, oneDNN) is strong with many channels and slow with one: on a single-channel image
XLA's fused sum of shifted slices ran 18x faster. With one input channel per group (filter banks, batches,
depthwise) d2lconv's methods run the whole bank in one XLA-fused pass.
"""

from __future__ import annotations

import sys
from typing import Any

import tensorflow as tf

from d2lconv import channel_methods
from d2lconv._auto import ChannelAuto, choose_bank_method
from d2lconv.backends.tensorflow import tensors
from d2lconv.backends.tensorflow.kernels import _per_shape
from d2lconv.backends.tensorflow.tensors import _tensor

CHANNEL_AUTO = ChannelAuto(native_from=2, native_depthwise=True, native_below=1 << 14)
ONE = (1, 1)


def _compute(method: str, X: tf.Tensor, K: Any, stride: tuple[int, int], dilation: tuple[int, int],
             groups: int) -> tf.Tensor:
    """``method`` of ``channel_methods`` on a padded, channels-first ``X`` (``K`` is the factors for separable)."""
    if method == "separable":
        return channel_methods.separable(tensors, X, *K, stride, dilation, groups)
    if method == "fft":
        return channel_methods.fft(tensors, X, K, stride, dilation, groups,
                                   rfft2=lambda x, s: tf.signal.rfft2d(x, fft_length=s),
                                   irfft2=lambda x, s: tf.signal.irfft2d(x, fft_length=s), conj=tf.math.conj)
    return channel_methods.direct(tensors, X, K, stride, dilation, groups)


def _graph(method: str, X: tf.Tensor, K: tf.Tensor, columns: tf.Tensor, rows: tf.Tensor, stride: tuple[int, int],
           dilation: tuple[int, int], groups: int, padding: tuple[tuple[int, int], tuple[int, int]],
           channels_last: bool) -> tf.Tensor:
    weights = (columns, rows) if method == "separable" else K
    last = None if method != "direct" else (  # channels last stays channels last under XLA (1.25x faster)
        lambda X: channel_methods.direct_last(tensors, X, K, stride, dilation, groups))
    return channel_methods.in_layout(tensors, lambda X: _compute(method, X, weights, stride, dilation, groups), X,
                                     padding, channels_last, last)


# Compiled once per method, shapes, dtypes and options; XLA fuses the layout moves, the padding and the sums.
_compiled = _per_shape(_graph, jit_compile=True)


def corr2d_channels(X: Any, K: Any, stride: tuple[int, int], dilation: tuple[int, int], groups: int,
                    padding: tuple[tuple[int, int], tuple[int, int]], channels_last: bool, method: str,
                    factors: Any = None) -> tf.Tensor:
    """d2lconv's ``method`` (``"direct"``, ``"separable"``, ``"fft"`` or ``"per_kernel"``) on ``X`` in its layout.
    ``"per_kernel"`` runs the whole bank in one compiled call (XLA fuses it)."""
    X, K = _tensor(X), _tensor(K)
    if method == "per_kernel":
        adapter = sys.modules[__package__]
        size = X.shape.num_elements() // int(X.shape[-1 if channels_last else -3])
        method = choose_bank_method(adapter, K, size * int(K.shape[0]))
        if method == "separable":
            from d2lconv._channels import _bank_factors

            factors = _bank_factors(adapter, K)
    columns, rows = (_tensor(f) for f in factors) if method == "separable" else (K, K)
    return _compiled(method, X, K, columns, rows, stride, dilation, groups, padding, channels_last)


def _nhwc_convolution(X: tf.Tensor, K: tf.Tensor, stride: tuple[int, int], dilation: tuple[int, int],
                      padding: tuple[tuple[int, int], tuple[int, int]], groups: int) -> tf.Tensor:
    """TensorFlow's own ops on NHWC and HWIO, each where its CPU gradient exists.

    ``tf.nn.conv2d`` runs grouped convolutions forward but has no CPU gradient for them, nor for a dilation:
    depthwise kernels go to ``tf.nn.depthwise_conv2d``, other groups are split into one ``conv2d`` each, and a
    dilated kernel goes through ``tf.nn.convolution`` (a dilation with a stride is refused, or warned
    about, so the stride is taken after).
    """
    if padding != ((0, 0), (0, 0)):
        X = tf.pad(X, [(0, 0), padding[0], padding[1], (0, 0)])
    dilated = dilation != (1, 1)
    strides = (1, 1, 1, 1) if dilated else (1, *stride, 1)
    h, w, per_group, out_channels = K.shape
    if groups > 1 and per_group == 1:  # depthwise: the kernel as (h, w, C, multiplier), output c * m + j
        Y = tf.nn.depthwise_conv2d(X, tf.reshape(K, (h, w, groups, out_channels // groups)), strides, "VALID",
                                   dilations=dilation)
    elif groups > 1:
        Y = tf.concat([_nhwc_convolution(x, k, ONE if dilated else stride, dilation, ((0, 0), (0, 0)), 1)
                       for x, k in zip(tf.split(X, groups, axis=3), tf.split(K, groups, axis=3))], axis=3)
    elif dilated:
        Y = tf.nn.convolution(X, K, padding="VALID", dilations=dilation)
    else:
        Y = tf.nn.conv2d(X, K, strides=strides, padding="VALID")
    return Y[:, ::stride[0], ::stride[1], :] if dilated else Y


def _native_graph(X: tf.Tensor, K: tf.Tensor, stride: tuple[int, int], dilation: tuple[int, int], groups: int,
                  padding: tuple[tuple[int, int], tuple[int, int]], channels_last: bool) -> tf.Tensor:
    """``tf.nn.conv2d`` on NHWC with an HWIO kernel (TensorFlow's layouts), leading axes flattened."""
    lead = tuple(X.shape[:-3])
    X = tf.reshape(X, (-1, *X.shape[-3:]))
    if not channels_last:
        X = tf.transpose(X, (0, 2, 3, 1))
    Y = _nhwc_convolution(X, tf.transpose(K, (2, 3, 1, 0)), stride, dilation, padding, groups)
    if not channels_last:
        Y = tf.transpose(Y, (0, 3, 1, 2))
    return tf.reshape(Y, (*lead, *Y.shape[1:]))


_native = _per_shape(_native_graph)


def corr2d_channels_native(X: Any, K: Any, stride: tuple[int, int], dilation: tuple[int, int], groups: int,
                           padding: tuple[tuple[int, int], tuple[int, int]], channels_last: bool) -> tf.Tensor:
    return _native(_tensor(X), _tensor(K), stride, dilation, groups, padding, channels_last)
