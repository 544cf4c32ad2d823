"""The JAX/Flax backend: the book's JAX tab, with ``jax.jit`` for everything that is not the tab's own loop.

JAX computes in float32 unless 64-bit mode is on: a float64 input silently becomes float32 here (as
``jnp.asarray`` makes it). For float64 results set ``JAX_ENABLE_X64=1`` in the environment, or call
``jax.config.update("jax_enable_x64", True)`` before creating any array.
"""

from __future__ import annotations

from d2lconv.backends.jax.channels import (  # noqa: F401 (the adapter's names)
    CHANNEL_AUTO,
    corr2d_channels,
    corr2d_channels_native,
)
from d2lconv.backends.jax.kernels import (  # noqa: F401 (the adapter's names)
    FFT_PASSES,
    NATIVE_BELOW,
    NATIVE_TAPS,
    corr2d_direct,
    corr2d_fft,
    corr2d_native,
    corr2d_separable,
)
from d2lconv.backends.jax.tab import (  # noqa: F401 (the adapter's names)
    Conv2D,
    Conv2DModule,
    corr2d_loop,
    corr2d_vjp,
    layer_parameters,
    layer_vjp,
    make_trainer,
    vjp,
)
from d2lconv.backends.jax.tensors import (  # noqa: F401 (the adapter's names)
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

NAME = "jax"
NATIVE_TYPE = "jax.Array"
