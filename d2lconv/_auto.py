"""``method="auto"``: a small cost model that picks the cheapest exact method from the shapes.

Costs are counted in passes over the output (one pass = one multiply-add of every output element):
- ``direct`` costs ``h * w`` passes (one per kernel element);
- ``separable`` costs ``h + w`` passes, for rank-one kernels only (checked exactly in float64);
- ``fft`` costs about ``FFT_PASSES`` passes whatever the kernel size, when the framework has an FFT.
Each adapter states what it has; nothing here is tuned to one machine.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from d2lconv import methods

# Three real FFTs of the padded input cost about as much as this many multiply-adds over it.
FFT_PASSES = 48


def choose_method(adapter: ModuleType, input_shape: tuple[int, int], K: Any, stride: tuple[int, int]) -> str:
    """The name of the cheapest exact method for cross-correlating ``input_shape`` with ``K``."""
    h, w = K.shape
    direct = h * w
    if h + w < direct and adapter.is_constant(K) and methods.rank_one_factors(adapter.to_numpy(K)) is not None:
        return "separable"
    if adapter.corr2d_fft is not None and direct > FFT_PASSES:
        return "fft"
    return "direct"
