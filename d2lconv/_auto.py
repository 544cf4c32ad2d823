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
An adapter whose direct method may run compiled (the Numba accelerator, ``d2lconv._numba``) has
``compiled_costs(X, K)``: ``(FFT_PASSES, NATIVE_BELOW, NATIVE_TAPS)`` in units of a compiled pass when it
will run these operands, else None.
The per-framework numbers are ratios of one framework's operations to each other, not times, so they carry
over between machines; benchmarks/RESULTS.md shows how they were measured.

Over channels (``corr2d_multi_in_out``), :func:`choose_channel_method` decides between the framework's own
conv op and d2lconv's methods from the channels per group, with each adapter's ``CHANNEL_AUTO`` numbers
(:class:`ChannelAuto`; benchmarks/RESULTS_CHANNELS.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

from d2lconv import methods

# Below this many output elements a kernel is not worth factorising: dispatch cost dominates.
SEPARABLE_MIN_OUTPUT = 4096


def choose_method(adapter: ModuleType, input_shape: tuple[int, int], K: Any, stride: tuple[int, int],
                  dilation: tuple[int, int] = (1, 1), batch: int = 1, *, fft_passes: float | None = None,
                  fft: bool = True, X: Any = None) -> str:
    """The name of the cheapest exact method for cross-correlating ``batch`` images of ``input_shape`` with ``K``.

    A batch multiplies every method's cost alike, except the fixed cost per operation that ``NATIVE_BELOW``
    and ``SEPARABLE_MIN_OUTPUT`` stand for, so those compare against the whole batch's work.
    ``fft_passes`` replaces the adapter's ``FFT_PASSES`` (``d2lconv._exact`` adds the cost of checking the
    FFT's accuracy); ``fft=False`` leaves the FFT out (for inputs whose values it cannot check). With the
    input ``X``, an adapter's ``compiled_costs`` hook gives the numbers for the compiled direct method, whose
    pass is cheaper: every FFT cost, ``fft_passes`` included, is then counted in compiled passes.
    """
    native_below, native_taps = adapter.NATIVE_BELOW, adapter.NATIVE_TAPS
    compiled = _compiled_costs(adapter, X, K) if X is not None else None
    if compiled is not None:
        scale = compiled[0] / adapter.FFT_PASSES if adapter.FFT_PASSES else 1.0
        fft_passes = compiled[0] if fft_passes is None else fft_passes * scale
        native_below, native_taps = compiled[1], compiled[2]
    fft_passes = adapter.FFT_PASSES if fft_passes is None else fft_passes
    has_fft = fft and adapter.corr2d_fft is not None
    h, w = K.shape
    out_h, out_w = methods.valid_shape(input_shape, (h, w), stride, dilation)
    taps, outputs = h * w, batch * out_h * out_w
    if taps <= native_taps or outputs * taps < native_below:
        return "native"
    if (h + w >= taps or outputs < SEPARABLE_MIN_OUTPUT) and (
            not has_fft or taps <= fft_passes * stride[0] * stride[1]):
        return "direct"  # the common small case, decided without the cost table
    costs = {"direct": taps}
    if has_fft:
        costs["fft"] = fft_passes * stride[0] * stride[1]
    if (h + w < min(costs.values()) and outputs >= SEPARABLE_MIN_OUTPUT and adapter.is_constant(K)
            and methods.rank_one_factors(adapter.to_numpy(K)) is not None):
        return "separable"
    return min(costs, key=costs.get)


_hooks: dict[str, Any] = {}


def _compiled_costs(adapter: ModuleType, X: Any, K: Any) -> tuple[Any, int, int] | None:
    """The adapter's ``compiled_costs(X, K)``, or None without the hook (looked up once per adapter: a missing
    attribute costs a raised AttributeError on every call)."""
    hook = _hooks.get(adapter.__name__, False)
    if hook is False:
        hook = _hooks[adapter.__name__] = getattr(adapter, "compiled_costs", None)
    return None if hook is None else hook(X, K)


@dataclass(frozen=True)
class ChannelAuto:
    """An adapter's numbers for ``method="auto"`` on the channel functions: when the framework's own conv op
    beats d2lconv's methods (``CHANNEL_AUTO`` in each adapter's ``channels.py``, measured there).

    - ``native_from``: input channels per group from which the framework op wins (its matrix products use
      the channels well); below it d2lconv's methods do. None: never (NumPy has no conv op).
    - ``native_depthwise``: whether the framework op wins for grouped convolutions with one input channel
      per group (depthwise), which some frameworks run with a dedicated kernel.
    - ``native_below``: multiply-adds in all below which the framework op wins anyway (one call against
      several small ones).
    - ``fft_from_taps``: kernel taps (h * w) per input channel of a group from which d2lconv's FFT over
      channels beats the framework op (and d2lconv's direct method) when several input channels meet: its
      transforms cost the same for any kernel, but its contraction over channels per frequency grows with
      the channels; None: never.
    - ``native_bank_from`` and ``native_bank_pixels``: a bank of at least this many kernels on one input
      channel goes to the framework op when each image has at most that many pixels (PyTorch's ``F.conv2d``
      batches small single-channel images well); None: never.
    - ``per_kernel_pixels``: with one input channel per group, images of at least this many pixels go one
      kernel at a time through ``corr2d``'s fast paths; smaller ones take the direct method on every channel
      at once (fewer, larger operations).
    """

    native_from: int | None
    native_depthwise: bool = False
    native_below: int = 0
    fft_from_taps: int | None = None
    native_bank_from: int | None = None
    native_bank_pixels: int = 0
    per_kernel_pixels: int = 0


def choose_channel_method(adapter: ModuleType, batch: int, in_channels: int, input_shape: tuple[int, int], K: Any,
                          stride: tuple[int, int], dilation: tuple[int, int], groups: int) -> str:
    """The method for ``corr2d_multi_in_out``: ``"native"``, ``"direct"``, ``"fft"`` or ``"per_kernel"``.

    With one input channel per group (a batch of single-channel images, a filter bank, a depthwise
    convolution) each output channel is a 2-D cross-correlation, and ``"per_kernel"`` runs ``corr2d``'s own
    choice for each kernel (the single-channel speed of every method); with several, the work is matrix
    products over channels, where the framework's op is strong.
    """
    numbers: ChannelAuto = adapter.CHANNEL_AUTO
    out_channels, per_group, h, w = (int(n) for n in K.shape)
    taps = h * w
    out_h, out_w = methods.valid_shape(input_shape, (h, w), stride, dilation)
    native = adapter.corr2d_channels_native is not None
    if native and batch * out_channels * out_h * out_w * per_group * taps < numbers.native_below:
        return "native"
    if per_group == 1:
        if native and ((groups > 1 and numbers.native_depthwise) or taps <= adapter.NATIVE_TAPS):
            return "native"
        if (native and numbers.native_bank_from is not None and out_channels // groups >= numbers.native_bank_from
                and input_shape[0] * input_shape[1] <= numbers.native_bank_pixels):
            return "native"
        return "per_kernel" if input_shape[0] * input_shape[1] >= numbers.per_kernel_pixels else "direct"
    if (numbers.fft_from_taps is not None and taps >= numbers.fft_from_taps * per_group
            and adapter.corr2d_fft is not None):
        return "fft"
    if native and numbers.native_from is not None and per_group >= numbers.native_from:
        return "native"
    return "direct"


def choose_bank_method(adapter: ModuleType, K: Any, outputs: int) -> str:
    """For one input channel per group on a fusing compiler (XLA): ``"direct"``, ``"separable"`` or ``"fft"``
    for the whole bank of kernels ``K`` ``(O, 1, h, w)`` at once, by :func:`choose_method`'s costs."""
    h, w = int(K.shape[2]), int(K.shape[3])
    taps = h * w
    if adapter.corr2d_fft is not None and taps > adapter.FFT_PASSES:
        return "fft"
    if h + w < taps and outputs >= SEPARABLE_MIN_OUTPUT and adapter.is_constant(K):
        from d2lconv.channel_methods import rank_one_bank

        if rank_one_bank(adapter.to_numpy(K)) is not None:
            return "separable"
    return "direct"
