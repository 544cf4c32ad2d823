"""The methods of ``corr2d`` on Dask arrays: each block computed once by the chunk backend's own ``correlate``.

``correlate_blocks`` is the hook ``d2lconv._corr.correlate`` hands a Dask array to, once it is checked and
padded: the array is cut into blocks with the halo their windows need (``tiling``), and every block runs
``correlate(chunk backend, window, K, method)`` (NumPy unless ``set_chunk_backend`` says otherwise), so
``method="auto"`` is the chunk backend's choice for that block, with its exactness certificate. The other
names are the adapter contract's: the methods by name, and the chunk backend's numbers and availability,
read through :func:`chunk_dependent`.
"""

from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np

from d2lconv import methods
from d2lconv.backends.dask import blocks
from d2lconv.backends.dask.selection import chunk_adapter, get_chunk_backend
from d2lconv.backends.dask.tensors import pad, small_to_numpy
from d2lconv.backends.dask.tiling import map_windows, tile

# Names of the adapter whose value is the chunk backend's (``method="auto"``'s cost model, FFT and native ops).
CHUNK_DEPENDENT = ("FFT_PASSES", "NATIVE_BELOW", "NATIVE_TAPS", "NO_FFT", "NO_NATIVE", "corr2d_fft", "corr2d_native",
                   "CHANNEL_AUTO", "corr2d_channels_native")


def correlate_blocks(method: str, X: da.Array, K: Any, stride: tuple[int, int],
                     dilation: tuple[int, int] = (1, 1)) -> da.Array:
    """Lazy ``corr2d`` of the padded ``X`` (``(..., H, W)``): every block is ``correlate(chunk backend, window,
    K, method)``.

    So each block runs the chunk backend's own path, ``method="auto"``'s choice and its exactness certificate
    (``d2lconv._exact``) included, on the block's own values. What cannot work fails now, not at compute time.
    """
    kernel = np.ascontiguousarray(small_to_numpy(K))
    chunks = chunk_adapter()
    if method in ("fft", "native") and getattr(chunks, f"corr2d_{method}") is None:
        raise ValueError(f"method={method!r} is not available on the 'dask' backend: "
                         f"{chunk_dependent('NO_FFT' if method == 'fft' else 'NO_NATIVE')}")
    if method == "separable" and methods.rank_one_factors(kernel) is None:
        raise ValueError(f"method='separable' needs a rank-one kernel; this {kernel.shape} kernel is not")
    extent = tuple((k - 1) * d + 1 for k, d in zip(kernel.shape, dilation))
    return map_windows(blocks.correlate_window, tile(X, extent, stride), dtype=X.dtype,
                       backend=get_chunk_backend(), method=method, kernel=kernel, stride=stride,
                       dilation=tuple(dilation), out_dtype=X.dtype)


def correlate_channel_blocks(method: str, X: da.Array, K: Any, stride: tuple[int, int], dilation: tuple[int, int],
                             groups: int, padding: tuple[tuple[int, int], tuple[int, int]],
                             channels_last: bool) -> da.Array:
    """Lazy ``corr2d_multi_in_out`` of ``X`` (checked, not yet padded): every block is the chunk backend's
    ``correlate_channels(window, K, groups, method, stride, dilation)``, its ``auto`` choice included.

    Every output channel needs every input channel of its group, so the channel axis is made *one chunk*
    (rechunked if the input splits it: channels are few, images large); the output holds all ``O`` channels
    in one chunk too. Batch axes keep the input's chunks, and the image axes are cut with the halo the
    dilated kernel needs, as for ``corr2d``. A channels-last input is moved to channels first lazily (a view
    per chunk) and the result moved back. What cannot work fails now, not at compute time.
    """
    kernel = np.ascontiguousarray(small_to_numpy(K))
    _check_channel_method(method, kernel)
    if channels_last:
        X = da.moveaxis(X, -1, -3)
    if padding != ((0, 0), (0, 0)):
        X = pad(X, *padding)
    if X.numblocks[-3] > 1:
        X = X.rechunk({X.ndim - 3: -1})
    tiles = tile(X, methods.dilated_shape(kernel.shape[2:], dilation), stride)
    Y = map_windows(blocks.correlate_channels_window, tiles, dtype=X.dtype,
                    leading=(*X.chunks[:-3], (kernel.shape[0],)), backend=get_chunk_backend(), method=method,
                    kernel=kernel, stride=tuple(stride), dilation=tuple(dilation), groups=groups)
    return da.moveaxis(Y, -3, -1) if channels_last else Y


def _check_channel_method(method: str, kernel: np.ndarray) -> None:
    """The errors ``corr2d_multi_in_out`` gives in memory for a method the chunk backend lacks or cannot apply."""
    chunks = chunk_adapter()
    if method == "native" and chunks.corr2d_channels_native is None:
        raise ValueError(f"method='native' is not available on the 'dask' backend: {chunk_dependent('NO_NATIVE')}")
    if method == "fft" and chunks.corr2d_fft is None:
        raise ValueError(f"method='fft' is not available on the 'dask' backend: {chunk_dependent('NO_FFT')}")
    if method == "separable":
        from d2lconv.channel_methods import rank_one_bank

        if kernel.shape[1] != 1:
            raise ValueError(f"method='separable' takes kernels with one input channel per group (K of shape "
                             f"(O, 1, h, w): depthwise convolutions, filter banks); this K has shape {kernel.shape}")
        if rank_one_bank(kernel) is None:
            raise ValueError(f"method='separable' needs rank-one kernels; not every kernel of this {kernel.shape} "
                             "K is one")


def corr2d_channels(X: da.Array, K: Any, stride: tuple[int, int], dilation: tuple[int, int], groups: int,
                    padding: tuple[tuple[int, int], tuple[int, int]], channels_last: bool, method: str,
                    factors: Any = None) -> da.Array:
    """d2lconv's ``method`` over channels on every block (each block factorises its own kernels)."""
    return correlate_channel_blocks(method, X, K, stride, dilation, groups, padding, channels_last)


def _channels_native(X: da.Array, K: Any, stride: tuple[int, int], dilation: tuple[int, int], groups: int,
                     padding: tuple[tuple[int, int], tuple[int, int]], channels_last: bool) -> da.Array:
    """The chunk backend's framework conv op over channels on every block."""
    return correlate_channel_blocks("native", X, K, stride, dilation, groups, padding, channels_last)


def corr2d_direct(X: da.Array, K: da.Array, stride: tuple[int, int] = (1, 1),
                  dilation: tuple[int, int] = (1, 1)) -> da.Array:
    """The chunk backend's sum of shifted slices on every block."""
    return correlate_blocks("direct", X, K, stride, dilation)


def corr2d_separable(X: da.Array, column: da.Array, row: da.Array, stride: tuple[int, int] = (1, 1),
                     dilation: tuple[int, int] = (1, 1)) -> da.Array:
    """The chunk backend's two 1-D passes on every block."""
    return correlate_blocks("separable", X, np.outer(small_to_numpy(column), small_to_numpy(row)), stride, dilation)


def _fft(X: da.Array, K: da.Array, stride: tuple[int, int] = (1, 1), dilation: tuple[int, int] = (1, 1)) -> da.Array:
    """The chunk backend's FFT correlation on every block (each block's own transform, halo included)."""
    return correlate_blocks("fft", X, K, stride, dilation)


def _native(X: da.Array, K: da.Array, stride: tuple[int, int] = (1, 1),
            dilation: tuple[int, int] = (1, 1)) -> da.Array:
    """The chunk backend's framework conv op on every block."""
    return correlate_blocks("native", X, K, stride, dilation)


def chunk_dependent(name: str) -> Any:
    """The value of adapter attribute ``name`` with the chunk backend in force."""
    chunks = chunk_adapter()
    if name == "corr2d_fft":
        return None if chunks.corr2d_fft is None else _fft
    if name == "corr2d_native":
        return None if chunks.corr2d_native is None else _native
    if name == "corr2d_channels_native":
        return None if chunks.corr2d_channels_native is None else _channels_native
    if name in ("NO_FFT", "NO_NATIVE"):
        return (f"its chunks are computed by the {chunks.NAME!r} backend (d2lconv.backends.dask.set_chunk_backend "
                f"chooses another): {getattr(chunks, name)}")
    return getattr(chunks, name)
