"""The NumPy backend: no framework needed, the default, and the reference the tests compare against.

It reads like the book's MXNet tab (whose ``np`` is NumPy-compatible). NumPy has no autodiff, so
``Conv2D`` carries its own backward: the gradient of a cross-correlation with respect to its kernel is
again a cross-correlation (``d2lconv.methods.kernel_gradient``).
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from functools import partial
from typing import Any

import numpy as np

from d2lconv import methods
from d2lconv._corr import correlate
from d2lconv._inputs import as_tensor, check_matrix, pad_amounts, pair

NAME = "numpy"
NATIVE_TYPE = "numpy.ndarray"
NO_NATIVE = "NumPy has no convolution operation of its own (use method='direct', 'separable' or 'fft')"
# A float32 FFT correlation costs about as much as this many in-cache multiply-add passes (2048x2048):
# 60 with numpy.fft, 36 with SciPy's faster transforms (see _fft_module).
FFT_PASSES = 36 if importlib.util.find_spec("scipy") else 60
NATIVE_BELOW = 0
NATIVE_TAPS = 0
_this = sys.modules[__name__]


def is_native(x: Any) -> bool:
    return isinstance(x, np.ndarray)


def from_numpy(array: np.ndarray) -> np.ndarray:
    return array


def to_numpy(x: Any) -> np.ndarray:
    return np.asarray(x)


def dtype_of(x: np.ndarray) -> np.dtype:
    return x.dtype


def cast(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    return x.astype(dtype)


def is_constant(x: np.ndarray) -> bool:
    """NumPy arrays never carry gradients, so a kernel can always be factorised."""
    return True


def transpose(x: np.ndarray) -> np.ndarray:
    return x.T


def flip(x: np.ndarray) -> np.ndarray:
    return x[::-1, ::-1]


def pad(x: np.ndarray, rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
    return np.pad(x, (rows, cols))


def corr2d_loop(X: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Compute 2D cross-correlation (the book's loop, as in its MXNet tab)."""
    h, w = K.shape
    Y = np.zeros((X.shape[0] - h + 1, X.shape[1] - w + 1), dtype=X.dtype)
    for i in range(Y.shape[0]):
        for j in range(Y.shape[1]):
            Y[i, j] = (X[i:i + h, j:j + w] * K).sum()
    return Y


# NumPy evaluates one operation at a time, so the shared sum of shifted slices would stream the whole
# output through memory twice per kernel element. These versions work on bands of output rows small enough
# to stay in the CPU cache, with in-place multiply-adds: the same arithmetic, a fraction of the memory
# traffic, and never more than one band of extra memory.
_BAND_BYTES = 1 << 20


def _bands(rows: int, row_bytes: int) -> Iterator[tuple[int, int]]:
    """Consecutive ``(start, stop)`` row ranges of about ``_BAND_BYTES`` each."""
    step = max(1, _BAND_BYTES // max(row_bytes, 1))
    return ((start, min(start + step, rows)) for start in range(0, rows, step))


def _accumulate(out: np.ndarray, terms: Iterator[tuple[np.ndarray, float]], scratch: np.ndarray) -> None:
    """``out[...] = sum(source * weight)`` with in-place operations only."""
    source, weight = next(terms)
    np.multiply(source, weight, out=out)
    for source, weight in terms:
        np.multiply(source, weight, out=scratch)
        out += scratch


def corr2d_direct(X: np.ndarray, K: np.ndarray, stride: tuple[int, int] = (1, 1)) -> np.ndarray:
    """The shared sum of shifted slices (``methods.corr2d_direct``), band by band in the cache."""
    (s_h, s_w), taps = stride, K.tolist()
    out_h, out_w = methods.valid_shape(X.shape, K.shape, stride)
    if out_h * out_w * K.size < _BAND_BYTES // 16:  # small enough for the cache anyway: fewer Python steps
        return methods.corr2d_direct(X, K, stride)
    Y = np.empty((out_h, out_w), dtype=X.dtype)
    scratch = np.empty_like(Y[:max(1, _BAND_BYTES // (out_w * X.itemsize))])
    for start, stop in _bands(out_h, out_w * X.itemsize):
        terms = ((X[start * s_h + a:(stop - 1) * s_h + a + 1:s_h, b:b + (out_w - 1) * s_w + 1:s_w], taps[a][b])
                 for a in range(K.shape[0]) for b in range(K.shape[1]))
        _accumulate(Y[start:stop], terms, scratch[:stop - start])
    return Y


def corr2d_separable(X: np.ndarray, column: np.ndarray, row: np.ndarray,
                     stride: tuple[int, int] = (1, 1)) -> np.ndarray:
    """A row pass then a column pass (``methods.corr2d_separable``), band by band in the cache."""
    (s_h, s_w), h, w = stride, column.shape[0], row.shape[0]
    out_h, out_w = methods.valid_shape(X.shape, (h, w), stride)
    Y = np.empty((out_h, out_w), dtype=X.dtype)
    band = max(1, _BAND_BYTES // (out_w * X.itemsize))
    rows_needed = (band - 1) * s_h + h
    Z = np.empty((rows_needed, out_w), dtype=X.dtype)
    scratch = np.empty_like(Z)
    for start, stop in _bands(out_h, out_w * X.itemsize):
        first, last = start * s_h, (stop - 1) * s_h + h  # the input rows this band of output needs
        z = Z[:last - first]
        _accumulate(z, ((X[first:last, b:b + (out_w - 1) * s_w + 1:s_w], v) for b, v in enumerate(row.tolist())),
                    scratch[:last - first])
        terms = ((z[a:a + (stop - start - 1) * s_h + 1:s_h], u) for a, u in enumerate(column.tolist()))
        _accumulate(Y[start:stop], terms, scratch[:stop - start])
    return Y


def _fft_module() -> Any:
    """SciPy's ``scipy.fft`` where installed, else ``numpy.fft``: the same pocketfft algorithm, but SciPy's
    runs float32 2-D transforms about 3x faster (0.046 s against 0.16 s for a 2048x2048 rfft2 here)."""
    try:
        from scipy import fft
    except ImportError:
        fft = np.fft
    return fft


corr2d_fft = partial(
    methods.corr2d_fft,
    rfft2=lambda x, s: _fft_module().rfft2(x, s),
    irfft2=lambda x, s: _fft_module().irfft2(x, s),
    flip=flip,
)
corr2d_native = None


class Conv2D:
    """The book's ``Conv2D``: ``corr2d(x, weight) + bias``, with a hand-written backward."""

    def __init__(self, kernel_size: tuple[int, int], *, bias: bool = True, seed: int | None = None,
                 padding: Any = 0, stride: Any = 1) -> None:
        rng = np.random.default_rng(seed)
        self.weight = rng.random(kernel_size, dtype=np.float32)  # torch.rand(kernel_size) in the PyTorch tab
        self.bias = np.zeros(1, dtype=np.float32) if bias else None
        self.padding, self.stride = padding, pair(stride, "stride", minimum=1)
        self._input: np.ndarray | None = None  # the padded input of the last forward, for backward

    def __call__(self, x: Any) -> np.ndarray:
        return self.forward(x)

    def forward(self, x: Any) -> np.ndarray:
        x = as_tensor(_this, x, "x")
        rows, cols = pad_amounts(self.padding, check_matrix(x, "x"), self.weight.shape, self.stride)
        self._input = pad(x, rows, cols)
        Y = correlate(_this, self._input, self.weight, stride=self.stride)
        return Y if self.bias is None else Y + self.bias

    def backward(self, grad_output: np.ndarray) -> dict[str, np.ndarray]:
        """Gradients of ``sum(grad_output * forward(x))`` for the last ``x`` passed forward."""
        if self._input is None:
            raise RuntimeError("call the layer on an input before backward()")
        grads = {"weight": methods.kernel_gradient(self._input, grad_output, self.weight.shape, self.stride)}
        if self.bias is not None:
            grads["bias"] = np.asarray([grad_output.sum()], dtype=self.bias.dtype)
        return grads

    def parameters(self) -> dict[str, np.ndarray]:
        return {"weight": self.weight} if self.bias is None else {"weight": self.weight, "bias": self.bias}


class _Trainer:
    """Plain gradient descent on the summed squared error, one ``step()`` per epoch."""

    def __init__(self, X: np.ndarray, Y: np.ndarray, layer: Conv2D, lr: float) -> None:
        self.X, self.Y, self.layer, self.lr = X, Y, layer, lr

    def step(self) -> float:
        Y_hat = self.layer(self.X)
        l = (Y_hat - self.Y) ** 2
        grads = self.layer.backward(2 * (Y_hat - self.Y))
        # Update the kernel
        for name, value in self.layer.parameters().items():
            value -= self.lr * grads[name]
        return float(l.sum())

    def parameters(self) -> tuple[np.ndarray, float | None]:
        bias = None if self.layer.bias is None else float(self.layer.bias[0])
        return self.layer.weight.copy(), bias


def make_trainer(X: np.ndarray, Y: np.ndarray, kernel_size: tuple[int, int], *, layer: str, bias: bool,
                 init: str, seed: int | None, lr: float) -> _Trainer:
    """NumPy has no built-in conv layer: both ``layer="builtin"`` and ``"custom"`` train ``Conv2D``."""
    conv2d = Conv2D(kernel_size, bias=bias, seed=seed)
    conv2d.weight = conv2d.weight.astype(X.dtype)
    if init == "zeros":
        conv2d.weight[...] = 0
    if conv2d.bias is not None:
        conv2d.bias = conv2d.bias.astype(X.dtype)
    return _Trainer(X, Y, conv2d, lr)


def corr2d_vjp(X: np.ndarray, K: np.ndarray, G: np.ndarray, *, method: str, padding: Any,
               stride: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Gradients of ``sum(G * corr2d(X, K))``: NumPy has no autodiff, so they are the analytic adjoints."""
    correlate(_this, X, K, method=method, padding=padding, stride=stride)  # the forward pass, as autodiff would
    rows, cols = pad_amounts(padding, X.shape, K.shape, stride)
    padded = pad(X, rows, cols)
    dK = methods.kernel_gradient(padded, G, K.shape, stride)
    dX = methods.input_gradient(G, K, padded.shape, stride)
    return dX[rows[0]:rows[0] + X.shape[0], cols[0]:cols[0] + X.shape[1]], dK


def layer_vjp(layer: Conv2D, x: np.ndarray, G: np.ndarray) -> dict[str, np.ndarray]:
    """Gradients of ``sum(G * layer(x))`` with respect to the layer's parameters (its own backward)."""
    layer(x)
    return layer.backward(G)


def layer_parameters(layer: Conv2D) -> dict[str, np.ndarray]:
    """The layer's parameters as NumPy arrays, by name."""
    return {name: value.copy() for name, value in layer.parameters().items()}


def sparse_matrix(rows: np.ndarray, cols: np.ndarray, values: np.ndarray, shape: tuple[int, int]) -> Any:
    """NumPy has no sparse type; SciPy's CSR matrix is the one its users have."""
    try:
        from scipy import sparse
    except ModuleNotFoundError as error:
        raise ImportError("sparse=True on the numpy backend needs SciPy: pip install scipy") from error
    return sparse.csr_matrix((values, (rows, cols)), shape=shape)
