"""TensorFlow fast paths for ``corr2d``: the methods ``auto`` chooses between, and its cost-model numbers.

They compute the valid cross-correlation of an already padded input (see ``d2lconv.backends``).
"""

from __future__ import annotations

from functools import cache, partial
from typing import Any

import tensorflow as tf

from d2lconv import methods
from d2lconv.backends.tensorflow.tensors import _tensor, flip, is_constant, reshape, stack

# XLA's fused sum of shifted slices met the XLA rfft2d correlation at 11x11 = 121 kernel taps, at 256x256, 512x512
# and 2048x2048 alike (tiled FFT above ~1500x1500); from 19x19 on the fused sum slows down ~15x (XLA gives up).
FFT_PASSES = 120
NATIVE_BELOW = 0  # tf.nn.conv2d never wins: on the book's 3x3 input it took 0.3 ms, the compiled direct 0.17 ms
NATIVE_TAPS = 0
ONE = (1, 1)

_compile = partial(tf.function, autograph=False)  # no AutoGraph: nothing here branches on tensor values


def _per_shape(function: Any, **options: Any) -> Any:
    """``function`` traced (and with ``jit_compile=True`` XLA-compiled) once per shapes, dtypes and stride.

    The stride is a Python tuple, so it is static. XLA needs static shapes, so every new shape is a new
    trace; calling the cached concrete function skips ``tf.function``'s argument binding and its
    "excessive retracing" warning, which would only be noise for a user with images of many sizes.
    """
    traced = _compile(function, **options)
    cache: dict[tuple, Any] = {}

    def call(*args: Any) -> tf.Tensor:
        key = tuple((tuple(a.shape), a.dtype) if isinstance(a, tf.Tensor) else a for a in args)
        concrete = cache.get(key)
        if concrete is None:
            concrete = cache[key] = traced.get_concrete_function(*args)
        # The flat call skips re-binding the arguments to the signature, which took longer (~0.1 ms) than a
        # small input's whole computation; the tensors are already the ones it was traced for.
        return concrete._call_flat([a for a in args if isinstance(a, tf.Tensor)], concrete.captured_inputs)

    return call


# XLA fuses the sum of shifted slices into a single pass over the input.
_direct = _per_shape(methods.corr2d_direct, jit_compile=True)


def _kernel_gradient(X: tf.Tensor, G: tf.Tensor, kernel_shape: tuple[int, int], stride: tuple[int, int],
                     dilation: tuple[int, int]) -> tf.Tensor:
    """The gradient of ``sum(G * corr2d(X, K))`` by ``K``: one sum of products per kernel element
    (over the leading axes too)."""
    (h, w), (s_h, s_w), (d_h, d_w) = kernel_shape, stride, dilation
    rows, cols = (G.shape[-2] - 1) * s_h + 1, (G.shape[-1] - 1) * s_w + 1
    sums = [tf.reduce_sum(X[..., a * d_h:a * d_h + rows:s_h, b * d_w:b * d_w + cols:s_w] * G)
            for a in range(h) for b in range(w)]
    return tf.reshape(tf.stack(sums), kernel_shape)


def _input_gradient(G: tf.Tensor, K: tf.Tensor, input_shape: tuple[int, ...], stride: tuple[int, int],
                    dilation: tuple[int, int]) -> tf.Tensor:
    """The gradient of ``sum(G * corr2d(X, K))`` by ``X``, as TensorFlow derives it from the sum of slices."""
    X = tf.zeros(input_shape, G.dtype)
    with tf.GradientTape() as tape:
        tape.watch(X)
        Y = methods.corr2d_direct(X, K, stride, dilation)
    return tape.gradient(Y, X, output_gradients=G)


# XLA's CPU reductions took ~0.7 ms per kernel element on 512x512, TensorFlow's own 0.25 ms: the kernel's
# gradient runs without XLA; the input's gradient is a sum of shifted slices again, which XLA fuses.
_kernel_gradient_graph = _per_shape(_kernel_gradient)
_input_gradient_xla = _per_shape(_input_gradient, jit_compile=True)


@cache
def _direct_with_gradient(stride: tuple[int, int], dilation: tuple[int, int]) -> Any:
    """The XLA-fused direct method with a gradient that runs each part where it is fastest.

    TensorFlow's own gradient of an XLA function recomputes both inputs' gradients inside XLA: about 20 ms
    for a 3x3 kernel on 512x512, against ~2.5 ms here (the input's gradient only when a tape watches it).
    """

    @tf.custom_gradient
    def direct(X: tf.Tensor, K: tf.Tensor) -> tuple[tf.Tensor, Any]:
        wants_input = not is_constant(X)

        def gradient(G: tf.Tensor) -> tuple[tf.Tensor | None, tf.Tensor]:
            dK = _kernel_gradient_graph(X, G, tuple(K.shape), stride, dilation)
            return (_input_gradient_xla(G, K, tuple(X.shape), stride, dilation) if wants_input else None), dK

        return _direct(X, K, stride, dilation), gradient

    return direct


_separable = _per_shape(methods.corr2d_separable, jit_compile=True)


def _rfft_corr2d(X: tf.Tensor, K: tf.Tensor, stride: tuple[int, int]) -> tf.Tensor:
    """The shared FFT method with TensorFlow's real FFT (``fft_length`` zero-pads to the fast grid)."""
    return methods.corr2d_fft(
        X, K, stride,
        rfft2=lambda x, s: tf.signal.rfft2d(x, fft_length=s),
        irfft2=lambda x, s: tf.signal.irfft2d(x, fft_length=s),
        flip=flip,
    )


# Above about 1500x1500 the whole image's spectrum (16 MB or more) falls out of cache: FFTs of 256x256 tiles
# that overlap by the kernel's size (overlap-save) ran 2048x2048 with a 31x31 kernel 20-30% faster.
TILE = 256
TILED_ABOVE = 1 << 21


def _tiled_rfft_corr2d(X: tf.Tensor, K: tf.Tensor, stride: tuple[int, int]) -> tf.Tensor:
    """Overlap-save: each ``TILE``-square tile gives ``TILE - k + 1`` valid rows and columns of the output."""
    (h, w), lead, (H, W) = K.shape, tuple(X.shape[:-2]), tuple(X.shape[-2:])
    out_h, out_w = H - h + 1, W - w + 1
    step_h, step_w = TILE - h + 1, TILE - w + 1
    n_h, n_w = -(-out_h // step_h), -(-out_w // step_w)
    X = tf.reshape(X, (-1, H, W))
    X = tf.pad(X, [(0, 0), (0, (n_h - 1) * step_h + TILE - H), (0, (n_w - 1) * step_w + TILE - W)])
    tiles = tf.signal.frame(tf.signal.frame(X, TILE, step_h, axis=1), TILE, step_w, axis=3)  # (B, n_h, T, n_w, T)
    spectrum = tf.signal.rfft2d(tf.transpose(tiles, (0, 1, 3, 2, 4))) * tf.signal.rfft2d(flip(K), (TILE, TILE))
    full = tf.signal.irfft2d(spectrum, (TILE, TILE))[..., h - 1:, w - 1:]  # wrap-around only in the first k - 1
    Y = tf.reshape(tf.transpose(full, (0, 1, 3, 2, 4)), (-1, n_h * step_h, n_w * step_w))
    Y = Y[:, :out_h:stride[0], :out_w:stride[1]]
    return tf.reshape(Y, lead + tuple(Y.shape[-2:]))


def _rfft_corr2d_any(X: tf.Tensor, K: tf.Tensor, stride: tuple[int, int], dilation: tuple[int, int]) -> tf.Tensor:
    """Tiles for large images and kernels of at most a quarter tile, one whole-image FFT otherwise."""
    if dilation != ONE:
        K = methods.dilate(K, dilation, stack=stack, reshape=reshape)
    grid = methods.fast_length(X.shape[-2]) * methods.fast_length(X.shape[-1])
    if grid > TILED_ABOVE and 4 * max(K.shape) <= TILE:
        return _tiled_rfft_corr2d(X, K, stride)
    return _rfft_corr2d(X, K, stride)


# Untiled, XLA's FFT ran 2048x2048 with a 31x31 kernel in 0.16 s, TensorFlow's own kernels in 0.24 s.
_fft = _per_shape(_rfft_corr2d_any, jit_compile=True)


def _nhwc_conv2d(X: tf.Tensor, K: tf.Tensor, stride: tuple[int, int], dilation: tuple[int, int]) -> tf.Tensor:
    """``tf.nn.conv2d`` in the tab's NHWC layout: the planes as examples, one input and one output channel."""
    lead, (H, W) = tuple(X.shape[:-2]), tuple(X.shape[-2:])
    X, K = tf.reshape(X, (-1, H, W, 1)), K[:, :, None, None]
    if dilation == ONE:
        Y = tf.nn.conv2d(X, K, strides=(1, *stride, 1), padding="VALID")
    else:  # conv2d's backward refuses dilations on the CPU; convolution's works (and refuses a stride beside them)
        Y = tf.nn.convolution(X, K, padding="VALID", dilations=dilation)[:, ::stride[0], ::stride[1]]
    return tf.reshape(Y, lead + tuple(Y.shape[1:3]))


_conv2d = _per_shape(_nhwc_conv2d)


def corr2d_direct(X: Any, K: Any, stride: tuple[int, int] = ONE, dilation: tuple[int, int] = ONE) -> tf.Tensor:
    X, K = _tensor(X), _tensor(K)
    if is_constant(X) and is_constant(K):
        return _direct(X, K, stride, dilation)  # no gradient can flow: skip the custom gradient's bookkeeping
    return _direct_with_gradient(stride, dilation)(X, K)


def corr2d_separable(X: Any, column: Any, row: Any, stride: tuple[int, int] = ONE,
                     dilation: tuple[int, int] = ONE) -> tf.Tensor:
    return _separable(_tensor(X), _tensor(column), _tensor(row), stride, dilation)


def corr2d_fft(X: Any, K: Any, stride: tuple[int, int] = ONE, dilation: tuple[int, int] = ONE) -> tf.Tensor:
    return _fft(_tensor(X), _tensor(K), stride, dilation)


def corr2d_native(X: Any, K: Any, stride: tuple[int, int] = ONE, dilation: tuple[int, int] = ONE) -> tf.Tensor:
    return _conv2d(_tensor(X), _tensor(K), stride, dilation)
