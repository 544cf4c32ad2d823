"""The MXNet backend: ``mxnet.numpy`` arrays, Gluon blocks and ``autograd.record()``, as in the book's MXNet tab.

MXNet 1.9.1 is its last release and needs numpy<1.24. Its ``corr2d`` tab writes the output in place,
which autograd refuses to record, so only the vectorised methods are differentiable here.
"""

from __future__ import annotations

from d2lconv.backends.mxnet.channels import (  # noqa: F401 (the adapter's names)
    CHANNEL_AUTO,
    corr2d_channels,
    corr2d_channels_native,
)
from d2lconv.backends.mxnet.kernels import (  # noqa: F401 (the adapter's names)
    FFT_PASSES,
    NATIVE_BELOW,
    NATIVE_TAPS,
    NO_FFT,
    compiled_costs,
    corr2d_direct,
    corr2d_fft,
    corr2d_native,
    corr2d_separable,
)
from d2lconv.backends.mxnet.tab import (  # noqa: F401 (the adapter's names)
    Conv2D,
    corr2d_loop,
    corr2d_vjp,
    layer_parameters,
    layer_vjp,
    make_trainer,
    vjp,
)
from d2lconv.backends.mxnet.tensors import (  # noqa: F401 (the adapter's names)
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

NAME = "mxnet"
NATIVE_TYPE = "mxnet.numpy.ndarray (legacy NDArrays convert with x.as_np_ndarray())"
