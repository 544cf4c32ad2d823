"""Turning user input into native tensors of the active backend, with clear errors.

Every check here looks only at types, shapes and dtypes, so it costs microseconds and works on traced
values too (``jax.jit`` tracers, ``tf.function`` tensors).
"""

from __future__ import annotations

import importlib
import math
import re
import warnings
from numbers import Integral, Number
from types import ModuleType
from typing import Any

import numpy as np

from d2lconv._backend import FRAMEWORKS

# The first part of a tensor type's module name tells its framework, without importing any framework.
_FRAMEWORK_BY_MODULE = {
    "numpy": "numpy",
    "torch": "torch",
    "tensorflow": "tensorflow",
    "keras": "tensorflow",
    "jax": "jax",
    "jaxlib": "jax",
    "mxnet": "mxnet",
    "dask": "dask",
}
_RaggedWarning = getattr(np, "exceptions", np).VisibleDeprecationWarning  # NumPy < 1.24 only warns
# The real types of the ml_dtypes package, which TensorFlow and JAX use: bfloat16, float8_e4m3fn, int4, ...
# (NumPy sees them as opaque 'V' data; they convert to float32 exactly.)
_ML_DTYPES = re.compile(r"(b?float|u?int)\d")
_STORED_DTYPES = frozenset({np.dtype(np.float32), np.dtype(np.float64)})  # kept as they are


def framework_of(x: Any) -> str | None:
    """The backend name of the framework that made tensor ``x``, or None for plain Python data."""
    return _FRAMEWORK_BY_MODULE.get(type(x).__module__.split(".")[0])


def compute_dtype(dtype: np.dtype, name: str = "input") -> np.dtype:
    """float64 stays float64; every other real dtype (ints, bools, float16, bfloat16) is computed in float32."""
    dtype = np.dtype(dtype)
    if dtype == np.float64:
        return dtype
    if dtype.kind in "biuf" or (dtype.kind == "V" and _ML_DTYPES.match(dtype.name)):
        return np.dtype(np.float32)
    raise TypeError(
        f"{name}: expected real numbers, got dtype {dtype} (complex, text and object data are not supported)"
    )


def to_numpy(x: Any) -> np.ndarray:
    """A NumPy array holding ``x``: a tensor of any supported framework, a NumPy array or nested lists."""
    framework = framework_of(x)
    if framework is None or framework == "numpy":
        return np.asarray(x)
    adapter = importlib.import_module(f"d2lconv.backends.{framework}")
    return adapter.to_numpy(x)


def as_tensor(adapter: ModuleType, data: Any, name: str = "input") -> Any:
    """``data`` as a float tensor of ``adapter``'s framework, without copying native tensors.

    Native tensors and NumPy arrays keep float32/float64 and are cast (differentiably) otherwise; nested
    lists become float32, as ``torch.tensor`` and ``tf.constant`` make them.
    A tensor of another framework raises ``TypeError``: no silent copies between frameworks.
    """
    if adapter.is_native(data):
        dtype = adapter.dtype_of(data)
        if dtype in _STORED_DTYPES:  # the common case, decided without building dtypes
            return data
        return adapter.cast(data, compute_dtype(dtype, name))
    if data is None:
        raise TypeError(f"{name} is None; expected a 2-D array of real numbers (a tensor, a NumPy array or nested "
                        "lists)")
    if isinstance(data, (Number, np.generic)) or (isinstance(data, np.ndarray) and data.ndim == 0):
        _scalar(data, name)
    framework = framework_of(data)
    if framework == adapter.NAME:
        raise TypeError(
            f"{name} is a {type(data).__module__}.{type(data).__name__}, which the {adapter.NAME!r} backend does not "
            f"take; pass a {adapter.NATIVE_TYPE} (or a NumPy array)"
        )
    if framework not in (None, "numpy"):
        raise TypeError(
            f"{name} is a {FRAMEWORKS[framework].title} tensor ({type(data).__name__}) but the active backend "
            f"is {adapter.NAME!r}; convert it with d2lconv.to_numpy({name}) or use "
            f"d2lconv.use_backend({framework!r})"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", _RaggedWarning)
            array = np.asarray(data)
    except (ValueError, _RaggedWarning) as error:  # ragged nested lists
        raise ValueError(f"{name} is not a rectangular array: {error}") from None
    if array.dtype == object:
        raise TypeError(f"{name} must hold real numbers, got {type(data).__name__} with non-numeric entries")
    dtype = compute_dtype(array.dtype, name)
    if not isinstance(data, (np.ndarray, np.generic)):
        dtype = np.dtype(np.float32)  # Python floats are float64 only by accident, as in torch.tensor([0.5])
    return adapter.from_numpy(np.ascontiguousarray(array, dtype=dtype))


def check_image(x: Any, name: str) -> tuple[int, int]:
    """The last two axes' sizes of ``x`` if it has at least two axes and no empty one, else a ``ValueError``.

    Any leading axes (a batch, channels) are allowed: each ``(height, width)`` slice is one image.
    """
    shape = tuple(x.shape)
    if len(shape) < 2:
        raise ValueError(f"{name} must have at least 2 dimensions (..., height, width), got shape {shape}")
    if 0 in shape:
        raise ValueError(f"{name} must not be empty, got shape {shape}")
    return int(shape[-2]), int(shape[-1])


def _scalar(data: Any, name: str) -> None:
    """A single number where a 2-D array belongs: say so, and how to write it as one."""
    value = data.item() if isinstance(data, (np.ndarray, np.generic)) else data
    if isinstance(value, (str, bytes, complex)):
        return  # text or a complex number: the dtype check names it
    raise ValueError(f"{name} must be 2-D (height, width), got the scalar {value!r}"
                     f" (as a 1x1 {'kernel' if name == 'K' else 'array'}: [[{value!r}]])")


def check_matrix(x: Any, name: str) -> tuple[int, int]:
    """The shape of ``x`` if it is a non-empty 2-D tensor, else a ``ValueError`` that shows the shape."""
    shape = tuple(x.shape)
    if not shape:
        raise ValueError(f"{name} must be 2-D (height, width), got a scalar (shape ())")
    if len(shape) != 2:
        raise ValueError(f"{name} must be 2-D (height, width), got shape {shape}")
    if 0 in shape:
        raise ValueError(f"{name} must not be empty, got shape {shape}")
    return int(shape[0]), int(shape[1])


def pair(value: Any, name: str, *, minimum: int) -> tuple[int, int]:
    """An int or a pair of ints, each at least ``minimum``, as a pair."""
    if type(value) is int and value >= minimum:  # the common cases first: this runs on every call
        return value, value
    if type(value) is tuple and len(value) == 2 and type(value[0]) is int and type(value[1]) is int \
            and min(value) >= minimum:
        return value
    items = (value, value) if isinstance(value, Integral) else value
    try:
        items = tuple(items)
    except TypeError:
        items = ()
    if len(items) != 2 or not all(isinstance(v, Integral) and not isinstance(v, bool) for v in items):
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    if min(items) < minimum:
        raise ValueError(f"{name} must be at least {minimum} in each dimension, got {value!r}")
    return int(items[0]), int(items[1])


def dilation_pair(dilation: Any) -> tuple[int, int]:
    """``dilation`` as two ints >= 1: kernel taps ``d`` pixels apart (1 is the plain, contiguous kernel)."""
    return pair(dilation, "dilation", minimum=1)


def check_span(kernel_shape: tuple[int, int], dilation: tuple[int, int], input_shape: tuple[int, int],
               padded: tuple[int, int]) -> None:
    """A ``ValueError`` naming the shapes if the (dilated) kernel is larger than the (padded) input."""
    span = tuple((k - 1) * d + 1 for k, d in zip(kernel_shape, dilation))
    if span[0] <= padded[0] and span[1] <= padded[1]:
        return
    kernel = f"kernel of shape {kernel_shape}"
    if span != kernel_shape:
        kernel += f" with dilation {dilation} spans {span}, which"
    raise ValueError(
        f"{kernel} is larger than the input of shape {input_shape}"
        + (f" padded to {padded}" if padded != input_shape else "")
    )


def kernel_size_pair(kernel_size: Any) -> tuple[int, int]:
    """``kernel_size`` as two positive ints (an int ``k`` means ``(k, k)``, as in the frameworks)."""
    return pair(kernel_size, "kernel_size", minimum=1)


def pad_amounts(
    padding: Any, input_shape: tuple[int, int], kernel_shape: tuple[int, int], stride: tuple[int, int]
) -> tuple[tuple[int, int], tuple[int, int]]:
    """Zero padding ``((top, bottom), (left, right))`` for an int, a pair, ``"valid"`` or ``"same"``.

    An int ``p`` (or a pair ``(p_h, p_w)``) pads ``p`` rows or columns on *each* side, as the book's next
    section does. ``"same"`` pads so that the output has ``ceil(n / stride)`` elements per axis, putting the
    odd one at the end (the rule of TensorFlow's and PyTorch's ``"same"``).
    """
    if padding == 0 and type(padding) is int:
        return (0, 0), (0, 0)
    if isinstance(padding, str):
        mode = padding.strip().lower()
        if mode == "valid":
            return (0, 0), (0, 0)
        if mode == "same":
            amounts = []
            for n, k, s in zip(input_shape, kernel_shape, stride):
                total = max((math.ceil(n / s) - 1) * s + k - n, 0)
                amounts.append((total // 2, total - total // 2))
            return amounts[0], amounts[1]
        raise ValueError(f"padding must be an int, a pair of ints, 'valid' or 'same', got {padding!r}")
    p_h, p_w = pair(padding, "padding", minimum=0)
    return (p_h, p_h), (p_w, p_w)


def output_shape(
    input_shape: tuple[int, int], kernel_shape: tuple[int, int], total_padding: tuple[int, int], stride: tuple[int, int]
) -> tuple[int, int]:
    """``floor((n - k + p + s) / s)`` per axis, with ``p`` the total padding of that axis."""
    return tuple((n - k + p + s) // s for n, k, p, s in zip(input_shape, kernel_shape, total_padding, stride))
