"""Property tests: random shapes, padding, strides, methods, dtypes and values against the float64 oracle.

Hypothesis draws the problem (a seed for the values, so examples stay small to store and quick to build);
every method must be exact per window (``assert_exact``), except ``method="fft"`` asked for by name, which
keeps the FFT's documented global bound. The value patterns are the hard ones for an FFT: a dark region
beside a bright one, one huge pixel, blocks of zeros, NaN and inf.
"""

from __future__ import annotations

import numpy as np
from conftest import assert_exact, fft_preferred, method_is_unavailable
from hypothesis import given
from hypothesis import strategies as st
from test_exactness import global_bound

import d2lconv as dc
from d2lconv._inputs import pad_amounts

METHODS = [method for method in dc.METHODS if method_is_unavailable(method) is None]
PATTERNS = ["normal", "uniform", "bright-half", "spike", "zero-block", "integers"]
KERNELS = ["normal", "positive", "rank-one", "with-zeros"]
DTYPES = [np.float32, np.float64, np.float16, np.int32]


def values(pattern: str, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    if pattern == "integers":
        return rng.integers(-50, 50, shape).astype(np.float64)
    X = rng.random(shape) if pattern == "uniform" else rng.standard_normal(shape)
    if pattern == "bright-half":
        X[:, shape[1] // 2:] *= 1e4
    elif pattern == "spike":
        X[rng.integers(shape[0]), rng.integers(shape[1])] = 1e6
    elif pattern == "zero-block":
        X[shape[0] // 4:3 * shape[0] // 4 + 1, shape[1] // 4:] = 0.0
    return X


def kernel(kind: str, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    if kind == "positive":
        return rng.random(shape) + 0.01
    if kind == "rank-one":  # quarters times quarters: exactly rank one in every dtype, float16 included
        return np.outer(rng.integers(-8, 9, shape[0]) / 4, rng.integers(-8, 9, shape[1]) / 4)
    K = rng.standard_normal(shape)
    if kind == "with-zeros":
        K[rng.random(shape) < 0.4] = 0.0
    return K


@st.composite
def problems(draw, methods=METHODS):
    """``(X, K, padding, stride, method)`` with the kernel fitting the padded input."""
    method = draw(st.sampled_from(methods))
    shape = (draw(st.integers(1, 40)), draw(st.integers(1, 40)))
    padding = draw(st.one_of(st.integers(0, 3), st.tuples(st.integers(0, 3), st.integers(0, 3)),
                             st.sampled_from(["same", "valid"])))
    stride = draw(st.one_of(st.integers(1, 3), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    pads = (padding, padding) if isinstance(padding, int) else padding
    limits = [min(13, n + 2 * p) if isinstance(p, int) else min(13, n) for n, p in zip(shape, pads)]
    kernel_shape = (draw(st.integers(1, limits[0])), draw(st.integers(1, limits[1])))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    dtype = draw(st.sampled_from(DTYPES))
    X = values(draw(st.sampled_from(PATTERNS)), shape, rng)
    K = kernel("rank-one" if method == "separable" else draw(st.sampled_from(KERNELS)), kernel_shape, rng)
    if dtype != np.int32 and draw(st.booleans()):  # NaN or inf at a few places
        spots = rng.integers(0, X.size, draw(st.integers(1, 3)))
        X.flat[spots] = rng.choice([np.nan, np.inf, -np.inf], len(spots))
    if dtype == np.int32:
        X, K = np.round(X).clip(-1e6, 1e6), np.round(16 * K if method == "separable" else 3 * K)
    elif dtype == np.float16:
        X = X.clip(-6e4, 6e4)  # representable in float16
    return X.astype(dtype), K.astype(dtype), padding, stride, method


def check(X, K, padding, stride, method):
    from d2lconv._inputs import pair

    strides = pair(stride, "stride", minimum=1)
    Y = dc.corr2d(X, K, method=method, padding=padding, stride=strides)
    pads = pad_amounts(padding, X.shape, K.shape, strides)
    with np.errstate(invalid="ignore"):
        slack = global_bound(np.pad(X.astype(np.float64), pads), K) if method == "fft" else None
    assert_exact(Y, X.astype(np.float64), K.astype(np.float64), pads, strides, slack=slack)


@given(problems())
def test_every_method_is_exact_per_window(problem):
    check(*problem)


@given(problems(methods=["auto"]))
def test_auto_is_exact_per_window_even_when_it_takes_the_fft_for_everything(problem):
    with fft_preferred():
        check(*problem)
