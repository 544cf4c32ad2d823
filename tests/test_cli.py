"""The command line, driven in a subprocess as a user would run it."""

from __future__ import annotations

import os
import subprocess
import sys

import d2lconv as dc


def run(*args, env=None):
    return subprocess.run([sys.executable, "-m", "d2lconv.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=600)


def test_demo_prints_the_chapters_results():
    done = run("demo", "--seed", "0")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert f"on the {dc.get_backend()!r} backend" in out
    for number in ("19", "25", "37", "43"):
        assert number in out
    assert out.count("epoch ") == 5 and "epoch 10, loss" in out
    assert "The learned kernel: [[" in out


def test_demo_with_an_unknown_backend_is_a_one_line_usage_error():
    done = run("demo", "--backend", "caffe")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "unknown backend 'caffe'" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_bad_environment_variable_is_a_usage_error_too():
    done = run("demo", env={"D2LCONV_BACKEND": "theano"})
    assert done.returncode == 2
    assert "D2LCONV_BACKEND" in done.stderr and "Traceback" not in done.stderr


def test_a_missing_framework_says_how_to_install_it():
    missing = [name for name in dc.BACKENDS if name not in dc.available_backends()][0]
    done = run("demo", "--backend", missing)
    assert done.returncode == 2
    assert f"pip install 'd2lconv[{missing}]'" in done.stderr and "Traceback" not in done.stderr


def test_help_shows_examples():
    done = run("--help")
    assert done.returncode == 0 and "examples:" in done.stdout
