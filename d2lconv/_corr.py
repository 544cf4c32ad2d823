"""``corr2d`` and ``convolve2d``: check the input, pad it, pick a method, call the adapter."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from d2lconv import _exact, methods
from d2lconv._auto import choose_method
from d2lconv._backend import active_adapter
from d2lconv._inputs import (
    _STORED_DTYPES,
    as_tensor,
    check_image,
    check_matrix,
    check_span,
    dilation_pair,
    output_shape,
    pad_amounts,
    pair,
)

METHODS: tuple[str, ...] = ("auto", "loop", "direct", "separable", "fft", "native")
ONE = (1, 1)


def correlate(
    adapter: ModuleType, X: Any, K: Any, *, method: str = "auto", padding: Any = 0, stride: Any = 1,
    dilation: Any = 1,
) -> Any:
    """Cross-correlate with an explicit adapter (the layers call this with their own backend)."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(map(repr, METHODS))}")
    X = as_tensor(adapter, X, "X")
    K = as_tensor(adapter, K, "K")
    input_shape = check_image(X, "X")
    kernel_shape = check_matrix(K, "K")
    strides = pair(stride, "stride", minimum=1)
    dilations = dilation_pair(dilation)
    (top, bottom), (left, right) = check_fits(input_shape, kernel_shape, padding, strides, dilations)
    padded = (input_shape[0] + top + bottom, input_shape[1] + left + right)
    X, K = common_dtype(adapter, X, K)
    if top or bottom or left or right:
        X = adapter.pad(X, (top, bottom), (left, right))
    by_blocks = getattr(adapter, "correlate_blocks", None)
    if by_blocks is not None:  # Dask: each block runs this function on another backend, auto's exactness included
        return by_blocks(method, X, K, strides, dilations)
    if method == "auto":
        batch = 1
        for n in tuple(X.shape)[:-2]:
            batch *= int(n)
        method = choose_method(adapter, padded, K, strides, dilations, batch, X=X)
        if method == "fft":
            return _exact_fft(adapter, padded, X, K, strides, dilations, batch)
    if method == "fft" and adapter.corr2d_fft is not None:
        return _exact.fft(adapter, X, K, strides, dilation=dilations)  # non-finite inputs stay in their windows
    return _run(adapter, method, X, K, strides, dilations)


def _exact_fft(adapter: ModuleType, padded: tuple[int, int], X: Any, K: Any, strides: tuple[int, int],
               dilations: tuple[int, int], batch: int) -> Any:
    """``auto`` when the FFT is cheapest: the FFT with every output certified (``d2lconv._exact``; non-finite
    inputs and what fails the certificate are recomputed locally), if it still is cheapest with the
    certificate's cost; an exact method where the values cannot be checked (a tracer) or the kernel is not
    finite."""
    found = _exact.scan(adapter, X)
    kernel = _exact.concrete(adapter, K)
    if found is None or kernel is None or not np.isfinite(kernel).all():
        method = choose_method(adapter, padded, K, strides, dilations, batch, fft=False, X=X)
        return _run(adapter, method, X, K, strides, dilations)
    passes = adapter.FFT_PASSES + _exact.SCAN_PASSES
    if found.signed or _exact.both_signs(kernel):
        passes += adapter.FFT_PASSES  # a second FFT, of |X| and |K|, finds each output's S
    method = choose_method(adapter, padded, K, strides, dilations, batch, fft_passes=passes, X=X)
    if method != "fft":
        return _run(adapter, method, X, K, strides, dilations)
    return _exact.fft(adapter, X, K, strides, found, certify=True, dilation=dilations)


def check_fits(input_shape: tuple[int, int], kernel_shape: tuple[int, int], padding: Any,
               strides: tuple[int, int], dilation: tuple[int, int] = ONE) -> tuple[tuple[int, int], tuple[int, int]]:
    """The padding ``((top, bottom), (left, right))``, or a ``ValueError`` if the (dilated) kernel is larger
    than the padded input."""
    (top, bottom), (left, right) = pad_amounts(padding, input_shape, methods.dilated_shape(kernel_shape, dilation),
                                               strides)
    padded = (input_shape[0] + top + bottom, input_shape[1] + left + right)
    check_span(kernel_shape, dilation, input_shape, padded)
    return (top, bottom), (left, right)


def result_shape(input_shape: tuple[int, int], kernel_shape: tuple[int, int], padding: Any = 0,
                 stride: Any = 1, dilation: Any = 1) -> tuple[int, int]:
    """The (height, width) ``corr2d`` returns for these shapes, padding, stride and dilation."""
    strides = pair(stride, "stride", minimum=1)
    span = methods.dilated_shape(kernel_shape, dilation_pair(dilation))
    (top, bottom), (left, right) = pad_amounts(padding, input_shape, span, strides)
    return output_shape(input_shape, span, (top + bottom, left + right), strides)


def common_dtype(adapter: ModuleType, X: Any, K: Any) -> tuple[Any, Any]:
    """Compute in float64 if either operand is float64, else in float32."""
    x_dtype, k_dtype = adapter.dtype_of(X), adapter.dtype_of(K)
    if x_dtype == k_dtype:
        return X, K
    return (X, adapter.cast(K, x_dtype)) if x_dtype.itemsize > k_dtype.itemsize else (adapter.cast(X, k_dtype), K)


def _run(adapter: ModuleType, method: str, X: Any, K: Any, stride: tuple[int, int],
         dilation: tuple[int, int]) -> Any:
    if method == "loop":
        return _loop(adapter, X, K, stride, dilation)
    if method == "direct":
        return adapter.corr2d_direct(X, K, stride, dilation)
    if method == "separable":
        factors = _rank_one_factors(adapter, K)
        return adapter.corr2d_separable(X, *factors, stride, dilation)
    if method == "fft":
        if adapter.corr2d_fft is None:
            raise ValueError(f"method='fft' is not available on the {adapter.NAME!r} backend: {adapter.NO_FFT}")
        return adapter.corr2d_fft(X, K, stride, dilation)
    if adapter.corr2d_native is None:
        raise ValueError(f"method='native' is not available on the {adapter.NAME!r} backend: {adapter.NO_NATIVE}")
    return adapter.corr2d_native(X, K, stride, dilation)


def _loop(adapter: ModuleType, X: Any, K: Any, stride: tuple[int, int], dilation: tuple[int, int]) -> Any:
    """The book's loop on every 2-D slice of ``X`` (see :func:`loop2d`), then the stride."""
    lead, (H, W) = tuple(X.shape[:-2]), tuple(X.shape[-2:])
    with np.errstate(invalid="ignore"):  # NaN from inf * 0 or inf - inf is the answer (NumPy would warn)
        if lead:
            planes = adapter.reshape(X, (-1, H, W))
            Y = adapter.stack([loop2d(adapter, planes[i], K, dilation) for i in range(planes.shape[0])], 0)
            Y = adapter.reshape(Y, lead + tuple(Y.shape[-2:]))
        else:
            Y = loop2d(adapter, X, K, dilation)
    if stride == ONE:
        return Y
    return Y[(slice(None),) * len(lead) + (slice(None, None, stride[0]), slice(None, None, stride[1]))]


def loop2d(adapter: ModuleType, X: Any, K: Any, dilation: tuple[int, int] = ONE) -> Any:
    """The book's loop on a 2-D ``X``; with a dilation, once per phase of the output grid.

    Output ``(i, j)`` with ``i = m d_h + r`` reads ``X[r + (m + a) d_h, ...]``: the undilated kernel on the
    subsampled image ``X[r::d_h, c::d_w]``. So each of the ``d_h * d_w`` phases is the book's own loop, and
    the phases interleave by a stack and a reshape. (Spreading the kernel with zeros instead would make an
    inf between two taps a NaN: ``inf * 0``.)
    """
    if dilation == ONE:
        return adapter.corr2d_loop(X, K)
    (d_h, d_w), (h, w), (H, W) = dilation, tuple(K.shape), tuple(X.shape)
    out_h, out_w = H - (h - 1) * d_h, W - (w - 1) * d_w
    m, n = -(-out_h // d_h), -(-out_w // d_w)  # outputs per phase, the first phase's (the largest)
    rows = []
    for r in range(d_h):
        phases = []
        for c in range(d_w):
            sub = X[r::d_h, c::d_w]
            short = (max(0, m + h - 1 - sub.shape[0]), max(0, n + w - 1 - sub.shape[1]))
            if any(short):  # the zeros only reach outputs past the end, which are cut off below
                sub = adapter.pad(sub, (0, short[0]), (0, short[1]))
            phases.append(adapter.corr2d_loop(sub, K)[:m, :n])
        rows.append(adapter.stack(phases, -1))  # (m, n, d_w)
    Y = adapter.reshape(adapter.stack(rows, 1), (m * d_h, n * d_w))  # (m, d_h, n, d_w): row m * d_h + r
    return Y[:out_h, :out_w]


def _rank_one_factors(adapter: ModuleType, K: Any) -> tuple[Any, Any]:
    """The kernel's rank-one factors as tensors of its dtype, or a clear error."""
    if not adapter.is_constant(K):
        raise ValueError(
            "method='separable' needs a fixed kernel: factorising a kernel that is being differentiated "
            "would give it a wrong gradient; use method='direct' or 'auto'"
        )
    factors = methods.rank_one_factors(adapter.to_numpy(K))
    if factors is None:
        raise ValueError(f"method='separable' needs a rank-one kernel; this {tuple(K.shape)} kernel is not")
    dtype = adapter.dtype_of(K)
    return tuple(adapter.from_numpy(f.astype(dtype)) for f in factors)


def corr2d(X: Any, K: Any, *, method: str = "auto", padding: Any = 0, stride: Any = 1, dilation: Any = 1) -> Any:
    """2-D cross-correlation of ``X`` with kernel ``K``, as a native tensor of the active backend.

    ``X`` is one image ``(H, W)`` or any stack of them ``(..., H, W)`` (a batch, channels): every 2-D
    slice is cross-correlated with the same 2-D kernel ``K`` in one call, and the result keeps the leading
    axes. The output has ``floor((n - d * (k - 1) - 1 + p + s) / s)`` rows and columns (``(n - k + 1)``
    without padding, stride and dilation, as in the book). ``dilation`` spaces the kernel's taps ``d``
    pixels apart, as ``torch.nn.functional.conv2d`` does. ``method`` is ``"auto"`` (the fastest exact
    method for these shapes), ``"loop"`` (the book's nested loop), ``"direct"``, ``"separable"``,
    ``"fft"`` or ``"native"`` (the framework's own conv op). Every method but ``"loop"`` is
    differentiable with the framework's autodiff.
    """
    adapter = active_adapter()
    if type(padding) is int and padding == 0 and type(stride) is int and stride == 1 and type(dilation) is int \
            and dilation == 1:
        shape = _plain_shape(adapter, X, K)
        if shape is not None:  # the book's call: checked in a few attribute reads
            if method == "auto":
                method = choose_method(adapter, shape, K, ONE, ONE, 1, X=X)
            if method in _PLAIN_METHODS:
                return _run(adapter, method, X, K, ONE, ONE)
    return correlate(adapter, X, K, method=method, padding=padding, stride=stride, dilation=dilation)


_PLAIN_METHODS = frozenset(METHODS) - {"auto", "fft"}  # fft (exact, certified) and bad names: correlate


def _plain_shape(adapter: ModuleType, X: Any, K: Any) -> tuple[int, int] | None:
    """``X``'s shape when ``X`` and ``K`` are native 2-D tensors of one float dtype kept as stored and ``K`` fits
    in ``X``, else None (then :func:`correlate` converts, checks and explains everything).

    Why: the book's calls look like this, and on its 3x3 input every microsecond of checking shows
    (PyTorch's own conv op takes about 3 us there).
    """
    if not (adapter.is_native(X) and adapter.is_native(K)) or hasattr(adapter, "correlate_blocks"):
        return None
    x_shape, k_shape = X.shape, K.shape
    if len(x_shape) != 2 or len(k_shape) != 2:
        return None
    dtype = adapter.dtype_of(X)
    if dtype not in _STORED_DTYPES or adapter.dtype_of(K) != dtype:
        return None
    try:
        if 0 < k_shape[0] <= x_shape[0] and 0 < k_shape[1] <= x_shape[1]:
            return int(x_shape[0]), int(x_shape[1])
    except TypeError:  # a size unknown while tracing (TensorFlow's None)
        pass
    return None


def convolve2d(X: Any, K: Any, *, method: str = "auto", padding: Any = 0, stride: Any = 1,
               dilation: Any = 1) -> Any:
    """Strict 2-D convolution: :func:`corr2d` with the kernel flipped on both axes."""
    adapter = active_adapter()
    K = as_tensor(adapter, K, "K")
    check_matrix(K, "K")
    return correlate(adapter, X, adapter.flip(K), method=method, padding=padding, stride=stride, dilation=dilation)
