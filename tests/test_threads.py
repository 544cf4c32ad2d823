"""d2lconv's own threads and the optional Numba accelerator: same values whatever runs the bands."""

from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
from conftest import BACKEND, assert_close, each_method, reference_corr2d, reference_multi_in_out

import d2lconv as dc
from d2lconv import _parallel

HAS_NUMBA = importlib.util.find_spec("numba") is not None
# The backends whose direct and separable methods the Numba accelerator runs (when installed: the numpy,
# torch and mxnet test environments install it); the others run with and without it the same.
ACCELERATED = BACKEND in ("numpy", "torch", "mxnet")
ACCELERATORS = [None, "numba"] if HAS_NUMBA and ACCELERATED else [None]
# The backends whose own loops run on d2lconv's thread pool (the others' threads are the framework's own).
THREADED = ["numpy"] + (["torch"] if BACKEND == "torch" else [])


@pytest.fixture
def restore_settings():
    accelerator = dc.get_accelerator()
    yield
    dc.set_num_threads(None)
    dc.set_accelerator(accelerator)


def test_run_bands_covers_every_item_once_on_several_threads():
    seen, lock, names = [], threading.Lock(), set()

    def work(start, stop):
        with lock:
            seen.extend(range(start, stop))
            names.add(threading.current_thread().name)

    _parallel.run_bands(work, 1001, 7, 3)
    assert sorted(seen) == list(range(1001))
    _parallel.run_bands(work, 5, 100, 4)  # one band: the calling thread alone
    assert sorted(seen) == sorted(list(range(1001)) + list(range(5)))


def test_run_bands_raises_the_error_of_a_band():
    def work(start, stop):
        if start <= 500 < stop:
            raise KeyError("band 500")

    with pytest.raises(KeyError, match="band 500"):
        _parallel.run_bands(work, 1000, 10, 2)


def test_thread_count_follows_the_framework_and_the_user(restore_settings, monkeypatch):
    monkeypatch.delenv(_parallel.ENV_VAR, raising=False)
    if BACKEND == "torch":
        import torch

        expected = torch.get_num_threads()
    else:
        expected = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert dc.get_num_threads() == expected
    dc.set_num_threads(1)
    assert dc.get_num_threads() == 1
    dc.set_num_threads(expected + 5)  # a cap, not a demand: never more than the framework allows
    assert dc.get_num_threads() == expected
    dc.set_num_threads(None)
    monkeypatch.setenv(_parallel.ENV_VAR, "1")
    assert dc.get_num_threads() == 1
    monkeypatch.setenv(_parallel.ENV_VAR, "many")
    with pytest.raises(ValueError, match=r"^D2LCONV_NUM_THREADS must be a positive integer, got 'many'$"):
        dc.get_num_threads()
    monkeypatch.setenv(_parallel.ENV_VAR, "0")
    dc.set_accelerator(None)
    with dc.use_backend("numpy"), pytest.raises(
            ValueError, match=r"^D2LCONV_NUM_THREADS must be a positive integer, got '0'$"):
        dc.corr2d(np.ones((300, 300), np.float32), np.ones((5, 5), np.float32), method="direct")


def test_the_frameworks_thread_setting_is_followed_and_left_alone(restore_settings):
    """d2lconv never uses more threads than the framework may: PyTorch's ``torch.set_num_threads``, for the
    others the CPUs the process may run on (``taskset``); a larger ``set_num_threads`` does not lift it."""
    if BACKEND == "torch":
        import torch

        before = torch.get_num_threads()
        try:
            torch.set_num_threads(1)
            assert dc.get_num_threads() == 1
            dc.set_num_threads(3)
            assert dc.get_num_threads() == 1
            X, K = torch.rand(400, 300), torch.rand(5, 5)
            dc.corr2d(X, K, method="direct")
            assert torch.get_num_threads() == 1  # d2lconv changed no framework setting
        finally:
            torch.set_num_threads(before)
        return
    code = ("import os, d2lconv as dc\n"
            "os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})\n"
            "dc.set_num_threads(3)\n"
            "Y = dc.corr2d(dc.ones((400, 300)), dc.ones((5, 5)), method='direct')\n"
            "print(dc.get_num_threads(), tuple(Y.shape), len(os.sched_getaffinity(0)))\n")
    env = {**os.environ, "D2LCONV_BACKEND": BACKEND}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[-2] == "1 (396, 296) 1"


@pytest.mark.parametrize("bad", [0, -2, 1.5, "2", True])
def test_set_num_threads_rejects_what_is_not_a_positive_int(bad):
    with pytest.raises(ValueError, match=rf"^threads must be a positive int or None, got {bad!r}$"):
        dc.set_num_threads(bad)


def test_environment_variables_in_a_fresh_process():
    code = "import d2lconv as dc; print(dc.get_num_threads('numpy'), dc.get_accelerator())"
    env = {**os.environ, "D2LCONV_NUM_THREADS": "1", "D2LCONV_NUMBA": "0"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["1", "None"]
    env = {**os.environ, "D2LCONV_NUMBA": "1"}
    env.pop("D2LCONV_NUM_THREADS", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert out.split() == [str(cpus), "numba" if HAS_NUMBA else "None"]


def test_unknown_accelerator_is_refused():
    with pytest.raises(ValueError, match=r"^unknown accelerator 'cuda'; choose 'numba' or None$"):
        dc.set_accelerator("cuda")


def test_a_missing_numba_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None)
    with pytest.raises(ImportError, match=r"pip install 'd2lconv\[numba\]'$"):
        dc.set_accelerator("numba")


@pytest.mark.parametrize("backend", THREADED)
def test_the_users_thread_count_reaches_the_loops(backend, restore_settings, monkeypatch, rng):
    """The banded paths hand their bands to ``run_bands`` with the thread count the user set."""
    kernels = importlib.import_module(f"d2lconv.backends.{backend}.kernels")
    calls = []

    def spy(work, total, band, threads):
        calls.append((total, band, threads))
        return _parallel.run_bands(work, total, band, threads)

    monkeypatch.setattr(kernels, "run_bands", spy)
    dc.set_accelerator(None)
    X, K = rng.standard_normal((2, 600, 500)).astype(np.float32), rng.standard_normal((5, 5)).astype(np.float32)
    with dc.use_backend(backend):
        for threads in (1, 2):
            dc.set_num_threads(threads)
            Y = dc.corr2d(dc.tensor(X), dc.tensor(K), method="direct")
            assert calls[-1][2] == threads
            assert_close(Y, reference_corr2d(X, K), scale=float(np.abs(X).max() * np.abs(K).sum()))


@pytest.mark.parametrize("accelerator", ACCELERATORS)
@pytest.mark.parametrize("method", ["direct", "separable"])
@pytest.mark.parametrize("stride, dilation", [(1, 1), ((2, 3), 1), (1, (2, 3))])
def test_threaded_results_equal_one_thread_results(accelerator, method, stride, dilation, restore_settings,
                                                   monkeypatch, rng):
    """Bit for bit: every output is the same sum in the same order, whatever band it fell into (the bands are
    made small here, so 1, 2 and 3 threads split the rows unevenly and bands end mid-image)."""
    if BACKEND == "numpy":
        monkeypatch.setattr("d2lconv.backends.numpy.kernels._BAND_BYTES", 5000)
    dc.set_accelerator(accelerator)
    X = rng.standard_normal((3, 211, 173)).astype(np.float32)
    K = np.outer(rng.standard_normal(7), rng.standard_normal(5)).astype(np.float32)  # rank one: separable runs
    if method != "separable":
        K = K + rng.standard_normal(K.shape).astype(np.float32)
    results = []
    for threads in (1, 2, 3):
        dc.set_num_threads(threads)
        results.append(dc.to_numpy(dc.corr2d(dc.tensor(X), dc.tensor(K), method=method, stride=stride,
                                             dilation=dilation)))
    strides = (stride, stride) if stride == 1 else stride
    dilations = (dilation, dilation) if dilation == 1 else dilation
    assert_close(results[0], reference_corr2d(X, K, stride=strides, dilation=dilations),
                 scale=float(np.abs(X).max() * np.abs(K).sum()))
    if BACKEND in ("numpy", "torch", "mxnet"):  # d2lconv's own sums (XLA may fuse them differently per call)
        for other in results[1:]:
            np.testing.assert_array_equal(other, results[0])


@pytest.mark.parametrize("accelerator", ACCELERATORS)
@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("method", each_method(["direct", "separable", "fft", "auto"]))
@pytest.mark.parametrize("stride", [1, (2, 3)])
def test_large_inputs_give_the_same_values_on_any_threads(accelerator, threads, method, stride, restore_settings,
                                                          rng):
    """Large enough for the banded, threaded and compiled paths."""
    dc.set_accelerator(accelerator)
    dc.set_num_threads(threads)
    X = rng.standard_normal((301, 283)).astype(np.float32)
    K = np.outer(rng.standard_normal(7), rng.standard_normal(5)).astype(np.float32)  # rank one: separable runs
    if method != "separable":
        K = K + rng.standard_normal(K.shape).astype(np.float32)  # not rank one
    Y = dc.corr2d(dc.tensor(X), dc.tensor(K), method=method, stride=stride)
    assert_close(Y, reference_corr2d(X, K, stride=(stride, stride) if stride == 1 else stride),
                 scale=float(np.abs(X).max() * np.abs(K).sum()))


@pytest.mark.parametrize("accelerator", ACCELERATORS)
def test_the_accelerator_gives_the_framework_paths_answers(accelerator, restore_settings, rng):
    """On and off, the same values (up to float32 rounding order), leading axes and dilation included."""
    X = rng.standard_normal((2, 3, 130, 140)).astype(np.float32)
    K = rng.standard_normal((4, 3)).astype(np.float32)
    dc.set_accelerator(None)
    off = dc.to_numpy(dc.corr2d(dc.tensor(X), dc.tensor(K), method="direct", dilation=(2, 3)))
    dc.set_accelerator(accelerator)
    on = dc.to_numpy(dc.corr2d(dc.tensor(X), dc.tensor(K), method="direct", dilation=(2, 3)))
    assert dc.get_accelerator() == accelerator
    assert on.shape == off.shape == (2, 3, 124, 134)
    assert_close(on, off, scale=float(np.abs(X).max() * np.abs(K).sum()))
    assert_close(on, reference_corr2d(X, K, dilation=(2, 3)), scale=float(np.abs(X).max() * np.abs(K).sum()))


@pytest.mark.parametrize("accelerator", ACCELERATORS)
def test_float64_and_nan_survive_the_fast_paths(accelerator, restore_settings, rng):
    """float64 stays float64, and a NaN spoils exactly the outputs whose window holds it (IEEE semantics)."""
    dc.set_accelerator(accelerator)
    X = rng.standard_normal((400, 400))
    X[200, 100] = np.nan
    K = rng.standard_normal((5, 5))
    Y = dc.to_numpy(dc.corr2d(dc.tensor(X), dc.tensor(K), method="direct"))
    assert Y.dtype == dc.to_numpy(dc.tensor(X)).dtype  # float64, where the framework keeps it (JAX: x64 mode)
    expected_nan = np.zeros(Y.shape, dtype=bool)
    expected_nan[196:201, 96:101] = True
    assert np.array_equal(np.isnan(Y), expected_nan)
    finite = np.nan_to_num(X)
    Y_finite = dc.to_numpy(dc.corr2d(dc.tensor(finite), dc.tensor(K), method="direct"))
    assert_close(Y_finite, reference_corr2d(finite, K))


@pytest.mark.parametrize("accelerator", ACCELERATORS)
@pytest.mark.parametrize("stride", [1, 2])
def test_small_inputs_on_every_path(accelerator, stride, restore_settings, rng):
    dc.set_accelerator(accelerator)
    X, K = rng.standard_normal((6, 8)).astype(np.float32), rng.standard_normal((2, 3)).astype(np.float32)
    assert_close(dc.corr2d(dc.tensor(X), dc.tensor(K), method="direct", stride=stride),
                 reference_corr2d(X, K, stride=(stride, stride)))


@pytest.mark.parametrize("method", each_method(["fft"]))
@pytest.mark.parametrize("stride, dilation", [(1, 1), ((2, 3), 1), (1, 2)])
def test_images_large_enough_for_tiled_transforms(method, stride, dilation, restore_settings, rng):
    """Over a million pixels per plane: the FFT paths cut the image into overlapping tiles (overlap-save), a
    row of tiles of every plane per band."""
    X = rng.random((2, 1030, 1043)).astype(np.float32)
    K = rng.standard_normal((7, 5)).astype(np.float32)
    strides = (stride, stride) if stride == 1 else stride
    d = (dilation, dilation) if isinstance(dilation, int) else dilation
    Y = dc.corr2d(dc.tensor(X), dc.tensor(K), method=method, stride=stride, dilation=dilation)
    assert_close(Y, reference_corr2d(X, K, stride=strides, dilation=d), scale=float(np.abs(K).sum()))


@pytest.mark.parametrize("accelerator", ACCELERATORS)
@pytest.mark.parametrize("method, case", [(method, case) for method in ("auto", "direct", "separable")
                                          for case in ("bank", "depthwise-batch", "groups")
                                          if not (method == "separable" and case == "groups")])  # one input channel
@pytest.mark.parametrize("stride, dilation", [(1, 1), ((2, 1), (2, 3)), ((1, 2), 1)])
def test_channel_paths_give_the_same_values_on_any_threads(accelerator, method, case, stride, dilation,
                                                           restore_settings, rng):
    """corr2d_multi_in_out's paths over channels, batches and groups, on 1 and 3 threads, with and without
    the accelerator (its filter bank takes unit column strides only): the same values as the book's
    definitions."""
    dc.set_accelerator(accelerator)
    if case == "bank":  # one image, a bank of four rank-one kernels (separable's case)
        X, K, groups = rng.standard_normal((1, 300, 290)), rng.standard_normal((4, 1, 5, 1)), 1
        K = K * rng.standard_normal((4, 1, 1, 3))
    elif case == "depthwise-batch":
        X, K, groups = rng.standard_normal((3, 4, 130, 120)), rng.standard_normal((4, 1, 3, 3)), 4
        K = K[..., :1] * K[..., :1, :] if method == "separable" else K  # rank one: outer(column, row)
    else:
        X, K, groups = rng.standard_normal((2, 4, 90, 100)), rng.standard_normal((6, 2, 3, 4)), 2
    X, K = X.astype(np.float32), K.astype(np.float32)
    strides = (stride, stride) if stride == 1 else stride
    dilations = (dilation, dilation) if dilation == 1 else dilation
    expected = reference_multi_in_out(X, K, groups=groups, padding=((1, 1), (2, 2)), stride=strides,
                                      dilation=dilations)
    results = []
    for threads in (1, 3):
        dc.set_num_threads(threads)
        Y = dc.corr2d_multi_in_out(dc.tensor(X), dc.tensor(K), groups=groups, method=method, padding=(1, 2),
                                   stride=stride, dilation=dilation)
        assert_close(Y, expected, scale=float(np.abs(X).max() * np.abs(K).sum()))
        results.append(dc.to_numpy(Y))
    if BACKEND in ("numpy", "torch") and method != "auto":
        np.testing.assert_array_equal(results[1], results[0])


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("per_group, groups", [(1, 3), (2, 2), (3, 1)])
@pytest.mark.parametrize("stride, dilation", [(1, 1), ((2, 3), (2, 1))])
def test_numpy_channel_bands_split_examples_and_rows(threads, per_group, groups, stride, dilation, restore_settings,
                                                     monkeypatch, rng):
    """NumPy's direct method over channels runs bands of output rows of a few examples (im2col products with
    several input channels per group); tiny bands here make every band boundary, stride and dilation meet."""
    monkeypatch.setattr("d2lconv.backends.numpy.channels._BAND_BYTES", 3000)
    dc.set_num_threads(threads)
    C, O = per_group * groups, 2 * groups
    X = rng.standard_normal((2, 3, C, 41, 37)).astype(np.float32)
    K = rng.standard_normal((O, per_group, 3, 4)).astype(np.float32)
    strides = (stride, stride) if stride == 1 else stride
    dilations = (dilation, dilation) if dilation == 1 else dilation
    expected = reference_multi_in_out(X, K, groups=groups, padding=((1, 1), (2, 2)), stride=strides,
                                      dilation=dilations)
    with dc.use_backend("numpy"):
        Y = dc.corr2d_multi_in_out(X, K, groups=groups, method="direct", padding=(1, 2), stride=stride,
                                   dilation=dilation)
        Y_last = dc.corr2d_multi_in_out(np.moveaxis(X, -3, -1), K, groups=groups, method="direct", padding=(1, 2),
                                        stride=stride, dilation=dilation, data_format="channels_last")
    scale = float(np.abs(X).max() * np.abs(K).sum())
    assert_close(Y, expected, scale=scale)
    assert_close(np.moveaxis(Y_last, -1, -3), expected, scale=scale)
