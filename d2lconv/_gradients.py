"""Gradients through the active backend's autodiff, returned as NumPy arrays for inspection and tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from d2lconv._backend import active_adapter
from d2lconv._corr import result_shape
from d2lconv._inputs import as_tensor, check_image, check_matrix, dilation_pair, pair, to_numpy


def corr2d_gradients(
    X: Any, K: Any, grad_output: Any, *, method: str = "auto", padding: Any = 0, stride: Any = 1, dilation: Any = 1
) -> tuple[np.ndarray, np.ndarray]:
    """``(dX, dK)``: the gradients of ``sum(grad_output * corr2d(X, K, ...))``, by the framework's autodiff.

    ``X`` may be a stack of images ``(..., H, W)``; ``dK`` then sums over all of them. On NumPy, which has
    no autodiff, they are the analytic adjoints. Raises the framework's own error where the chosen method
    is not differentiable (the book's ``"loop"`` on MXNet, for example).
    """
    adapter = active_adapter()
    X, K = as_tensor(adapter, X, "X"), as_tensor(adapter, K, "K")
    dilations = dilation_pair(dilation)
    expected = tuple(X.shape[:-2]) + result_shape(check_image(X, "X"), check_matrix(K, "K"), padding, stride,
                                                  dilations)
    G = as_tensor(adapter, grad_output, "grad_output")
    if tuple(G.shape) != expected:
        raise ValueError(f"grad_output has shape {tuple(G.shape)} but corr2d gives {expected}")
    G = adapter.cast(G, adapter.dtype_of(X)) if adapter.dtype_of(G) != adapter.dtype_of(X) else G
    dX, dK = adapter.corr2d_vjp(X, K, G, method=method, padding=padding, stride=pair(stride, "stride", minimum=1),
                                dilation=dilations)
    return to_numpy(dX), to_numpy(dK)


def gradients(function: Callable[..., Any], X: Any, K: Any, grad_output: Any,
              **options: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(dX, dK)``: the gradients of ``sum(grad_output * function(X, K, **options))``, by the framework's autodiff.

    ``function`` is one of d2lconv's functions of an input and a kernel (:func:`~d2lconv.corr2d`,
    ``convolve2d``, ``corr2d_multi_in``, ``corr2d_multi_in_out``, ``corr2d_multi_in_out_1x1``) or, on the
    frameworks with autodiff, any function of two tensors built from them; ``options`` are its keyword
    arguments: ``gradients(dc.corr2d_multi_in_out, X, K, G, groups=2, stride=2)``. On NumPy, which has no
    autodiff, they are the analytic adjoints of d2lconv's own functions.
    """
    adapter = active_adapter()
    X, K = as_tensor(adapter, X, "X"), as_tensor(adapter, K, "K")
    Y = function(X, K, **options)  # the forward pass first: its shape, and its errors for bad input
    G = as_tensor(adapter, grad_output, "grad_output")
    if tuple(G.shape) != tuple(Y.shape):
        name = getattr(function, "__name__", "function")
        raise ValueError(f"grad_output has shape {tuple(G.shape)} but {name} gives {tuple(Y.shape)}")
    G = adapter.cast(G, adapter.dtype_of(Y)) if adapter.dtype_of(G) != adapter.dtype_of(Y) else G
    dX, dK = adapter.vjp(function, X, K, G, options)
    return to_numpy(dX), to_numpy(dK)


def layer_gradients(layer: Any, x: Any, grad_output: Any) -> dict[str, np.ndarray]:
    """Gradients of ``sum(grad_output * layer(x))`` for each parameter of a :func:`d2lconv.Conv2D` layer."""
    adapter = active_adapter()
    x, G = as_tensor(adapter, x, "x"), as_tensor(adapter, grad_output, "grad_output")
    y_shape = tuple(layer(x).shape)  # the forward pass first: its shape, and its errors for bad input
    if tuple(G.shape) != y_shape:
        raise ValueError(f"grad_output has shape {tuple(G.shape)} but the layer gives {y_shape}")
    return {name: to_numpy(grad) for name, grad in adapter.layer_vjp(layer, x, G).items()}


def vjp_by_adjoints(function: Callable[..., Any], X: Any, K: Any, G: Any, options: dict[str, Any], *,
                    corr2d_vjp: Callable[..., tuple[Any, Any]], channels_vjp: Callable[..., tuple[Any, Any]],
                    flip: Callable[[Any], Any], backend: str, framework: str) -> tuple[Any, Any]:
    """``(dX, dK)`` of ``sum(G * function(X, K, **options))`` for a backend without autodiff (NumPy, Dask):
    each of d2lconv's own functions is mapped onto the backend's analytic adjoints ``corr2d_vjp`` (one kernel)
    and ``channels_vjp`` (``corr2d_multi_in_out``); ``flip`` turns a kernel by 180 degrees."""
    import d2lconv as dc

    if function in (dc.corr2d, dc.convolve2d):
        flipped = function is dc.convolve2d
        dX, dK = corr2d_vjp(X, flip(K) if flipped else K, G, method=options.get("method", "auto"),
                            padding=options.get("padding", 0),
                            stride=pair(options.get("stride", 1), "stride", minimum=1),
                            dilation=dilation_pair(options.get("dilation", 1)))
        return dX, (flip(dK) if flipped else dK)
    if function is dc.corr2d_multi_in_out:
        return channels_vjp(X, K, G, **options)
    if function is dc.corr2d_multi_in:
        last = options.get("data_format") == "channels_last"
        dX, dK = channels_vjp(X, K[None], G[..., None] if last else G[..., None, :, :], **options)
        return dX, dK[0]
    if function is dc.corr2d_multi_in_out_1x1:
        if options.get("method", "auto") == "auto":
            options = {**options, "method": "direct"}
        dX, dK = channels_vjp(X, K.reshape(K.shape[0], K.shape[1], 1, 1), G, **options)
        return dX, dK.reshape(K.shape)
    raise TypeError(f"{framework} has no autodiff: on the {backend} backend d2lconv.gradients takes corr2d, "
                    f"convolve2d, corr2d_multi_in, corr2d_multi_in_out or corr2d_multi_in_out_1x1, got {function!r}")
