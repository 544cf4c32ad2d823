"""Choosing a backend: names, aliases, the environment variable, process and block scopes, errors."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import types

import pytest

import d2lconv as dc
from d2lconv import _backend

FRAMEWORK_MODULES = ("torch", "tensorflow", "jax", "flax", "mxnet", "keras", "dask")


@pytest.fixture
def clean_choice(monkeypatch):
    """No process-wide choice, and the environment variable under the test's control."""
    monkeypatch.setattr(_backend, "_process_choice", None)
    monkeypatch.delenv("D2LCONV_BACKEND", raising=False)
    return monkeypatch


def test_canonical_names_and_aliases():
    assert dc.BACKENDS == ("numpy", "torch", "tensorflow", "jax", "mxnet", "dask")
    cases = {"numpy": "numpy", " PyTorch ": "torch", "TF": "tensorflow", "flax": "jax", "Mx": "mxnet",
             "TORCH": "torch", "\tjax\n": "jax", "tensorflow": "tensorflow"}
    for given, canonical in cases.items():
        assert _backend.canonical_name(given) == canonical


def test_unknown_name_lists_valid_names_and_aliases():
    with pytest.raises(ValueError) as info:
        dc.set_backend("caffe")
    message = str(info.value)
    assert "'caffe'" in message
    for name in (*dc.BACKENDS, *dc.ALIASES):
        assert repr(name) in message


def test_default_is_numpy(clean_choice):
    assert dc.get_backend() == "numpy"
    clean_choice.setenv("D2LCONV_BACKEND", "  ")
    assert dc.get_backend() == "numpy"


def test_environment_variable_read_at_first_use_not_at_import(clean_choice):
    clean_choice.setenv("D2LCONV_BACKEND", "Numpy")
    assert dc.get_backend() == "numpy"
    clean_choice.setenv("D2LCONV_BACKEND", "pytorch")
    assert dc.get_backend() == "torch"


def test_bad_environment_variable_names_it(clean_choice):
    clean_choice.setenv("D2LCONV_BACKEND", "theano")
    with pytest.raises(ValueError, match="D2LCONV_BACKEND.*'theano'"):
        dc.get_backend()


@pytest.fixture
def selection_only(clean_choice):
    """Test the choosing rules alone: every backend "loads", whatever this environment has installed."""
    clean_choice.setattr(_backend, "load_adapter", lambda name: None)
    return clean_choice


def test_set_backend_wins_over_environment(selection_only):
    selection_only.setenv("D2LCONV_BACKEND", "jax")
    dc.set_backend("tf")
    assert dc.get_backend() == "tensorflow"


def test_use_backend_wins_and_restores_afterwards(selection_only):
    selection_only.setenv("D2LCONV_BACKEND", "numpy")
    with dc.use_backend("torch") as name:
        assert name == "torch" == dc.get_backend()
        with dc.use_backend("mx"):
            assert dc.get_backend() == "mxnet"
        assert dc.get_backend() == "torch"
    assert dc.get_backend() == "numpy"
    with pytest.raises(KeyError), dc.use_backend("jax"):
        raise KeyError("restored even when the block raises")
    assert dc.get_backend() == "numpy"


def test_use_backend_is_local_to_each_thread(selection_only):
    """Two threads in blocks of different backends each see only their own choice; a third sees neither."""
    both_inside = threading.Barrier(3)
    seen = {}

    def worker(name):
        with dc.use_backend(name):
            both_inside.wait(timeout=30)
            seen[name] = {dc.get_backend() for _ in range(1000)}
            both_inside.wait(timeout=30)

    def bystander():
        both_inside.wait(timeout=30)
        seen["none"] = {dc.get_backend() for _ in range(1000)}
        both_inside.wait(timeout=30)

    threads = [threading.Thread(target=worker, args=(name,)) for name in ("torch", "jax")]
    threads.append(threading.Thread(target=bystander))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == {"torch": {"torch"}, "jax": {"jax"}, "none": {"numpy"}}


def test_use_backend_is_local_to_each_asyncio_task(selection_only):
    async def task(name, delay):
        with dc.use_backend(name):
            await asyncio.sleep(delay)
            return dc.get_backend()

    async def main():
        return await asyncio.gather(task("tensorflow", 0.02), task("mxnet", 0.01))

    assert asyncio.run(main()) == ["tensorflow", "mxnet"]


def test_available_backends_imports_no_framework():
    code = (
        "import sys, d2lconv; names = d2lconv.available_backends(); "
        f"print(names, [m for m in {FRAMEWORK_MODULES!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    names, imported = out.rsplit("] [", 1)
    assert "'numpy'" in names
    assert imported.strip() == "]"


def test_import_imports_no_framework_and_is_fast():
    code = (
        "import sys, time; t = time.perf_counter(); import d2lconv; t = time.perf_counter() - t; "
        f"print([m for m in {FRAMEWORK_MODULES!r} if m in sys.modules], t)"
    )
    env = {**os.environ, "D2LCONV_BACKEND": "torch"}  # even with a framework backend chosen
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    imported, seconds = out.rsplit(" ", 1)
    assert imported == "[]"
    assert float(seconds) < 2.0  # numpy's own import dominates; a framework import would take seconds


def test_missing_framework_names_it_and_the_install_command(clean_choice):
    """Simulate an environment without MXNet: the error says what to install, chained to the cause."""
    real_import = _backend.importlib.import_module

    def import_without_mxnet(name, *args):
        if name == "mxnet":
            raise ModuleNotFoundError("No module named 'mxnet'", name="mxnet")
        return real_import(name, *args)

    clean_choice.setattr(_backend.importlib, "import_module", import_without_mxnet)
    clean_choice.setattr(_backend, "_adapters", {})
    with pytest.raises(dc.BackendNotInstalledError) as info:
        dc.set_backend("MX")
    assert isinstance(info.value, ImportError)
    assert "MXNet" in str(info.value)
    assert "pip install 'd2lconv[mxnet]'" in str(info.value)
    assert isinstance(info.value.__cause__, ModuleNotFoundError)
    assert dc.get_backend() == "numpy"  # a failed switch changes nothing


def test_a_really_missing_framework_gives_the_same_error():
    """In each tox environment only one framework is installed; every other one must fail cleanly."""
    missing = [name for name in dc.BACKENDS if name not in dc.available_backends()]
    assert missing, "each tox environment installs exactly one framework"
    for name in missing:
        with pytest.raises(dc.BackendNotInstalledError, match=rf"pip install 'd2lconv\[{name}\]'"):
            with dc.use_backend(name):
                pass


def test_an_unimportable_adapter_is_not_reported_as_a_missing_framework(clean_choice):
    real_import = _backend.importlib.import_module

    def broken(name, *args):
        if name == "mxnet":
            return types.ModuleType("mxnet")  # the framework is there ...
        if name == "d2lconv.backends.mxnet":  # ... but the adapter has a bug
            raise ModuleNotFoundError("No module named 'd2lconv.helpers'", name="d2lconv.helpers")
        return real_import(name, *args)

    clean_choice.setattr(_backend.importlib, "import_module", broken)
    clean_choice.setattr(_backend, "_adapters", {})
    with pytest.raises(ModuleNotFoundError) as info:
        dc.set_backend("mxnet")
    assert not isinstance(info.value, dc.BackendNotInstalledError)


def test_the_suite_runs_on_the_backend_it_was_asked_for():
    wanted = os.environ.get("D2LCONV_BACKEND", "").strip()
    assert dc.get_backend() == (_backend.canonical_name(wanted) if wanted else "numpy")
