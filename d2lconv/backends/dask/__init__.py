"""The Dask backend: ``corr2d``, ``Conv2D`` and ``train_kernel`` on arrays of any size, in chunks.

Every result is a lazy ``dask.array.Array``, built with ``dask.array.overlap`` and ``map_blocks``: each
block of the output is computed once, with the halo its kernel needs, by another backend's fast path
(NumPy by default; ``set_chunk_backend("torch")`` or ``with use_chunk_backend("torch"):`` for another).
Chunk boundaries never change a result. ``d2lconv.to_numpy`` computes an array with the scheduler in force,
threads by default or a ``dask.distributed`` cluster. Dask has no autodiff: as on NumPy, the layer carries
its own backward, reduced over the blocks (the kernel's gradient is a cross-correlation of the input with
the output's gradient), so a kernel can be learned from an image that never fits in memory.
"""

from __future__ import annotations

from typing import Any

from d2lconv.backends.dask.curvature import (  # noqa: F401 (used by d2lconv.largest_curvature and least_squares_kernel)
    largest_curvature,
    least_squares_kernel,
)
from d2lconv.backends.dask.kernels import (  # noqa: F401 (the adapter's names)
    CHUNK_DEPENDENT,
    chunk_dependent,
    corr2d_channels,
    corr2d_direct,
    corr2d_separable,
    correlate_blocks,
    correlate_channel_blocks,
)
from d2lconv.backends.dask.selection import (  # noqa: F401 (the chunk backend's choice)
    get_chunk_backend,
    set_chunk_backend,
    use_chunk_backend,
)
from d2lconv.backends.dask.tab import (  # noqa: F401 (the adapter's names)
    Conv2D,
    corr2d_loop,
    corr2d_vjp,
    layer_parameters,
    layer_vjp,
    make_trainer,
    vjp,
)
from d2lconv.backends.dask.tensors import (  # noqa: F401 (the adapter's names)
    cast,
    count_nonfinite,
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
)

NAME = "dask"
NATIVE_TYPE = "dask.array.Array"


def __getattr__(name: str) -> Any:
    """``corr2d_fft``, ``corr2d_native`` and the cost-model numbers are the chunk backend's (PEP 562)."""
    if name in CHUNK_DEPENDENT:
        return chunk_dependent(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
