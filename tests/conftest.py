"""The shared suite runs unchanged on whichever backend ``D2LCONV_BACKEND`` names (numpy when unset)."""

from __future__ import annotations

import contextlib
import os
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import d2lconv as dc

BACKEND = dc.get_backend()


def reference_corr2d(X, K, padding=((0, 0), (0, 0)), stride=(1, 1), dilation=(1, 1)):
    """An independent float64 oracle: every window as a view, summed with einsum (any leading axes of X).

    A dilated kernel's window spans ``(k - 1) * d + 1`` pixels, of which every ``d``-th is a tap, as the
    definition says (the pixels between the taps are never read).
    """
    X = np.asarray(X, dtype=np.float64)
    X = np.pad(X, ((0, 0),) * (X.ndim - 2) + tuple(padding))
    K = np.asarray(K, dtype=np.float64)
    span = ((K.shape[0] - 1) * dilation[0] + 1, (K.shape[1] - 1) * dilation[1] + 1)
    windows = np.lib.stride_tricks.sliding_window_view(X, span, axis=(-2, -1))
    taps = windows[..., ::stride[0], ::stride[1], ::dilation[0], ::dilation[1]]
    return np.einsum("...ijab,ab->...ij", taps, K)


def reference_multi_in_out(X, K, groups=1, padding=((0, 0), (0, 0)), stride=(1, 1), dilation=(1, 1)):
    """The book's definitions in float64, with loops over examples, output channels and input channels::

        corr2d_multi_in(X, K) = sum(corr2d(x, k) for x, k in zip(X, K))
        corr2d_multi_in_out(X, K) = stack([corr2d_multi_in(X, k) for k in K], 0)

    where output channel ``o`` reads only the input channels of its group.
    """
    X, K = np.asarray(X, dtype=np.float64), np.asarray(K, dtype=np.float64)
    lead, (C, H, W) = X.shape[:-3], X.shape[-3:]
    O, per_group = K.shape[:2]
    examples = X.reshape(-1, C, H, W)
    results = []
    for x in examples:
        outputs = []
        for o in range(O):
            first = (o // (O // groups)) * per_group
            outputs.append(sum(reference_corr2d(x[first + c], K[o, c], padding, stride, dilation)
                               for c in range(per_group)))
        results.append(np.stack(outputs))
    return np.stack(results).reshape(*lead, *results[0].shape)


def assert_close(actual, expected, *, scale=None):
    """Compare through to_numpy with float32 tolerances, relative to the size of the terms summed."""
    actual = dc.to_numpy(actual)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    atol = 1e-5 * (scale if scale is not None else max(1.0, float(np.abs(expected).max(initial=0))))
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=atol)


def window_sums(X, K, padding=((0, 0), (0, 0)), stride=(1, 1), dilation=(1, 1)):
    """``sum(|X| * |K|)`` over each output's window: the scale each output's rounding error is measured against."""
    X = np.abs(np.asarray(X, dtype=np.float64))
    return reference_corr2d(np.where(np.isfinite(X), X, 0.0), np.abs(np.asarray(K, dtype=np.float64)), padding,
                            stride, dilation)


def assert_exact(actual, X, K, padding=((0, 0), (0, 0)), stride=(1, 1), *, slack=None, dilation=(1, 1)):
    """What auto promises: non-finite outputs exactly where the float64 oracle's are, and every other output
    within ``tolerance(dtype) * sum(|X| * |K|)`` over its own window (plus ``slack``, an array or a number)."""
    from d2lconv._exact import tolerance

    Y = dc.to_numpy(actual)
    with np.errstate(invalid="ignore"):  # inf * 0 in the oracle is NaN, as in every method
        expected = reference_corr2d(X, K, padding, stride, dilation)
    assert Y.shape == expected.shape, (Y.shape, expected.shape)
    finite = np.isfinite(expected)
    wrong = np.argwhere(np.isfinite(Y) != finite)
    assert not len(wrong), f"non-finite where the oracle is finite or the reverse, at {wrong[:5].tolist()}"
    allowed = tolerance(Y.dtype) * window_sums(X, K, padding, stride, dilation) + (0.0 if slack is None else slack)
    allowed = np.broadcast_to(allowed, Y.shape)
    error = np.abs(Y.astype(np.float64) - np.where(finite, expected, 0.0))
    over = np.argwhere(finite & (error > allowed))
    if len(over):
        at = tuple(over[0])
        raise AssertionError(f"{len(over)} outputs beyond their window's tolerance, e.g. at {at}: error "
                             f"{error[at]:.3g}, allowed {allowed[at]:.3g} (value {expected[at]:.6g})")


@contextlib.contextmanager
def fft_preferred():
    """auto's cost model with the FFT at its cheapest, so that auto takes it wherever the framework has one."""
    from d2lconv._backend import active_adapter

    adapter = active_adapter()
    saved = adapter.FFT_PASSES
    adapter.FFT_PASSES = 1 if saved is not None else None
    try:
        yield
    finally:
        adapter.FFT_PASSES = saved


def method_is_unavailable(method: str) -> str | None:
    """Why ``method`` does not exist on this backend (a framework limitation), or None."""
    from d2lconv._backend import active_adapter

    adapter = active_adapter()
    if method == "fft" and adapter.corr2d_fft is None:
        return adapter.NO_FFT
    if method == "native" and adapter.corr2d_native is None:
        return adapter.NO_NATIVE
    return None


def each_method(methods=dc.METHODS):
    """The methods as parameters; one this framework lacks is a strict xfail that must raise ValueError."""
    params = []
    for method in methods:
        reason = method_is_unavailable(method)
        marks = [pytest.mark.xfail(raises=ValueError, strict=True, reason=reason)] if reason else []
        params.append(pytest.param(method, marks=marks, id=method))
    return params


# TensorFlow 2.17-2.19's C++ runtime (XLA, through absl) writes these INFO lines straight to the process's
# stderr at its first compile, before absl::InitializeLog; no setting silences them (2.21 writes none).
_RUNTIME_INFO = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|I\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [\w.]+:\d+\] .*"
)


def own_stderr(text):
    """A command's stderr without the framework runtime's own INFO lines: what d2lconv itself wrote."""
    return "".join(line for line in text.splitlines(keepends=True) if not _RUNTIME_INFO.fullmatch(line.rstrip("\n")))


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


# Property tests (tests/test_properties.py): a fixed, modest number of examples per test so that every backend's
# suite stays within minutes and CI sees the same cases every run; HYPOTHESIS_PROFILE=explore tries new ones.
settings.register_profile("d2lconv", max_examples=40, deadline=None, derandomize=True, database=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("explore", max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "d2lconv"))


def numeric_gradient(f, x, eps=1e-3):
    """Central differences of a scalar function of a float64 array (exact for the linear maps here)."""
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[index] = eps
        grad[index] = (f(x + step) - f(x - step)) / (2 * eps)
    return grad


def float64_supported() -> bool:
    """Whether this backend keeps float64 (JAX computes in float32 unless JAX_ENABLE_X64=1)."""
    return dc.to_numpy(dc.tensor(np.zeros((1, 1), dtype=np.float64))).dtype == np.float64


# A float64 test on JAX without x64: a strict xfail, as the framework limitation it is.
needs_float64 = pytest.mark.xfail(
    dc.get_backend() == "jax" and not float64_supported(),
    reason="JAX computes in float32 unless JAX_ENABLE_X64=1 (jax.config.update('jax_enable_x64', True))",
    strict=True,
)
