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


def choose_method(adapter: ModuleType, input_shape: tuple[int, int], K: Any, stride: tuple[int, int],
                  dilation: tuple[int, int] = (1, 1), batch: int = 1) -> str:
    """The name of the cheapest exact method for cross-correlating ``batch`` images of ``input_shape`` with ``K``.

    A batch multiplies every method's cost alike, except the fixed cost per operation that ``NATIVE_BELOW``
    and ``SEPARABLE_MIN_OUTPUT`` stand for, so those compare against the whole batch's work.
    """
    h, w = K.shape
    out_h, out_w = methods.valid_shape(input_shape, (h, w), stride, dilation)
    taps, outputs = h * w, batch * out_h * out_w
    if taps <= adapter.NATIVE_TAPS or outputs * taps < adapter.NATIVE_BELOW:
        return "native"
    if (h + w >= taps or outputs < SEPARABLE_MIN_OUTPUT) and (
            adapter.corr2d_fft is None or taps <= adapter.FFT_PASSES * stride[0] * stride[1]):
        return "direct"  # the common small case, decided without the cost table
    costs = {"direct": taps}
    if adapter.corr2d_fft is not None:
        costs["fft"] = adapter.FFT_PASSES * stride[0] * stride[1]
    if (h + w < min(costs.values()) and outputs >= SEPARABLE_MIN_OUTPUT and adapter.is_constant(K)
            and methods.rank_one_factors(adapter.to_numpy(K)) is not None):
        return "separable"
    return min(costs, key=costs.get)
