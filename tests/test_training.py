"""The chapter's "Learning a Kernel" loop: convergence, repeatability, agreement across backends, divergence."""

from __future__ import annotations

import re

import numpy as np
import pytest

import d2lconv as dc

TARGET = np.array([[1.0, -1.0]])


@pytest.fixture(scope="module")
def edge_data():
    X = dc.book.edge_image()
    return X, dc.corr2d(X, dc.book.edge_kernel())


@pytest.mark.parametrize("layer", ["builtin", "custom"])
@pytest.mark.parametrize("seed", range(5))
def test_book_defaults_learn_the_edge_kernel(edge_data, layer, seed):
    result = dc.train_kernel(*edge_data, seed=seed, layer=layer)
    assert result.kernel.shape == (1, 2)
    assert len(result.losses) == 10
    assert np.abs(result.kernel - TARGET).max() < 0.2, result.kernel
    assert result.losses[-1] < result.losses[0]
    assert (result.backend, result.layer, result.bias) == (dc.get_backend(), layer, None)


@pytest.mark.parametrize("layer", ["builtin", "custom"])
def test_sixty_epochs_reach_the_kernel_closely(edge_data, layer):
    result = dc.train_kernel(*edge_data, epochs=60, seed=0, layer=layer)
    assert np.abs(result.kernel - TARGET).max() < 1e-3


@pytest.mark.parametrize("layer", ["builtin", "custom"])
def test_same_seed_same_losses(edge_data, layer):
    first = dc.train_kernel(*edge_data, seed=11, layer=layer)
    again = dc.train_kernel(*edge_data, seed=11, layer=layer)
    other = dc.train_kernel(*edge_data, seed=12, layer=layer)
    assert first.losses == again.losses
    assert np.array_equal(first.kernel, again.kernel)
    assert first.losses != other.losses


def _numpy_reference(X, Y, **kwargs):
    with dc.use_backend("numpy"):
        return dc.train_kernel(dc.to_numpy(X), dc.to_numpy(Y), **kwargs)


@pytest.mark.parametrize("layer", ["builtin", "custom"])
@pytest.mark.parametrize("bias", [False, True])
def test_zero_start_gives_the_numpy_backends_losses(edge_data, layer, bias):
    kwargs = {"init": "zeros", "epochs": 12, "bias": bias, "lr": 1e-2 if bias else 3e-2}
    result = dc.train_kernel(*edge_data, layer=layer, **kwargs)
    reference = _numpy_reference(*edge_data, **kwargs)
    np.testing.assert_allclose(result.losses, reference.losses, rtol=1e-4)
    np.testing.assert_allclose(result.kernel, reference.kernel, rtol=1e-4, atol=1e-6)
    if bias:
        assert result.bias == pytest.approx(reference.bias, rel=1e-4, abs=1e-6)


def test_zero_start_on_a_larger_random_problem(rng):
    X = rng.standard_normal((24, 20)).astype(np.float32)
    K = rng.standard_normal((3, 3)).astype(np.float32)
    Y = dc.corr2d(X, K)
    result = dc.train_kernel(X, Y, (3, 3), lr="auto", epochs=300, init="zeros")
    reference = _numpy_reference(X, Y, kernel_size=(3, 3), lr="auto", epochs=300, init="zeros")
    # Far below the first loss the losses are float32 rounding noise, which depends on the order in which a
    # framework's conv op sums: compare only the epochs above it.
    above_noise = np.asarray(reference.losses[:20]) > 1e-6 * reference.losses[0]
    assert above_noise.sum() >= 5
    np.testing.assert_allclose(np.asarray(result.losses[:20])[above_noise],
                               np.asarray(reference.losses[:20])[above_noise], rtol=1e-3)
    np.testing.assert_allclose(result.kernel, K, atol=1e-3)


def test_bias_with_the_books_learning_rate_fails_clearly(edge_data):
    with pytest.raises(dc.TrainingDivergedError) as info:
        dc.train_kernel(*edge_data, bias=True, seed=0)
    message = str(info.value)
    assert "lr=0.03 is too large" in message
    stable = float(re.search(r"stable only for lr < ([0-9.e-]+)", message).group(1))
    assert stable == pytest.approx(2 / 124.3, rel=0.01)
    assert "lr='auto'" in message


def test_a_huge_learning_rate_never_returns_nan(edge_data):
    with pytest.raises(dc.TrainingDivergedError, match="too large"):
        dc.train_kernel(*edge_data, lr=10.0, epochs=200, seed=0)


def test_bias_with_a_stable_learning_rate_learns_kernel_and_bias(edge_data):
    X, Y = edge_data
    result = dc.train_kernel(X, dc.to_numpy(Y) + 0.5, bias=True, lr=0.012, epochs=300, seed=0, layer="custom")
    assert np.abs(result.kernel - TARGET).max() < 1e-3
    assert result.bias == pytest.approx(0.5, abs=1e-3)


def test_curvature_of_the_books_data():
    """The Hessian's largest eigenvalue: 60 without a bias, about 124.3 with one (../shared facts)."""
    X = dc.to_numpy(dc.book.edge_image())
    assert dc.largest_curvature(X, (1, 2)) == pytest.approx(60.0, rel=1e-4)
    assert dc.largest_curvature(X, (1, 2), bias=True) == pytest.approx(124.3, rel=1e-3)


def test_auto_learning_rate_is_one_over_the_curvature(edge_data):
    result = dc.train_kernel(*edge_data, lr="auto", seed=0)
    assert result.lr == pytest.approx(1 / 60, rel=1e-4)
    assert np.abs(result.kernel - TARGET).max() < 0.2


def test_verbose_prints_the_books_lines_and_callback_sees_every_epoch(edge_data, capsys):
    seen = []
    result = dc.train_kernel(*edge_data, seed=0, verbose=True, callback=lambda epoch, loss: seen.append((epoch, loss)))
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"epoch {e}, loss {result.losses[e - 1]:.3f}" for e in (2, 4, 6, 8, 10)]
    assert seen == list(enumerate(result.losses, start=1))
    assert all(isinstance(loss, float) for loss in result.losses)
