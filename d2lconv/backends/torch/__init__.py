"""The PyTorch backend: reads like the book's PyTorch tab (``import torch; from torch import nn``).

Every method is differentiable with autograd, the book's element-by-element loop included (PyTorch records
``Y[i, j] = ...`` as a copy into a slice). ``method="native"`` is ``torch.nn.functional.conv2d`` on the tab's
NCHW layout, and the FFT path uses ``torch.fft``.
"""

from __future__ import annotations

from d2lconv.backends.torch.channels import (  # noqa: F401 (the adapter's names)
    CHANNEL_AUTO,
    corr2d_channels,
    corr2d_channels_native,
)
from d2lconv.backends.torch.kernels import (  # noqa: F401 (the adapter's names)
    FFT_PASSES,
    NATIVE_BELOW,
    NATIVE_TAPS,
    compiled_costs,
    corr2d_direct,
    corr2d_fft,
    corr2d_native,
    corr2d_separable,
)
from d2lconv.backends.torch.tab import (  # noqa: F401 (the adapter's names)
    Conv2D,
    corr2d_loop,
    corr2d_vjp,
    layer_parameters,
    layer_vjp,
    make_trainer,
    vjp,
)
from d2lconv.backends.torch.tensors import (  # noqa: F401 (the adapter's names)
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

NAME = "torch"
NATIVE_TYPE = "torch.Tensor"
