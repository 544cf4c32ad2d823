"""The PyTorch backend: reads like the book's PyTorch tab (``import torch; from torch import nn``).

Every method is differentiable with autograd, the book's element-by-element loop included (PyTorch records
``Y[i, j] = ...`` as a copy into a slice). ``method="native"`` is ``torch.nn.functional.conv2d`` on the tab's
NCHW layout, and the FFT path uses ``torch.fft``.
"""

from __future__ import annotations

import sys
from functools import partial
from typing import Any

import numpy as np
import torch
import torch.autograd.forward_ad as fwAD
import torch.nn.functional as F
from torch import nn

from d2lconv import methods
from d2lconv._corr import correlate
from d2lconv._inputs import pair

NAME = "torch"
NATIVE_TYPE = "torch.Tensor"
# torch.fft's rfft2 correlation cost about as much as 60 eager multiply-add passes at 512-2048 pixels.
FFT_PASSES = 60
# F.conv2d is one call where direct is h * w small ones: it won up to about 256x256 with a 3x3 kernel.
NATIVE_BELOW = 1 << 18
_this = sys.modules[__name__]

# NumPy dtype <-> torch dtype, filled on first sight (dtype_of runs on every call, so it is a dict look-up).
_NUMPY_DTYPES: dict[torch.dtype, np.dtype] = {torch.float32: np.dtype(np.float32), torch.float64: np.dtype(np.float64)}
_TORCH_DTYPES: dict[np.dtype, torch.dtype] = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}


def is_native(x: Any) -> bool:
    return isinstance(x, torch.Tensor)


def from_numpy(array: np.ndarray) -> torch.Tensor:
    """The array as a CPU tensor of its dtype, sharing its memory (as ``torch.from_numpy`` does)."""
    return torch.from_numpy(array) if array.flags.writeable else torch.tensor(array)


def to_numpy(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().numpy()


def dtype_of(x: torch.Tensor) -> np.dtype:
    dtype = _NUMPY_DTYPES.get(x.dtype)
    if dtype is None:
        try:
            dtype = torch.empty(0, dtype=x.dtype).numpy().dtype
        except TypeError:  # bfloat16, float8, complex32: NumPy has none, so name a stand-in of the same kind
            dtype = np.dtype(np.complex64 if x.dtype.is_complex else np.float16 if x.dtype.is_floating_point
                             else np.int64)
        _NUMPY_DTYPES[x.dtype] = dtype
    return dtype


def cast(x: torch.Tensor, dtype: np.dtype) -> torch.Tensor:
    """``x.to(dtype)``: differentiable, so a gradient flows back in ``x``'s own dtype."""
    dtype = np.dtype(dtype)
    target = _TORCH_DTYPES.get(dtype)
    if target is None:
        target = _TORCH_DTYPES[dtype] = torch.from_numpy(np.empty(0, dtype=dtype)).dtype
    return x.to(target)


def is_constant(K: torch.Tensor) -> bool:
    """True when autograd cannot reach ``K``: it needs no gradient (or grad mode is off) and has no tangent.

    A forward-mode tangent (``torch.autograd.forward_ad``) does not set ``requires_grad`` but is a
    derivative all the same, so a dual tensor is not constant either.
    """
    return (not K.requires_grad or not torch.is_grad_enabled()) and fwAD.unpack_dual(K).tangent is None


def transpose(x: torch.Tensor) -> torch.Tensor:
    return x.t()


def flip(x: torch.Tensor) -> torch.Tensor:
    return torch.flip(x, (0, 1))


def pad(x: torch.Tensor, rows: tuple[int, int], cols: tuple[int, int]) -> torch.Tensor:
    return F.pad(x, (*cols, *rows))  # F.pad lists the last axis first


def corr2d_loop(X: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Compute 2D cross-correlation (the book's loop, as in its PyTorch tab)."""
    h, w = K.shape
    # The tab's torch.zeros((...)) is always float32; keep the input's dtype and device instead.
    Y = torch.zeros((X.shape[0] - h + 1, X.shape[1] - w + 1), dtype=X.dtype, device=X.device)
    for i in range(Y.shape[0]):
        for j in range(Y.shape[1]):
            Y[i, j] = (X[i:i + h, j:j + w] * K).sum()
    return Y


corr2d_direct = methods.corr2d_direct
corr2d_separable = methods.corr2d_separable
corr2d_fft = partial(
    methods.corr2d_fft,
    rfft2=lambda x, s: torch.fft.rfft2(x, s=s),
    irfft2=lambda x, s: torch.fft.irfft2(x, s=s),
    flip=flip,
)


def corr2d_native(X: torch.Tensor, K: torch.Tensor, stride: tuple[int, int]) -> torch.Tensor:
    """``F.conv2d`` on the tab's (example, channel, height, width) layout, one example and one channel."""
    return F.conv2d(X[None, None], K[None, None], stride=stride)[0, 0]


class Conv2D(nn.Module):
    """The book's ``Conv2D``: ``corr2d(x, self.weight) + self.bias`` with ``weight`` from ``torch.rand``."""

    def __init__(self, kernel_size: tuple[int, int], *, bias: bool = True, seed: int | None = None,
                 padding: Any = 0, stride: Any = 1) -> None:
        super().__init__()
        generator = None if seed is None else torch.Generator().manual_seed(seed)
        self.weight = nn.Parameter(torch.rand(kernel_size, generator=generator))
        if bias:
            self.bias = nn.Parameter(torch.zeros(1))
        else:
            self.register_parameter("bias", None)
        self.padding, self.stride = padding, pair(stride, "stride", minimum=1)

    def extra_repr(self) -> str:
        return (f"kernel_size={tuple(self.weight.shape)}, bias={self.bias is not None}, "
                f"padding={self.padding!r}, stride={self.stride}")

    def forward(self, x: Any) -> torch.Tensor:
        Y = correlate(_this, x, self.weight, padding=self.padding, stride=self.stride)
        return Y if self.bias is None else Y + self.bias


class _Trainer:
    """The tab's learning loop, one ``step()`` per epoch, on either layer."""

    def __init__(self, X: torch.Tensor, Y: torch.Tensor, conv2d: nn.Module, kernel_size: tuple[int, int],
                 lr: float) -> None:
        self.X, self.Y, self.conv2d, self.kernel_size, self.lr = X, Y, conv2d, kernel_size, lr

    def step(self) -> float:
        conv2d, lr = self.conv2d, self.lr
        Y_hat = conv2d(self.X)
        l = (Y_hat - self.Y) ** 2
        conv2d.zero_grad()
        loss = l.sum()
        loss.backward()
        # Update the kernel
        conv2d.weight.data[:] -= lr * conv2d.weight.grad
        if conv2d.bias is not None:  # the tab has no bias; with one it takes the same step
            conv2d.bias.data[:] -= lr * conv2d.bias.grad
        return loss.item()

    def parameters(self) -> tuple[np.ndarray, float | None]:
        kernel = to_numpy(self.conv2d.weight).reshape(self.kernel_size).copy()
        return kernel, None if self.conv2d.bias is None else self.conv2d.bias.item()


def make_trainer(X: torch.Tensor, Y: torch.Tensor, kernel_size: tuple[int, int], *, layer: str, bias: bool,
                 init: str, seed: int | None, lr: float) -> _Trainer:
    """``nn.LazyConv2d`` on (1, 1, height, width) tensors as the tab trains it, or this module's ``Conv2D``."""
    if layer == "builtin":
        # The tab's layer makes float32 weights; dtype=X.dtype lets a float64 X train too.
        conv2d = nn.LazyConv2d(1, kernel_size=kernel_size, bias=bias, dtype=X.dtype)
        X = X.reshape((1, 1, *X.shape))
        Y = Y.reshape((1, 1, *Y.shape))
        with torch.random.fork_rng(devices=[], enabled=seed is not None), torch.no_grad():
            if seed is not None:
                torch.manual_seed(seed)  # only inside the fork: the user's global RNG is left as it was
            conv2d(X)  # a lazy layer makes (and initialises) its weights on its first call
    else:
        conv2d = Conv2D(kernel_size, bias=bias, seed=seed).to(X.dtype)
    if init == "zeros":
        with torch.no_grad():
            for param in conv2d.parameters():
                param.zero_()
    return _Trainer(X, Y, conv2d, kernel_size, lr)


def corr2d_vjp(X: torch.Tensor, K: torch.Tensor, G: torch.Tensor, *, method: str, padding: Any,
               stride: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients of ``sum(G * corr2d(X, K))`` by autograd, through the common ``correlate``."""
    X = X.detach().requires_grad_()
    K = K.detach().requires_grad_()
    Y = correlate(_this, X, K, method=method, padding=padding, stride=stride)
    dX, dK = torch.autograd.grad(Y, (X, K), G.to(Y.dtype))
    return dX, dK


def layer_vjp(layer: Conv2D, x: torch.Tensor, G: torch.Tensor) -> dict[str, torch.Tensor]:
    """Gradients of ``sum(G * layer(x))`` for each named parameter, leaving their ``.grad`` untouched."""
    params = dict(layer.named_parameters())
    Y = layer(x)
    grads = torch.autograd.grad(Y, tuple(params.values()), G.to(Y.dtype))
    return dict(zip(params, grads))


def layer_parameters(layer: Conv2D) -> dict[str, np.ndarray]:
    """The layer's parameters as NumPy arrays (copies), by name."""
    return {name: to_numpy(param).copy() for name, param in layer.named_parameters()}


def sparse_matrix(rows: np.ndarray, cols: np.ndarray, values: np.ndarray, shape: tuple[int, int]) -> torch.Tensor:
    """A coalesced ``torch.sparse_coo_tensor`` (duplicate entries summed), ready for ``torch.sparse.mm``."""
    indices = torch.from_numpy(np.stack([rows, cols]).astype(np.int64))
    values = torch.from_numpy(np.ascontiguousarray(values))
    return torch.sparse_coo_tensor(indices, values, shape, check_invariants=True).coalesce()
