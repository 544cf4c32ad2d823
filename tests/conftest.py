"""The shared suite runs unchanged on whichever backend ``D2LCONV_BACKEND`` names (numpy when unset)."""

from __future__ import annotations

import re

import numpy as np
import pytest

import d2lconv as dc

BACKEND = dc.get_backend()


def reference_corr2d(X, K, padding=((0, 0), (0, 0)), stride=(1, 1)):
    """An independent float64 oracle: every window as a view, summed with einsum."""
    X = np.pad(np.asarray(X, dtype=np.float64), padding)
    K = np.asarray(K, dtype=np.float64)
    windows = np.lib.stride_tricks.sliding_window_view(X, K.shape)[:: stride[0], :: stride[1]]
    return np.einsum("ijab,ab->ij", windows, K)


def assert_close(actual, expected, *, scale=None):
    """Compare through to_numpy with float32 tolerances, relative to the size of the terms summed."""
    actual = dc.to_numpy(actual)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    atol = 1e-5 * (scale if scale is not None else max(1.0, float(np.abs(expected).max(initial=0))))
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=atol)


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
