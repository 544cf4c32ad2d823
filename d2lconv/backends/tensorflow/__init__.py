"""The TensorFlow backend: the book's TensorFlow tab on TensorFlow 2 with Keras 3.

Tensors are ``tf.Tensor``; ``tf.Variable`` and Keras 3 variables (which are not ``tf.Variable``) are
accepted as inputs too. The vectorised methods are compiled with XLA (``tf.function(jit_compile=True)``),
which fuses the sum of shifted slices into one pass; ``Conv2D`` is a Keras layer and the learning loop
is one traced ``tf.function`` step per epoch, whose layer (the tab's ``tf.keras.layers.Conv2D``) convolves
through these methods.
"""

from __future__ import annotations

from d2lconv.backends.tensorflow.channels import (  # noqa: F401 (the adapter's names)
    CHANNEL_AUTO,
    corr2d_channels,
    corr2d_channels_native,
)
from d2lconv.backends.tensorflow.kernels import (  # noqa: F401 (the adapter's names)
    FFT_PASSES,
    NATIVE_BELOW,
    NATIVE_TAPS,
    TILE,
    TILED_ABOVE,
    corr2d_direct,
    corr2d_fft,
    corr2d_native,
    corr2d_separable,
)
from d2lconv.backends.tensorflow.tab import (  # noqa: F401 (the adapter's names)
    EAGER_BELOW,
    EAGER_EPOCHS,
    Conv2D,
    TabConv2D,
    corr2d_loop,
    corr2d_vjp,
    layer_parameters,
    layer_vjp,
    make_trainer,
    vjp,
)
from d2lconv.backends.tensorflow.tensors import (  # noqa: F401 (the adapter's names)
    cast,
    concat,
    dtype_of,
    einsum,
    flip,
    from_numpy,
    is_constant,
    is_native,
    moveaxis,
    pad,
    reshape,
    sparse_matrix,
    stack,
    to_numpy,
    transpose,
    zero_where,
)

NAME = "tensorflow"
NATIVE_TYPE = "tf.Tensor (tf.Variable and Keras variables are read as tensors)"
