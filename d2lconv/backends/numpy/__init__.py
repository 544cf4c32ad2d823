"""The NumPy backend: no framework needed, the default, and the reference the tests compare against.

It reads like the book's MXNet tab (whose ``np`` is NumPy-compatible). NumPy has no autodiff, so
``Conv2D`` carries its own backward: the gradient of a cross-correlation with respect to its kernel is
again a cross-correlation (``d2lconv.methods.kernel_gradient``).
"""

from __future__ import annotations

from d2lconv.backends.numpy.channels import (  # noqa: F401 (the adapter's names)
    CHANNEL_AUTO,
    channels_vjp,
    corr2d_channels,
    corr2d_channels_native,
    vjp,
)
from d2lconv.backends.numpy.kernels import (  # noqa: F401 (the adapter's names)
    FFT_PASSES,
    NATIVE_BELOW,
    NATIVE_TAPS,
    NO_NATIVE,
    compiled_costs,
    corr2d_direct,
    corr2d_fft,
    corr2d_native,
    corr2d_separable,
)
from d2lconv.backends.numpy.tab import (  # noqa: F401 (the adapter's names)
    Conv2D,
    corr2d_loop,
    corr2d_vjp,
    layer_parameters,
    layer_vjp,
    make_trainer,
)
from d2lconv.backends.numpy.tensors import (  # noqa: F401 (the adapter's names)
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

NAME = "numpy"
NATIVE_TYPE = "numpy.ndarray"
