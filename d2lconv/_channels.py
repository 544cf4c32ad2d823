"""The book's next section, "Multiple Input and Multiple Output Channels", on every backend.

``corr2d_multi_in`` sums the cross-correlations of each input channel with its own 2-D kernel;
``corr2d_multi_in_out`` stacks one such sum per output channel (with ``groups``, each output channel sees
only its group's input channels); ``corr2d_multi_in_out_1x1`` is the 1x1 case as one matrix product. Here
the input is checked, laid out channels first and padded, a method is picked, and the adapter computes.
"""

from __future__ import annotations

from numbers import Integral
from types import ModuleType
from typing import Any

from d2lconv import methods
from d2lconv._auto import choose_channel_method, choose_method
from d2lconv._backend import active_adapter
from d2lconv._corr import _run, common_dtype, loop2d
from d2lconv._inputs import as_tensor, check_span, dilation_pair, pad_amounts, pair

METHODS: tuple[str, ...] = ("auto", "loop", "direct", "separable", "fft", "native")
DATA_FORMATS: tuple[str, ...] = ("channels_first", "channels_last")
ONE = (1, 1)


def _layout(data_format: Any) -> bool:
    """True for ``"channels_last"``, False for ``"channels_first"`` (Keras's names), else a clear error."""
    if data_format == "channels_first":
        return False
    if data_format == "channels_last":
        return True
    raise ValueError(f"data_format must be 'channels_first' or 'channels_last', got {data_format!r}")


def _axes(last: bool) -> str:
    return "(..., height, width, channels)" if last else "(..., channels, height, width)"


def check_groups(groups: Any, in_channels: int, out_channels: int) -> int:
    """``groups`` as an int >= 1 that divides both channel counts, else a one-line error naming them."""
    if not isinstance(groups, Integral) or isinstance(groups, bool):
        raise TypeError(f"groups must be an int, got {groups!r}")
    if groups < 1:
        raise ValueError(f"groups must be at least 1, got {groups}")
    if in_channels % groups or out_channels % groups:
        raise ValueError(f"groups={groups} must divide both the input channels ({in_channels}) and the output "
                         f"channels ({out_channels})")
    return int(groups)


def correlate_channels(
    adapter: ModuleType, X: Any, K: Any, *, groups: Any = 1, method: str = "auto", padding: Any = 0,
    stride: Any = 1, dilation: Any = 1, data_format: str = "channels_first",
    function: str = "corr2d_multi_in_out",
) -> Any:
    """``corr2d_multi_in_out`` with an explicit adapter (the layers call this with their own backend)."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(map(repr, METHODS))}")
    last = _layout(data_format)
    X, K = as_tensor(adapter, X, "X"), as_tensor(adapter, K, "K")
    x_shape, k_shape = tuple(X.shape), tuple(K.shape)
    if len(x_shape) < 3:
        raise ValueError(f"X must have at least 3 dimensions {_axes(last)} for {function}, got shape {x_shape}")
    if len(k_shape) != 4:
        raise ValueError(f"K must be 4-D (out_channels, in_channels // groups, height, width) for {function}, "
                         f"got shape {k_shape}")
    if 0 in x_shape or 0 in k_shape:
        raise ValueError(f"{'X' if 0 in x_shape else 'K'} must not be empty, got shape "
                         f"{x_shape if 0 in x_shape else k_shape}")
    C, (H, W) = (x_shape[-1], x_shape[-3:-1]) if last else (x_shape[-3], x_shape[-2:])
    O, Cg, h, w = k_shape
    groups = check_groups(groups, C, O) if groups != 1 or type(groups) is not int else 1
    if Cg * groups != C:
        raise ValueError(f"X has {C} channels but K expects {Cg * groups} (K has shape {k_shape}"
                         + (f", groups={groups})" if groups != 1 else ")"))
    strides, dilations = pair(stride, "stride", minimum=1), dilation_pair(dilation)
    rows, cols = pad_amounts(padding, (H, W), methods.dilated_shape((h, w), dilations), strides)
    padded = (H + rows[0] + rows[1], W + cols[0] + cols[1])
    check_span((h, w), dilations, (H, W), padded)
    X, K = common_dtype(adapter, X, K)
    if method == "auto":
        batch = 1
        for n in x_shape[:-3]:
            batch *= int(n)
        method = choose_channel_method(adapter, batch, C, padded, K, strides, dilations, groups)
    if method == "native":
        if adapter.corr2d_channels_native is None:
            raise ValueError(f"method='native' is not available on the {adapter.NAME!r} backend: {adapter.NO_NATIVE}")
        return adapter.corr2d_channels_native(X, K, strides, dilations, groups, (rows, cols), last)
    if method == "fft" and adapter.corr2d_fft is None:
        raise ValueError(f"method='fft' is not available on the {adapter.NAME!r} backend: {adapter.NO_FFT}")
    if method != "loop":
        factors = _bank_factors(adapter, K) if method == "separable" else None
        return adapter.corr2d_channels(X, K, strides, dilations, groups, (rows, cols), last, method, factors)
    if last:
        X = adapter.moveaxis(X, -1, -3)
    if rows != (0, 0) or cols != (0, 0):
        X = adapter.pad(X, rows, cols)
    Y = book_loop(adapter, X, K, strides, dilations, groups)
    return adapter.moveaxis(Y, -3, -1) if last else Y


def _bank_factors(adapter: ModuleType, K: Any) -> tuple[Any, Any]:
    """The rank-one factors ``(columns, rows)`` of every kernel, as tensors, or a clear error."""
    from d2lconv.channel_methods import rank_one_bank

    if K.shape[1] != 1:
        raise ValueError(f"method='separable' takes kernels with one input channel per group (K of shape "
                         f"(O, 1, h, w): depthwise convolutions, filter banks); this K has shape {tuple(K.shape)}")
    if not adapter.is_constant(K):
        raise ValueError(
            "method='separable' needs a fixed kernel: factorising a kernel that is being differentiated "
            "would give it a wrong gradient; use method='direct' or 'auto'"
        )
    factors = rank_one_bank(adapter.to_numpy(K))
    if factors is None:
        raise ValueError(f"method='separable' needs rank-one kernels; not every kernel of this {tuple(K.shape)} "
                         "K is one")
    dtype = adapter.dtype_of(K)
    return tuple(adapter.from_numpy(f.astype(dtype)) for f in factors)


def book_loop(adapter: ModuleType, X: Any, K: Any, stride: tuple[int, int], dilation: tuple[int, int],
              groups: int) -> Any:
    """The book's own definitions, on its ``corr2d`` loop, for every example of the leading axes::

        corr2d_multi_in(X, K) = sum(corr2d(x, k) for x, k in zip(X, K))
        corr2d_multi_in_out(X, K) = stack([corr2d_multi_in(X, k) for k in K], 0)

    with each output channel reading only its group's input channels.
    """
    lead, (C, H, W) = tuple(X.shape[:-3]), tuple(X.shape[-3:])
    O, Cg = K.shape[0], K.shape[1]
    Og = O // groups
    examples = adapter.reshape(X, (-1, C, H, W))

    def multi_in(x: Any, k: Any) -> Any:
        return sum(loop2d(adapter, x[c], k[c], dilation) for c in range(Cg))

    Y = adapter.stack([
        adapter.stack([multi_in(examples[n][(o // Og) * Cg:(o // Og + 1) * Cg], K[o]) for o in range(O)], 0)
        for n in range(examples.shape[0])
    ], 0)
    Y = Y[:, :, ::stride[0], ::stride[1]]
    return adapter.reshape(Y, (*lead, *Y.shape[1:]))


def per_kernel(adapter: ModuleType, X: Any, K: Any, stride: tuple[int, int], dilation: tuple[int, int],
               groups: int) -> Any:
    """``C // groups == 1``: every output channel is one 2-D cross-correlation of one input channel, each with
    the method ``corr2d``'s ``auto`` picks for its kernel (separable for Sobel, FFT for large ones), over the
    whole batch at once; the outputs are stacked."""
    lead, (H, W) = tuple(X.shape[:-3]), tuple(X.shape[-2:])
    O, Og = K.shape[0], K.shape[0] // groups
    batch = 1
    for n in lead:
        batch *= int(n)
    planes = []
    for o in range(O):
        x, k = X[..., o // Og, :, :], K[o, 0]
        planes.append(_run(adapter, choose_method(adapter, (H, W), k, stride, dilation, batch, X=x), x, k, stride,
                           dilation))
    return planes[0][..., None, :, :] if O == 1 else adapter.stack(planes, -3)


# ------------------------------------------------------------------------------------------------ public API


def corr2d_multi_in(X: Any, K: Any, *, method: str = "auto", padding: Any = 0, stride: Any = 1, dilation: Any = 1,
                    data_format: str = "channels_first") -> Any:
    """Cross-correlation with multiple input channels: ``X (..., C, H, W)``, ``K (C, h, w)`` -> ``(..., H', W')``.

    The book's ``sum(corr2d(x, k) for x, k in zip(X, K))``: each input channel with its own 2-D kernel, summed.
    Takes the same ``method``, ``padding``, ``stride``, ``dilation`` and ``data_format`` as
    :func:`corr2d_multi_in_out`; differentiable in ``X`` and ``K`` with the framework's autodiff.
    """
    adapter = active_adapter()
    K = as_tensor(adapter, K, "K")
    if len(K.shape) != 3:
        raise ValueError(f"K must be 3-D (channels, height, width) for corr2d_multi_in, got shape {tuple(K.shape)}")
    Y = correlate_channels(adapter, X, adapter.reshape(K, (1, *K.shape)), method=method, padding=padding,
                           stride=stride, dilation=dilation, data_format=data_format, function="corr2d_multi_in")
    return Y[..., 0] if _layout(data_format) else Y[..., 0, :, :]


def corr2d_multi_in_out(X: Any, K: Any, *, groups: int = 1, method: str = "auto", padding: Any = 0,
                        stride: Any = 1, dilation: Any = 1, data_format: str = "channels_first") -> Any:
    """Cross-correlation with multiple input and output channels, as a native tensor of the active backend.

    ``X (..., C, H, W)`` (any leading axes: a batch), ``K (O, C // groups, h, w)`` -> ``(..., O, H', W')``:
    the book's ``stack([corr2d_multi_in(X, k) for k in K], 0)``. With ``groups``, input and output channels
    are split into that many groups and each output channel sees only its group's inputs (as ``groups``
    means in PyTorch, Keras and Flax); ``groups=C`` with ``O == C`` is a depthwise convolution.
    ``data_format="channels_last"`` takes and returns ``(..., H, W, C)`` tensors (TensorFlow's and JAX's
    layout); ``K`` keeps the book's ``(O, C // groups, h, w)`` layout either way.

    ``padding``, ``stride`` and ``dilation`` are :func:`d2lconv.corr2d`'s. ``method`` is ``"auto"`` (the
    framework's own conv op where it is faster, with many channels; d2lconv's methods where they are, with
    one input channel per group), ``"loop"`` (the book's definitions on its loop), ``"direct"`` (a sum over
    kernel taps of contractions over channels), ``"separable"`` (rank-one kernels with one input channel per
    group), ``"fft"`` or ``"native"`` (the framework's own conv op). All but ``"loop"`` are differentiable.
    """
    return correlate_channels(active_adapter(), X, K, groups=groups, method=method, padding=padding, stride=stride,
                              dilation=dilation, data_format=data_format)


def corr2d_multi_in_out_1x1(X: Any, K: Any, *, method: str = "auto", padding: Any = 0, stride: Any = 1,
                            dilation: Any = 1, data_format: str = "channels_first") -> Any:
    """The 1x1 convolution as the book writes it: one matrix product of ``K (O, C)`` with every pixel's channels.

    ``K`` is ``(O, C, 1, 1)`` (or ``(O, C)``); the result equals :func:`corr2d_multi_in_out` with the same
    kernel. ``method="auto"`` or ``"direct"`` computes the matrix product (``einsum``); any other method goes
    through :func:`corr2d_multi_in_out`. Padding adds zero pixels, stride skips pixels, and a dilation
    changes nothing (one tap has no neighbours), as in the frameworks' 1x1 convolutions.
    """
    adapter = active_adapter()
    K = as_tensor(adapter, K, "K")
    shape = tuple(K.shape)
    if not (len(shape) == 2 or (len(shape) == 4 and shape[2:] == (1, 1))):
        raise ValueError(f"K must be (out_channels, in_channels, 1, 1) or (out_channels, in_channels) for "
                         f"corr2d_multi_in_out_1x1, got shape {shape}")
    kernel = adapter.reshape(K, (shape[0], shape[1], 1, 1)) if len(shape) == 2 else K
    if method not in ("auto", "direct"):
        return correlate_channels(adapter, X, kernel, method=method, padding=padding, stride=stride,
                                  dilation=dilation, data_format=data_format, function="corr2d_multi_in_out_1x1")
    last = _layout(data_format)
    X = as_tensor(adapter, X, "X")
    x_shape = tuple(X.shape)
    if len(x_shape) < 3:
        raise ValueError(f"X must have at least 3 dimensions {_axes(last)} for corr2d_multi_in_out_1x1, got shape "
                         f"{x_shape}")
    C = x_shape[-1] if last else x_shape[-3]
    if C != shape[1]:
        raise ValueError(f"X has {C} channels but K expects {shape[1]} (K has shape {shape})")
    if 0 in x_shape or 0 in shape:
        raise ValueError(f"{'X' if 0 in x_shape else 'K'} must not be empty")
    dilation_pair(dilation)
    strides = pair(stride, "stride", minimum=1)
    H, W = x_shape[-3:-1] if last else x_shape[-2:]
    rows, cols = pad_amounts(padding, (H, W), ONE, strides)
    X, K = common_dtype(adapter, X, adapter.reshape(kernel, shape[:2]))
    if last:
        X = adapter.moveaxis(X, -1, -3)
    if rows != (0, 0) or cols != (0, 0):
        X = adapter.pad(X, rows, cols)
    if strides != ONE:
        X = X[..., ::strides[0], ::strides[1]]
    # The book's corr2d_multi_in_out_1x1: X as (c_i, h * w), Y = K @ X, back to (c_o, h, w); for every example.
    Y = adapter.einsum("oc,...chw->...ohw", K, X)
    return adapter.moveaxis(Y, -3, -1) if last else Y
