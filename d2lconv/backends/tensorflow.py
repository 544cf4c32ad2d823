"""The TensorFlow backend: the book's TensorFlow tab on TensorFlow 2 with Keras 3.

Tensors are ``tf.Tensor``; ``tf.Variable`` and Keras 3 variables (which are not ``tf.Variable``) are
accepted as inputs too. The vectorised methods are compiled with XLA (``tf.function(jit_compile=True)``),
which fuses the sum of shifted slices into one pass; ``Conv2D`` is a Keras layer and the learning loop
is one traced ``tf.function`` step per epoch, whose layer (the tab's ``tf.keras.layers.Conv2D``) convolves
through these methods.
"""

from __future__ import annotations

import sys
from functools import cache, partial
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow.python.eager import record  # the tapes' own check of whether a tensor is being watched

from d2lconv import methods
from d2lconv._corr import correlate
from d2lconv._inputs import as_tensor, framework_of, pair

NAME = "tensorflow"
NATIVE_TYPE = "tf.Tensor (tf.Variable and Keras variables are read as tensors)"
# XLA's fused sum of shifted slices met the XLA rfft2d correlation at 11x11 = 121 kernel taps, at 256x256, 512x512
# and 2048x2048 alike (tiled FFT above ~1500x1500); from 19x19 on the fused sum slows down ~15x (XLA gives up).
FFT_PASSES = 120
NATIVE_BELOW = 0  # tf.nn.conv2d never wins: on the book's 3x3 input it took 0.3 ms, the compiled direct 0.17 ms
NATIVE_TAPS = 0
_this = sys.modules[__name__]


def is_native(x: Any) -> bool:
    return isinstance(x, (tf.Tensor, tf.Variable, tf.keras.Variable))


def _tensor(x: Any) -> tf.Tensor:
    """A plain ``tf.Tensor``: reads a ``tf.Variable`` or Keras variable (the read is recorded by tapes)."""
    if isinstance(x, tf.keras.Variable):
        x = x.value
    return x if isinstance(x, tf.Tensor) else tf.convert_to_tensor(x)


def from_numpy(array: np.ndarray) -> tf.Tensor:
    return tf.constant(array)


def to_numpy(x: Any) -> np.ndarray:
    return _tensor(x).numpy()


def dtype_of(x: Any) -> np.dtype:
    return np.dtype(tf.as_dtype(x.dtype).as_numpy_dtype)


def cast(x: Any, dtype: np.dtype) -> tf.Tensor:
    return tf.cast(_tensor(x), tf.as_dtype(dtype))


def is_constant(x: Any) -> bool:
    """True for an eager tensor that no active ``GradientTape`` watches; variables are always trainable."""
    if isinstance(x, (tf.Variable, tf.keras.Variable)) or not tf.executing_eagerly():
        return False  # a variable can be watched at any time; a graph tensor can be differentiated later
    return not record.should_record_backprop([x])


def transpose(x: Any) -> tf.Tensor:
    return tf.transpose(_tensor(x))


def flip(x: Any) -> tf.Tensor:
    return tf.reverse(_tensor(x), axis=[0, 1])


def pad(x: Any, rows: tuple[int, int], cols: tuple[int, int]) -> tf.Tensor:
    return tf.pad(_tensor(x), [rows, cols])


def corr2d_loop(X: Any, K: Any) -> tf.Tensor:
    """Compute 2D cross-correlation (the book's loop, as in its TensorFlow tab)."""
    X, K = _tensor(X), _tensor(K)
    h, w = K.shape
    # The tab's tf.zeros is always float32; X's dtype keeps float64 inputs in float64.
    Y = tf.Variable(tf.zeros((X.shape[0] - h + 1, X.shape[1] - w + 1), dtype=X.dtype))
    for i in range(Y.shape[0]):
        for j in range(Y.shape[1]):
            Y[i, j].assign(tf.reduce_sum(
                X[i: i + h, j: j + w] * K))
    return tf.convert_to_tensor(Y)  # the tab returns the tf.Variable itself; callers get a plain tensor


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


def _kernel_gradient(X: tf.Tensor, G: tf.Tensor, kernel_shape: tuple[int, int], stride: tuple[int, int]) -> tf.Tensor:
    """The gradient of ``sum(G * corr2d(X, K))`` by ``K``: one sum of products per kernel element."""
    (h, w), (s_h, s_w) = kernel_shape, stride
    rows, cols = (G.shape[0] - 1) * s_h + 1, (G.shape[1] - 1) * s_w + 1
    sums = [tf.reduce_sum(X[a:a + rows:s_h, b:b + cols:s_w] * G) for a in range(h) for b in range(w)]
    return tf.reshape(tf.stack(sums), kernel_shape)


def _input_gradient(G: tf.Tensor, K: tf.Tensor, input_shape: tuple[int, int], stride: tuple[int, int]) -> tf.Tensor:
    """The gradient of ``sum(G * corr2d(X, K))`` by ``X``, as TensorFlow derives it from the sum of slices."""
    X = tf.zeros(input_shape, G.dtype)
    with tf.GradientTape() as tape:
        tape.watch(X)
        Y = methods.corr2d_direct(X, K, stride)
    return tape.gradient(Y, X, output_gradients=G)


# XLA's CPU reductions took ~0.7 ms per kernel element on 512x512, TensorFlow's own 0.25 ms: the kernel's
# gradient runs without XLA; the input's gradient is a sum of shifted slices again, which XLA fuses.
_kernel_gradient_graph = _per_shape(_kernel_gradient)
_input_gradient_xla = _per_shape(_input_gradient, jit_compile=True)


@cache
def _direct_with_gradient(stride: tuple[int, int]) -> Any:
    """The XLA-fused direct method with a gradient that runs each part where it is fastest.

    TensorFlow's own gradient of an XLA function recomputes both inputs' gradients inside XLA: about 20 ms
    for a 3x3 kernel on 512x512, against ~2.5 ms here (the input's gradient only when a tape watches it).
    """

    @tf.custom_gradient
    def direct(X: tf.Tensor, K: tf.Tensor) -> tuple[tf.Tensor, Any]:
        wants_input = not is_constant(X)

        def gradient(G: tf.Tensor) -> tuple[tf.Tensor | None, tf.Tensor]:
            dK = _kernel_gradient_graph(X, G, tuple(K.shape), stride)
            return (_input_gradient_xla(G, K, tuple(X.shape), stride) if wants_input else None), dK

        return _direct(X, K, stride), gradient

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
    (h, w), (H, W) = K.shape, X.shape
    out_h, out_w = H - h + 1, W - w + 1
    step_h, step_w = TILE - h + 1, TILE - w + 1
    n_h, n_w = -(-out_h // step_h), -(-out_w // step_w)
    X = tf.pad(X, [(0, (n_h - 1) * step_h + TILE - H), (0, (n_w - 1) * step_w + TILE - W)])
    tiles = tf.signal.frame(tf.signal.frame(X, TILE, step_h, axis=0), TILE, step_w, axis=2)  # (n_h, T, n_w, T)
    spectrum = tf.signal.rfft2d(tf.transpose(tiles, (0, 2, 1, 3))) * tf.signal.rfft2d(flip(K), (TILE, TILE))
    full = tf.signal.irfft2d(spectrum, (TILE, TILE))[:, :, h - 1:, w - 1:]  # wrap-around only in the first k - 1
    Y = tf.reshape(tf.transpose(full, (0, 2, 1, 3)), (n_h * step_h, n_w * step_w))
    return Y[:out_h:stride[0], :out_w:stride[1]]


def _rfft_corr2d_any(X: tf.Tensor, K: tf.Tensor, stride: tuple[int, int]) -> tf.Tensor:
    """Tiles for large images and kernels of at most a quarter tile, one whole-image FFT otherwise."""
    grid = methods.fast_length(X.shape[0]) * methods.fast_length(X.shape[1])
    if grid > TILED_ABOVE and 4 * max(K.shape) <= TILE:
        return _tiled_rfft_corr2d(X, K, stride)
    return _rfft_corr2d(X, K, stride)


# Untiled, XLA's FFT ran 2048x2048 with a 31x31 kernel in 0.16 s, TensorFlow's own kernels in 0.24 s.
_fft = _per_shape(_rfft_corr2d_any, jit_compile=True)


def _nhwc_conv2d(X: tf.Tensor, K: tf.Tensor, stride: tuple[int, int]) -> tf.Tensor:
    """``tf.nn.conv2d`` in the tab's NHWC layout: one example, one input and one output channel."""
    Y = tf.nn.conv2d(X[None, :, :, None], K[:, :, None, None], strides=(1, *stride, 1), padding="VALID")
    return Y[0, :, :, 0]


_conv2d = _per_shape(_nhwc_conv2d)


def corr2d_direct(X: Any, K: Any, stride: tuple[int, int] = (1, 1)) -> tf.Tensor:
    X, K = _tensor(X), _tensor(K)
    if is_constant(X) and is_constant(K):
        return _direct(X, K, stride)  # no gradient can flow: skip the custom gradient's bookkeeping
    return _direct_with_gradient(stride)(X, K)


def corr2d_separable(X: Any, column: Any, row: Any, stride: tuple[int, int] = (1, 1)) -> tf.Tensor:
    return _separable(_tensor(X), _tensor(column), _tensor(row), stride)


def corr2d_fft(X: Any, K: Any, stride: tuple[int, int] = (1, 1)) -> tf.Tensor:
    return _fft(_tensor(X), _tensor(K), stride)


def corr2d_native(X: Any, K: Any, stride: tuple[int, int] = (1, 1)) -> tf.Tensor:
    return _conv2d(_tensor(X), _tensor(K), stride)


class Conv2D(tf.keras.layers.Layer):
    """The book's ``Conv2D`` as a Keras 3 layer: ``corr2d(x, weight) + bias`` on a 2-D input."""

    # The tab's build(self, kernel_size) really receives the input shape (the weight became the size of
    # the image): kernel_size is taken here and the weights are made in build(input_shape).
    def __init__(self, kernel_size: tuple[int, int], *, bias: bool = True, seed: int | None = None,
                 padding: Any = 0, stride: Any = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.kernel_size = tuple(kernel_size)
        self.use_bias, self.seed = bias, seed
        self.padding, self.stride = padding, pair(stride, "stride", minimum=1)
        self.bias = None

    def build(self, input_shape: Any) -> None:
        # The tab's initialiser (random normal, stddev 0.05), seeded; the bias draws from the next seed,
        # since a seeded initialiser repeats its first numbers for every shape.
        initializer = tf.random_normal_initializer(seed=self.seed)
        self.weight = self.add_weight(name="weight", shape=self.kernel_size, initializer=initializer)
        if self.use_bias:
            initializer = tf.random_normal_initializer(seed=None if self.seed is None else self.seed + 1)
            self.bias = self.add_weight(name="bias", shape=(1,), initializer=initializer)

    def __call__(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        if not is_native(inputs) and framework_of(inputs) in (None, "numpy"):
            inputs = as_tensor(_this, inputs, "x")  # nested lists too, with d2lconv's errors
        return super().__call__(inputs, *args, **kwargs)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        Y = correlate(_this, inputs, self.weight, padding=self.padding, stride=self.stride)
        return Y if self.bias is None else Y + self.bias


class TabConv2D(tf.keras.layers.Conv2D):
    """The tab's ``tf.keras.layers.Conv2D`` (same variables, initialisers and config), convolving through corr2d.

    Keras 3 routes the layer's convolution through ``convolution_op``; on one image with one channel
    ``tf.nn.conv2d`` took ~25 ms per 512x512 forward, corr2d's fused sum of shifted slices ~0.5 ms.
    Anything else (batches, channels, padding, dilation, groups) goes to Keras's own op.
    """

    def convolution_op(self, inputs: Any, kernel: Any) -> tf.Tensor:
        shape = tuple(inputs.shape)
        if (isinstance(inputs, tf.Tensor) and len(shape) == 4 and None not in shape and shape[0] == shape[3] == 1
                and tuple(kernel.shape[2:]) == (1, 1) and self.padding == "valid"
                and self.data_format == "channels_last" and tuple(self.dilation_rate) == (1, 1) and self.groups == 1):
            # squeeze and expand_dims: eager reshapes to a Python shape cost ~3x more (the book's data is tiny)
            X, K = tf.squeeze(inputs, [0, 3]), tf.squeeze(_tensor(kernel), [2, 3])
            Y = correlate(_this, X, K, stride=tuple(self.strides))
            return tf.expand_dims(tf.expand_dims(Y, 0), 3)
        return super().convolution_op(inputs, kernel)


# Tracing the step costs ~0.1 s, more than the book's whole 10-epoch example takes eagerly (~3 ms an epoch):
# on images below EAGER_BELOW pixels the first EAGER_EPOCHS epochs run eagerly, larger ones trace at once.
EAGER_EPOCHS = 10
EAGER_BELOW = 256 * 256


class _Trainer:
    """The tab's learning loop, one traced ``tf.function`` step per epoch (small images: eager at first)."""

    def __init__(self, X: tf.Tensor, Y: tf.Tensor, conv2d: tf.keras.layers.Layer, lr: float,
                 kernel_size: tuple[int, int]) -> None:
        self.conv2d, self.kernel_size = conv2d, kernel_size
        self.epochs, self._traced = 0, None
        self.eager_epochs = EAGER_EPOCHS if X.shape.num_elements() < EAGER_BELOW else 0

        # The tab watches conv2d.weights[0], which raises on Keras 3 (its variables are not tf.Variable):
        # a default tape watches the trainable variables, and assign_sub updates them in place (on the
        # tf.Variable behind each Keras variable: Keras's own assign_sub took 3x longer, eagerly).
        def step() -> tf.Tensor:
            with tf.GradientTape() as g:
                Y_hat = conv2d(X)
                l = (Y_hat - Y) ** 2
            # Update the kernel
            for weight, grad in zip(conv2d.trainable_variables, g.gradient(l, conv2d.trainable_variables)):
                weight.value.assign_sub(lr * grad)
            return tf.reduce_sum(l)

        self._step = step

    def step(self) -> float:
        if self.epochs < self.eager_epochs:
            loss = self._step()
        else:
            if self._traced is None:
                self._traced = _compile(self._step)  # not XLA: it compiled for ~0.7 s and ran no faster
            loss = self._traced()
        self.epochs += 1
        return float(loss)

    def parameters(self) -> tuple[np.ndarray, float | None]:
        kernel, *bias = (to_numpy(weight) for weight in self.conv2d.trainable_variables)
        return kernel.reshape(self.kernel_size), float(bias[0][0]) if bias else None


def make_trainer(X: tf.Tensor, Y: tf.Tensor, kernel_size: tuple[int, int], *, layer: str, bias: bool,
                 init: str, seed: int | None, lr: float) -> _Trainer:
    """The tab's ``tf.keras.layers.Conv2D`` on NHWC tensors (``layer="builtin"``) or this ``Conv2D``."""
    X, Y = _tensor(X), _tensor(Y)
    dtype = X.dtype.name
    if layer == "builtin":
        initializer = "zeros" if init == "zeros" else tf.keras.initializers.GlorotUniform(seed=seed)
        conv2d = TabConv2D(1, kernel_size, use_bias=bias, kernel_initializer=initializer, dtype=dtype)
        # The layer uses four-dimensional input and output in the format of (example, height, width, channel)
        X = tf.reshape(X, (1, *X.shape, 1))
        Y = tf.reshape(Y, (1, *Y.shape, 1))
    else:
        conv2d = Conv2D(kernel_size, bias=bias, seed=seed, dtype=dtype)
    conv2d.build(X.shape)
    if init == "zeros":
        for weight in conv2d.trainable_variables:
            weight.assign(tf.zeros_like(weight))
    return _Trainer(X, Y, conv2d, lr, kernel_size)


def corr2d_vjp(X: Any, K: Any, G: Any, *, method: str, padding: Any,
               stride: tuple[int, int]) -> tuple[tf.Tensor, tf.Tensor]:
    """Gradients of ``sum(G * corr2d(X, K))`` by ``tf.GradientTape``."""
    if method == "loop":
        raise ValueError(
            "method='loop' is not differentiable on TensorFlow: the book's corr2d writes its output with "
            "tf.Variable.assign, which GradientTape does not record (the gradient would be None); use "
            "method='direct', 'fft', 'native' or 'auto'"
        )
    X, K = _tensor(X), _tensor(K)
    with tf.GradientTape() as tape:
        tape.watch([X, K])
        Y = correlate(_this, X, K, method=method, padding=padding, stride=stride)
        loss = tf.reduce_sum(tf.cast(_tensor(G), Y.dtype) * Y)
    dX, dK = tape.gradient(loss, [X, K])
    if dX is None or dK is None:
        raise ValueError(f"method={method!r} gave no gradient on TensorFlow (an operation the tape cannot record)")
    return dX, dK


def layer_vjp(layer: Conv2D, x: Any, G: Any) -> dict[str, tf.Tensor]:
    """Gradients of ``sum(G * layer(x))`` with respect to the layer's parameters, by name."""
    with tf.GradientTape() as tape:
        y = layer(x)
        loss = tf.reduce_sum(tf.cast(_tensor(G), y.dtype) * y)
    parameters = _named(layer)
    return dict(zip(parameters, tape.gradient(loss, list(parameters.values()))))


def _named(layer: Conv2D) -> dict[str, Any]:
    if not layer.built:
        layer.build(None)  # Keras makes weights at the first call; the weights do not depend on the input
    return {"weight": layer.weight} if layer.bias is None else {"weight": layer.weight, "bias": layer.bias}


def layer_parameters(layer: Conv2D) -> dict[str, np.ndarray]:
    """The layer's parameters as NumPy arrays, by name."""
    return {name: to_numpy(value) for name, value in _named(layer).items()}


def sparse_matrix(rows: np.ndarray, cols: np.ndarray, values: np.ndarray,
                  shape: tuple[int, int]) -> tf.sparse.SparseTensor:
    """A ``tf.sparse.SparseTensor`` (the entries arrive unique and in row-major order, as it needs)."""
    return tf.sparse.SparseTensor(np.stack([rows, cols], axis=1).astype(np.int64), tf.constant(values), shape)
