"""The book's TensorFlow tab: its ``corr2d`` loop, its ``Conv2D`` layer and its learning loop.

The fast methods live in ``kernels.py`` beside this file; this module reads like the tab.
"""

from __future__ import annotations

import sys
from functools import partial
from typing import Any

import numpy as np
import tensorflow as tf

from d2lconv._channels import correlate_channels
from d2lconv._corr import correlate
from d2lconv._inputs import as_tensor, framework_of, pair
from d2lconv._layers import Correlation
from d2lconv.backends.tensorflow.kernels import _compile
from d2lconv.backends.tensorflow.tensors import _tensor, is_native, to_numpy

# The adapter package this tab belongs to: the common API is called with it (``correlate(_this, ...)``).
_this = sys.modules[__package__]


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


class Conv2D(tf.keras.layers.Layer):
    """The book's ``Conv2D`` as a Keras 3 layer: ``corr2d(x, weight) + bias`` on a 2-D input.

    With ``channels=(in, out, groups)`` the weight is ``(out, in // groups, h, w)``, the bias ``(out,)``, and
    the layer computes ``corr2d_multi_in_out(x, weight, groups=groups) + bias``.
    """

    # The tab's build(self, kernel_size) really receives the input shape (the weight became the size of
    # the image): kernel_size is taken here and the weights are made in build(input_shape).
    def __init__(self, kernel_size: tuple[int, int], *, bias: bool = True, seed: int | None = None,
                 padding: Any = 0, stride: Any = 1, dilation: Any = (1, 1), channels: Any = None,
                 data_format: str = "channels_first", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.conv = Correlation(tuple(kernel_size), channels, padding, pair(stride, "stride", minimum=1),
                                tuple(dilation), data_format)
        self.kernel_size = self.conv.kernel_size
        self.use_bias, self.seed = bias, seed
        self.bias = None

    def build(self, input_shape: Any) -> None:
        # The tab's initialiser (random normal, stddev 0.05), seeded; the bias draws from the next seed,
        # since a seeded initialiser repeats its first numbers for every shape.
        initializer = tf.random_normal_initializer(seed=self.seed)
        self.weight = self.add_weight(name="weight", shape=self.conv.weight_shape, initializer=initializer)
        if self.use_bias:
            initializer = tf.random_normal_initializer(seed=None if self.seed is None else self.seed + 1)
            self.bias = self.add_weight(name="bias", shape=self.conv.bias_shape, initializer=initializer)

    def __call__(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        if not is_native(inputs) and framework_of(inputs) in (None, "numpy"):
            inputs = as_tensor(_this, inputs, "x")  # nested lists too, with d2lconv's errors
        return super().__call__(inputs, *args, **kwargs)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        return self.conv(_this, inputs, self.weight, self.bias)  # corr2d(inputs, self.weight) + self.bias


class TabConv2D(tf.keras.layers.Conv2D):
    """The tab's ``tf.keras.layers.Conv2D`` (same variables, initialisers and config), convolving through d2lconv.

    Keras 3 routes the layer's convolution through ``convolution_op``; on one image with one channel
    ``tf.nn.conv2d`` took ~25 ms per 512x512 forward, corr2d's fused sum of shifted slices ~0.5 ms. Valid,
    undilated convolutions of batches and channels go to ``corr2d_multi_in_out``, whose ``auto`` takes
    TensorFlow's own op where it is the faster; anything else (padding, dilation) goes to Keras's own op.
    """

    def convolution_op(self, inputs: Any, kernel: Any) -> tf.Tensor:
        shape = tuple(inputs.shape)
        if not (isinstance(inputs, tf.Tensor) and len(shape) == 4 and None not in shape and self.padding == "valid"
                and self.data_format == "channels_last" and tuple(self.dilation_rate) == (1, 1)):
            return super().convolution_op(inputs, kernel)
        if shape[0] == shape[3] == 1 and tuple(kernel.shape[2:]) == (1, 1):  # the tab's one image, one channel
            # squeeze and expand_dims: eager reshapes to a Python shape cost ~3x more (the book's data is tiny)
            X, K = tf.squeeze(inputs, [0, 3]), tf.squeeze(_tensor(kernel), [2, 3])
            Y = correlate(_this, X, K, stride=tuple(self.strides))
            return tf.expand_dims(tf.expand_dims(Y, 0), 3)
        K = tf.transpose(_tensor(kernel), (3, 2, 0, 1))  # Keras's (h, w, in, out) as the book's (out, in, h, w)
        return correlate_channels(_this, inputs, K, groups=self.groups, stride=tuple(self.strides),
                                  data_format="channels_last")


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

    def parameters(self) -> tuple[np.ndarray, np.ndarray | None]:
        kernel, *bias = (to_numpy(weight) for weight in self.conv2d.trainable_variables)
        if isinstance(self.conv2d, TabConv2D):
            kernel = kernel.transpose(3, 2, 0, 1)  # Keras's (h, w, in, out) as the book's (out, in, h, w)
        return kernel, bias[0] if bias else None


def make_trainer(X: tf.Tensor, Y: tf.Tensor, kernel_size: tuple[int, int], *, layer: str, bias: bool,
                 init: str, seed: int | None, lr: float, channels: tuple[int, int] | None = None) -> _Trainer:
    """The tab's ``tf.keras.layers.Conv2D`` on NHWC tensors (``layer="builtin"``) or this ``Conv2D``;
    ``channels=(in, out)`` learns an ``(out, in, h, w)`` kernel."""
    X, Y = _tensor(X), _tensor(Y)
    dtype = X.dtype.name
    if layer == "builtin":
        initializer = "zeros" if init == "zeros" else tf.keras.initializers.GlorotUniform(seed=seed)
        conv2d = TabConv2D(1 if channels is None else channels[1], kernel_size, use_bias=bias,
                           kernel_initializer=initializer, dtype=dtype)
        # The layer uses four-dimensional input and output in the format of (example, height, width, channel)
        if channels is None:  # the tab's tf.reshape(X, (1, 6, 8, 1)); a batch of images is the example axis
            X = tf.reshape(X, (-1, *X.shape[-2:], 1))
            Y = tf.reshape(Y, (-1, *Y.shape[-2:], 1))
        else:
            X = tf.transpose(tf.reshape(X, (-1, *X.shape[-3:])), (0, 2, 3, 1))
            Y = tf.transpose(tf.reshape(Y, (-1, *Y.shape[-3:])), (0, 2, 3, 1))
    else:
        conv2d = Conv2D(kernel_size, bias=bias, seed=seed, dtype=dtype,
                        channels=None if channels is None else (*channels, 1))
    conv2d.build(X.shape)
    if init == "zeros":
        for weight in conv2d.trainable_variables:
            weight.assign(tf.zeros_like(weight))
    return _Trainer(X, Y, conv2d, lr, kernel_size)


def vjp(function: Any, X: Any, K: Any, G: Any, options: dict[str, Any]) -> tuple[tf.Tensor, tf.Tensor]:
    """Gradients of ``sum(G * function(X, K, **options))`` in ``X`` and ``K``, by ``tf.GradientTape``."""
    method = options.get("method", "auto")
    if method == "loop":
        raise ValueError(
            "method='loop' is not differentiable on TensorFlow: the book's corr2d writes its output with "
            "tf.Variable.assign, which GradientTape does not record (the gradient would be None); use "
            "method='direct', 'fft', 'native' or 'auto'"
        )
    X, K = _tensor(X), _tensor(K)
    with tf.GradientTape() as tape:
        tape.watch([X, K])
        Y = function(X, K, **options)
        loss = tf.reduce_sum(tf.cast(_tensor(G), Y.dtype) * Y)
    dX, dK = tape.gradient(loss, [X, K])
    if dX is None or dK is None:
        raise ValueError(f"method={method!r} gave no gradient on TensorFlow (an operation the tape cannot record)")
    return dX, dK


def corr2d_vjp(X: Any, K: Any, G: Any, *, method: str, padding: Any,
               stride: tuple[int, int], dilation: tuple[int, int] = (1, 1)) -> tuple[tf.Tensor, tf.Tensor]:
    """Gradients of ``sum(G * corr2d(X, K))`` by ``tf.GradientTape``."""
    options = {"method": method, "padding": padding, "stride": stride, "dilation": dilation}
    return vjp(partial(correlate, _this), X, K, G, options)


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
