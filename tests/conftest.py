"""The shared suite runs unchanged on whichever backend ``D2LCONV_BACKEND`` names (numpy when unset)."""

from __future__ import annotations

import numpy as np
import pytest

import d2lconv as dc

BACKEND = dc.get_backend()


def reference_corr2d(X, K, padding=((0, 0), (0, 0)), stride=(1, 1), dilation=(1, 1)):
    """An independent float64 oracle: every window as a view, summed with einsum (any leading axes of X).

    A dilated kernel is spread out with zeros first, as the definition says: taps ``d`` pixels apart.
    """
    X = np.asarray(X, dtype=np.float64)
    X = np.pad(X, ((0, 0),) * (X.ndim - 2) + tuple(padding))
    K = np.asarray(K, dtype=np.float64)
    spread = np.zeros(((K.shape[0] - 1) * dilation[0] + 1, (K.shape[1] - 1) * dilation[1] + 1))
    spread[::dilation[0], ::dilation[1]] = K
    windows = np.lib.stride_tricks.sliding_window_view(X, spread.shape, axis=(-2, -1))
    return np.einsum("...ijab,ab->...ij", windows[..., ::stride[0], ::stride[1], :, :], spread)


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


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
