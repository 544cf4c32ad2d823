"""``method="auto"``: a small cost model that picks the cheapest exact method from the shapes.

Costs are counted in *passes*: one pass multiplies and adds every output element once.
- ``direct`` costs one pass per kernel element, ``h * w``;
- ``separable`` costs ``h + w`` passes, for rank-one kernels that no gradient flows to (checked exactly);
- ``fft`` costs about ``adapter.FFT_PASSES`` passes of the *unstrided* output whatever the kernel size
  (three FFTs of the padded input, measured per framework as a multiple of its own multiply-add);
- ``native`` (the framework's own conv op) is one call, but on one channel most frameworks run it far
  slower than a pass per element; it wins only on tiny problems, where each operation's fixed dispatch cost
  dominates: below ``adapter.NATIVE_BELOW`` multiply-adds in all, or, where the framework has a special
  path for small kernels, up to ``adapter.NATIVE_TAPS`` kernel elements at any size.
The per-framework numbers are ratios of one framework's operations to each other, not times, so they carry
over between machines; benchmarks/RESULTS.md shows how they were measured.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from d2lconv import methods

# Below this many output elements a kernel is not worth factorising: dispatch cost dominates.
SEPARABLE_MIN_OUTPUT = 4096


def choose_method(adapter: ModuleType, input_shape: tuple[int, int], K: Any, stride: tuple[int, int], *,
                  fft_passes: float | None = None, fft: bool = True) -> str:
    """The name of the cheapest exact method for cross-correlating ``input_shape`` with ``K``.

    ``fft_passes`` replaces the adapter's ``FFT_PASSES`` (``d2lconv._exact`` adds the cost of checking the
    FFT's accuracy); ``fft=False`` leaves the FFT out (for inputs whose values it cannot check).
    """
    fft_passes = adapter.FFT_PASSES if fft_passes is None else fft_passes
    has_fft = fft and adapter.corr2d_fft is not None
    h, w = K.shape
    out_h, out_w = methods.valid_shape(input_shape, (h, w), stride)
    taps = h * w
    if taps <= adapter.NATIVE_TAPS or out_h * out_w * taps < adapter.NATIVE_BELOW:
        return "native"
    if (h + w >= taps or out_h * out_w < SEPARABLE_MIN_OUTPUT) and (
            not has_fft or taps <= fft_passes * stride[0] * stride[1]):
        return "direct"  # the common small case, decided without the cost table
    costs = {"direct": taps}
    if has_fft:
        costs["fft"] = fft_passes * stride[0] * stride[1]
    if (h + w < min(costs.values()) and out_h * out_w >= SEPARABLE_MIN_OUTPUT and adapter.is_constant(K)
            and methods.rank_one_factors(adapter.to_numpy(K)) is not None):
        return "separable"
    return min(costs, key=costs.get)
