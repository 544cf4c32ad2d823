"""TensorFlow fast paths for ``corr2d``: the methods ``auto`` chooses between, and its cost-model numbers.

They compute the valid cross-correlation of an already padded input (see ``d2lconv.backends``).
"""

from __future__ import annotations

from functools import cache, partial
from typing import Any

import tensorflow as tf
from tensorflow.python import pywrap_tfe  # the forward accumulators' tangents (PackJVPs)
from tensorflow.python.eager import record  # pauses tapes and forward accumulators alike

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


def _direct_by_rows(X: tf.Tensor, K: tf.Tensor, stride: tuple[int, int], dilation: tuple[int, int]) -> tf.Tensor:
    """The sum of shifted slices with one kernel row per iteration of a loop (``tf.while_loop``).

    Why: XLA compiles one row's ``w`` taps instead of all ``h * w`` (15x15 on 64x64: ~0.2 s against ~0.8 s);
    each iteration is then a pass over the output, 2-3x slower than the fused sum, which only shows on large
    outputs, where the fused sum runs. Not differentiated by TensorFlow: ``_direct_with_gradient`` gives it
    its gradient.
    """
    (h, w), (s_h, s_w), (d_h, d_w) = K.shape, stride, dilation
    out_h, out_w = methods.valid_shape(X.shape, K.shape, stride, dilation)
    rows, cols = (out_h - 1) * s_h + 1, (out_w - 1) * s_w + 1
    lead = len(X.shape) - 2

    def add_row(a: tf.Tensor, Y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        band = tf.slice(X, [0] * lead + [a * d_h, 0], [-1] * lead + [rows, -1])[..., ::s_h, :]
        taps = tf.gather(K, a)
        return a + 1, Y + tf.add_n([band[..., b * d_w:b * d_w + cols:s_w] * taps[b] for b in range(w)])

    start = (tf.constant(0), tf.zeros(tuple(X.shape[:-2]) + (out_h, out_w), X.dtype))
    return tf.while_loop(lambda a, _: a < h, add_row, start, maximum_iterations=h)[1]


# XLA fuses the sum of shifted slices into a single pass over the input. Small outputs with many taps take
# the row loop instead, which compiles in a fraction of the time: a first call stays well under a second.
# So do kernels of more than FUSED_MAX_TAPS taps at any size: there XLA stops fusing the whole sum well
# (2048x2048 at k = 21: 1.4 s fused, 43 ms by rows; k = 31: 1.7 s against 81 ms; k = 15: 79 ms against 91 ms).
_direct_fused = _per_shape(methods.corr2d_direct, jit_compile=True)
_direct_rows = _per_shape(_direct_by_rows, jit_compile=True)
FUSED_TAPS = 49
FUSED_MAX_TAPS = 225
FUSED_OUTPUT = 1 << 16


def _direct(X: tf.Tensor, K: tf.Tensor, stride: tuple[int, int], dilation: tuple[int, int],
            rows: bool = True) -> tf.Tensor:
    """The fused sum up to ``FUSED_TAPS`` taps, and up to ``FUSED_MAX_TAPS`` on outputs (all planes together)
    of at least ``FUSED_OUTPUT`` elements; the row loop otherwise, unless ``rows`` is False."""
    out_h, out_w = methods.valid_shape(X.shape, K.shape, stride, dilation)
    planes = 1
    for n in X.shape[:-2]:
        planes *= int(n)
    taps = K.shape[0] * K.shape[1]
    fused = taps <= FUSED_TAPS or (taps <= FUSED_MAX_TAPS and planes * out_h * out_w >= FUSED_OUTPUT)
    return (_direct_fused if fused or not rows else _direct_rows)(X, K, stride, dilation)


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


def _dilate(G: tf.Tensor, stride: tuple[int, int]) -> tf.Tensor:
    """``G`` with ``stride - 1`` zeros between its elements (last two axes): the output gradient on the
    input's grid."""
    if stride == ONE:
        return G
    (s_h, s_w), lead, (g_h, g_w) = stride, tuple(G.shape[:-2]), tuple(G.shape[-2:])
    spread = tf.pad(G[..., :, None, :, None], [(0, 0)] * len(lead) + [(0, 0), (0, s_h - 1), (0, 0), (0, s_w - 1)])
    return tf.reshape(spread, lead + (g_h * s_h, g_w * s_w))[..., :(g_h - 1) * s_h + 1, :(g_w - 1) * s_w + 1]


def _kernel_gradient_fft(X: tf.Tensor, G: tf.Tensor, kernel_shape: tuple[int, int], stride: tuple[int, int],
                         dilation: tuple[int, int]) -> tf.Tensor:
    """The kernel's gradient as one correlation of ``X`` with the (dilated) output gradient, through the FFT.

    The spectra's products are summed over the leading axes before the one inverse FFT; the taps are
    ``dilation`` apart in the correlation, which is circular on a grid at least as large as ``X``, so the
    needed corner is free of wrap-around.
    """
    (h, w), (d_h, d_w) = kernel_shape, dilation
    D = _dilate(G, stride)
    grid = (methods.fast_length(X.shape[-2]), methods.fast_length(X.shape[-1]))
    product = tf.signal.rfft2d(X, fft_length=grid) * tf.math.conj(tf.signal.rfft2d(D, fft_length=grid))
    if len(X.shape) > 2:
        product = tf.reduce_sum(tf.reshape(product, (-1, *product.shape[-2:])), axis=0)
    full = tf.signal.irfft2d(product, fft_length=grid)
    return full[:(h - 1) * d_h + 1:d_h, :(w - 1) * d_w + 1:d_w]


def _input_gradient_direct(G: tf.Tensor, K: tf.Tensor, input_shape: tuple[int, ...], stride: tuple[int, int],
                           dilation: tuple[int, int]) -> tf.Tensor:
    """The input's gradient as one direct correlation of the padded (dilated) output gradient with the flipped
    kernel: compiled as a forward pass (the row loop for small outputs), and exact where the FFT would leave
    rounding noise (an input pixel outside every window gets exactly zero)."""
    span_h, span_w = methods.dilated_shape(tuple(K.shape), dilation)
    H, W = input_shape[-2:]
    D = _dilate(G, stride)
    lead = [(0, 0)] * (len(D.shape) - 2)
    padded = tf.pad(D, lead + [(span_h - 1, H - D.shape[-2]), (span_w - 1, W - D.shape[-1])])
    return _direct(padded, flip(K), ONE, dilation)


# Up to this many kernel taps the gradients are sums of shifted slices as above. Beyond it the kernel's gradient
# is one correlation through the FFT and the input's a forward direct correlation: each compiles in a fraction
# of a second where XLA took seconds over the slices' own gradient (a first corr2d_gradients of 64x64 with
# 15x15 taps: 2.4 s; 0.3-0.9 s this way), and runs faster from about 30 taps on (kernel's gradient by FFT,
# 512x512: 5.0 against 5.2 ms at k = 5, 10.3 against 5.3 ms at k = 7). The input's gradient stays a direct sum,
# not an FFT (1.2-1.7x faster still): exact, so that an input pixel outside every window gets exactly zero
# and a NaN in grad_output stays in its own windows.
GRADIENT_FFT_TAPS = 30


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
            small = K.shape[0] * K.shape[1] <= GRADIENT_FFT_TAPS
            kernel_gradient = _kernel_gradient_graph if small else _kernel_gradient_fft_xla
            input_gradient = _input_gradient_xla if small else _input_gradient_direct
            dK = kernel_gradient(X, G, tuple(K.shape), stride, dilation)
            return (input_gradient(G, K, tuple(X.shape), stride, dilation) if wants_input else None), dK

        # Tapes and forward accumulators record this function through its custom gradient only. Recorded,
        # the XLA call would also get its own forward-and-backward pair, which XLA compiles (64x64 with a
        # 15x15 kernel: 5-10 s on a first call), and forward mode would differentiate the row loop (which
        # XLA cannot).
        with record.stop_recording():
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
_kernel_gradient_fft_xla = _per_shape(_kernel_gradient_fft, jit_compile=True)


def corr2d_direct(X: Any, K: Any, stride: tuple[int, int] = ONE, dilation: tuple[int, int] = ONE) -> tf.Tensor:
    X, K = _tensor(X), _tensor(K)
    if is_constant(X) and is_constant(K):  # no tape watches them: skip the custom gradient's bookkeeping
        # A forward accumulator (forward mode) differentiates the XLA call itself, which it can for the fused
        # sum, not through the row loop's XLA while loop.
        return _direct(X, K, stride, dilation, rows=not _has_tangents(X, K))
    return _direct_with_gradient(stride, dilation)(X, K)


def _has_tangents(*tensors: tf.Tensor) -> bool:
    """Whether a ``tf.autodiff.ForwardAccumulator`` has a tangent for any of ``tensors`` (tapes do not count)."""
    return record.could_possibly_record() and bool(pywrap_tfe.TFE_Py_PackJVPs(list(tensors))[1])


def corr2d_separable(X: Any, column: Any, row: Any, stride: tuple[int, int] = ONE,
                     dilation: tuple[int, int] = ONE) -> tf.Tensor:
    return _separable(_tensor(X), _tensor(column), _tensor(row), stride, dilation)


def corr2d_fft(X: Any, K: Any, stride: tuple[int, int] = ONE, dilation: tuple[int, int] = ONE) -> tf.Tensor:
    return _fft(_tensor(X), _tensor(K), stride, dilation)


def corr2d_native(X: Any, K: Any, stride: tuple[int, int] = ONE, dilation: tuple[int, int] = ONE) -> tf.Tensor:
    return _conv2d(_tensor(X), _tensor(K), stride, dilation)
