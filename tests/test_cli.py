"""The command line, driven in a subprocess as a user would run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
from conftest import own_stderr

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


# ----------------------------------------------------------------------------------------------------------
# Everything below runs on the active backend (D2LCONV_BACKEND), with small images and few epochs.

BACKEND = dc.get_backend()


def run_in(folder, *args, env=None):
    """The command line with ``folder`` as the current directory."""
    return subprocess.run([sys.executable, "-m", "d2lconv.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=600, cwd=folder)


def assert_usage_error(done, *fragments, status=2):
    assert done.returncode == status, (done.returncode, done.stdout, done.stderr)
    stderr = own_stderr(done.stderr)
    assert stderr.startswith("d2lconv: error: ") and stderr.count("\n") == 1, done.stderr
    assert "Traceback" not in done.stderr
    for fragment in fragments:
        assert fragment in done.stderr, (fragment, done.stderr)


def picture_size(path):
    """(width, height) of a written image, which must open with Pillow."""
    from PIL import Image

    with Image.open(path) as picture:
        picture.load()
        return picture.size


def test_demo_json_file_holds_the_books_results_and_compare_merges_it(tmp_path):
    folder = tmp_path / "results"
    folder.mkdir()
    done = run_in(tmp_path, "demo", "--seed", "0", "--json", str(folder / f"{BACKEND}.json"))
    assert done.returncode == 0, done.stderr
    assert "epoch 10, loss" in done.stdout and f"wrote {folder / BACKEND}.json" in done.stdout
    record = json.loads((folder / f"{BACKEND}.json").read_text())
    assert record["backend"] == BACKEND and record["checks"] == {"figure": True, "edges": True, "transposed": True}
    assert record["figure"]["output"] == [[19.0, 25.0], [37.0, 43.0]]
    assert record["edges"]["output"] == [list(dc.book.EDGE_ROW)] * 6
    assert record["transposed"]["output"] == [[0.0] * 5] * 8
    runs = record["learning"]["runs"]
    assert runs["seed"]["seed"] == 0 and runs["zeros"]["init"] == "zeros"
    for run in runs.values():
        assert len(run["losses"]) == 10 and run["final_loss"] == run["losses"][-1]
        assert np.asarray(run["kernel"]).shape == (1, 2) and run["seconds_per_step"] > 0
    # init="zeros" is the same start everywhere: 10 epochs at lr 0.03 give 0.98847 on every backend.
    np.testing.assert_allclose(runs["zeros"]["kernel"], [[0.98847, -0.98847]], atol=1e-4)
    (folder / "notes.json").write_text("[1, 2]")  # not a demo record: skipped, not fatal

    merged = run_in(tmp_path, "compare", "--from", str(folder))
    assert merged.returncode == 0, merged.stderr
    row = next(line for line in merged.stdout.splitlines() if line.startswith(BACKEND + " "))
    assert row.split()[row.split().index("ok"):][:3] == ["ok", "ok", "ok"]
    others = [name for name in dc.BACKENDS if name != BACKEND]
    for name in others:
        assert f"tox -e demo-{name}" in merged.stdout
    assert "notes.json" in merged.stderr


def test_compare_flags_a_backend_with_wrong_results(tmp_path):
    record = {"backend": "numpy", "figure": {"output": [[19, 25], [37, 44]]}, "edges": {"output": []},
              "transposed": {"output": [[0.0] * 5] * 8}, "learning": {"runs": {}}}
    (tmp_path / "numpy.json").write_text(json.dumps(record))
    done = run_in(tmp_path, "compare", "--from", str(tmp_path), "--backends", "numpy")
    assert done.returncode == 1
    assert "WRONG" in done.stdout and "Traceback" not in done.stderr


def test_compare_runs_the_active_backend_in_a_subprocess(tmp_path):
    done = run_in(tmp_path, "compare", "--backends", BACKEND, "--quiet")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[:5] == ["backend", "framework", "figure", "edges", "X.T"]
    row = next(line for line in lines if line.startswith(BACKEND + " "))
    assert row.count(" ok ") == 3 and "+0.9885, -0.9885" in row
    assert "Ran 1 of 1 backends" in done.stdout


def test_compare_without_an_interpreter_says_how_to_get_one(tmp_path):
    missing = [name for name in dc.BACKENDS if name not in dc.available_backends()]
    assert missing, "each tox environment installs exactly one framework"
    done = run_in(tmp_path, "compare", "--backends", missing[0])  # tmp_path: no project, no .tox
    assert done.returncode == 0, done.stderr
    assert f"{missing[0]}" in done.stdout and f"pip install 'd2lconv[{missing[0]}]'" in done.stdout
    assert f"tox -e {missing[0]}" in done.stdout


def test_demo_plot(tmp_path):
    done = run_in(tmp_path, "demo", "--seed", "0", "--json", "--plot", "demo.png")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["backend"] == BACKEND  # --json alone: stdout is only the JSON
    width, height = picture_size(tmp_path / "demo.png")
    assert 1000 < width < 1400 and 600 < height < 900


def test_edges_on_the_sample_image_writes_the_response_and_a_figure(tmp_path):
    done = run_in(tmp_path, "edges", "--plot", "figure.png")
    assert done.returncode == 0, done.stderr
    assert "the sample image (128x128)" in done.stdout and f"{BACKEND!r} backend" in done.stdout
    assert "response: 128x127, range [-" in done.stdout
    assert picture_size(tmp_path / "sample-edge.png") == (127, 128)
    assert picture_size(tmp_path / "figure.png")[0] > 600
    assert sorted(path.name for path in tmp_path.iterdir()) == ["figure.png", "sample-edge.png"]  # no leftovers


def test_edges_with_a_filter_bank_writes_every_response_from_one_call_per_shape(tmp_path):
    done = run_in(tmp_path, "edges", "--kernel", "sobel-x,sobel-y,laplacian,edge", "--plot", "bank.png")
    assert done.returncode == 0, done.stderr
    assert "the sample image (128x128) * 4 kernels in 2 corr2d_multi_in_out calls" in done.stdout
    for name, size in [("sobel-x", (126, 126)), ("sobel-y", (126, 126)), ("laplacian", (126, 126)),
                       ("edge", (127, 128))]:
        assert f"kernel {name!r}" in done.stdout
        assert picture_size(tmp_path / f"sample-{name}.png") == size
    assert picture_size(tmp_path / "bank.png")[0] > 900
    # each response is the single-kernel command's response
    single = run_in(tmp_path, "edges", "--kernel", "sobel-y", "-o", "single.png")
    assert single.returncode == 0, single.stderr
    from PIL import Image

    with Image.open(tmp_path / "single.png") as one, Image.open(tmp_path / "sample-sobel-y.png") as banked:
        difference = np.abs(np.asarray(one, dtype=int) - np.asarray(banked, dtype=int))
    assert difference.max() <= 1  # the same response, up to float32 rounding at a grey level's edge


def test_edges_bank_names_its_files_with_a_template(tmp_path):
    done = run_in(tmp_path, "edges", "--kernel", "dx,dy", "-o", "out-{kernel}.png")
    assert done.returncode == 0, done.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out-dx.png", "out-dy.png"]
    refused = run_in(tmp_path, "edges", "--kernel", "dx,dy", "-o", "out.png")
    assert refused.returncode == 2
    assert "-o 'out.png' names one file, but there are 2 kernels: put {kernel} in it" in refused.stderr


def test_edges_on_an_image_maps_zero_to_mid_grey(tmp_path):
    from PIL import Image

    pixels = np.zeros((30, 40, 4), dtype=np.uint8)
    pixels[..., 3] = 255
    pixels[:, 20:, :3] = 255  # black left half, white right half: one vertical edge
    Image.fromarray(pixels).save(tmp_path / "step.png")
    done = run_in(tmp_path, "edges", "step.png", "--kernel-values", "1,0,-1;2,0,-2;1,0,-1", "-o", "out.png")
    assert done.returncode == 0, done.stderr
    assert "range [-4, 0]" in done.stdout and "0 is mid-grey" in done.stdout
    with Image.open(tmp_path / "out.png") as picture:
        out = np.asarray(picture)
    assert out.shape == (28, 38)
    assert (out[:, :17] == 128).all() and (out[:, 21:] == 128).all()  # no edge: 0, mid-grey
    assert (out[:, 18:20] == 0).all()  # the strongest response, -4, is black (the scale is symmetric)


def test_learn_recovers_the_kernel_from_the_sample_and_plots_it(tmp_path):
    done = run_in(tmp_path, "learn", "--kernel", "edge", "--max-size", "48", "--epochs", "150", "--plot", "learn.png")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "the sample image (48x48, shrunk from 128x128, mean" in out and "lr auto = " in out
    assert "true kernel" in out and "learned kernel" in out
    difference = float(out.split("largest difference |learned - true|: ")[1].split()[0])
    assert difference < 1e-2, out
    assert own_stderr(done.stderr) == ""  # no progress bar: stderr is not a terminal
    width, height = picture_size(tmp_path / "learn.png")
    assert 1000 < width < 1400 and 600 < height < 900


def test_learn_on_a_jpeg_with_a_fixed_rate_and_zero_start(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (50, 90, 3), dtype=np.uint8)).save(tmp_path / "noise.jpg")
    done = run_in(tmp_path, "learn", "noise.jpg", "--kernel", "sobel-y", "--max-size", "30", "--lr", "1e-4",
                  "--epochs", "3", "--init", "zeros", "--quiet")
    assert done.returncode == 0, done.stderr
    assert "'noise.jpg' (17x30, shrunk from 50x90" in done.stdout
    assert "lr 0.0001, 3 epochs, init zeros" in done.stdout and "not converged" in done.stdout


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_learn_shows_a_progress_bar_on_a_terminal(tmp_path):
    import fcntl
    import pty
    import struct
    import termios

    main, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 24 rows, 100 columns
    chunks = []

    def drain():
        while True:
            try:
                chunk = os.read(main, 4096)
            except OSError:  # EIO: the terminal's other end is closed
                return
            if not chunk:
                return
            chunks.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        done = subprocess.run([sys.executable, "-m", "d2lconv.cli", "learn", "--max-size", "24", "--epochs", "5"],
                              stdout=subprocess.PIPE, stderr=secondary, text=True, timeout=600, cwd=tmp_path)
    finally:
        os.close(secondary)
        reader.join(timeout=10)
        os.close(main)
    shown = b"".join(chunks).decode(errors="replace")
    assert done.returncode == 0
    assert "learning" in shown and "5/5" in shown and "loss" in shown


def test_a_diverging_run_fails_with_advice_and_writes_nothing(tmp_path):
    import importlib.util

    plot = ["--plot", "never.png"] if importlib.util.find_spec("matplotlib") else []
    done = run_in(tmp_path, "learn", "--max-size", "32", "--lr", "1", "--epochs", "20", "--quiet", *plot)
    assert_usage_error(done, "diverged", "--lr auto", status=1)
    assert list(tmp_path.iterdir()) == []


def test_edges_on_a_zarr_store_names_the_dask_extra_when_dask_is_missing(tmp_path):
    import importlib.util

    done = run_in(tmp_path, "edges", "scan.zarr", "--kernel", "sobel-x")
    if importlib.util.find_spec("dask") is None:
        assert_usage_error(done, "needs dask", "pip install 'd2lconv[dask]'")
    else:
        assert_usage_error(done, "cannot read 'scan.zarr': no such file or directory")
    assert list(tmp_path.iterdir()) == []


def make_bad_image(folder):
    (folder / "notes.png").write_text("not a picture")


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["edges", "--kernel", "sharpen"], ["unknown kernel 'sharpen'", "sobel-x"]),
        (["edges", "--kernel", "sobel-x,sharpen"], ["unknown kernel 'sharpen'"]),
        (["edges", "--kernel", "dx,dx"], ["names a kernel twice"]),
        (["learn", "--kernel", "sharpen"], ["unknown kernel 'sharpen'"]),
        (["edges", "missing.png"], ["cannot read image 'missing.png'"]),
        (["edges", "notes.png"], ["cannot read image 'notes.png'"]),
        (["learn", "missing.jpg"], ["'missing.jpg'"]),
        (["edges", "--kernel-values", "1,a"], ["malformed --kernel-values '1,a'"]),
        (["edges", "--kernel-values", "1,2;3"], ["malformed --kernel-values", "different lengths"]),
        (["edges", "-o", "nowhere/out.png"], ["'nowhere' does not exist"]),
        (["edges", "-o", "out.txt"], ["unknown extension '.txt'"]),
        (["learn", "--plot", "nowhere/fig.png"], ["'nowhere' does not exist"]),
        (["demo", "--json", "nowhere/run.json"], ["'nowhere' does not exist"]),
        (["learn", "--lr", "-1"], ["--lr"]),
        (["learn", "--epochs", "0"], ["--epochs"]),
        (["edges", "--backend", "caffe"], ["unknown backend 'caffe'"]),
        (["compare", "--from", "nowhere"], ["'nowhere'"]),
        (["compare", "--python", "torch"], ["NAME=PATH"]),
        (["edges", "--kernel", "box", "--kernel-values", "1"], ["not allowed with"]),
    ],
)
def test_bad_usage_is_one_line_with_status_2(tmp_path, args, fragments):
    make_bad_image(tmp_path)
    assert_usage_error(run_in(tmp_path, *args), *fragments)


def test_a_missing_optional_package_names_the_extra(tmp_path):
    fake = tmp_path / "fake"
    (fake / "matplotlib").mkdir(parents=True)
    (fake / "matplotlib" / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'matplotlib'\", name='matplotlib')\n")
    done = run_in(tmp_path, "demo", "--plot", "demo.png",
                  env={"PYTHONPATH": os.pathsep.join([str(fake), os.environ.get("PYTHONPATH", "")])})
    assert_usage_error(done, "needs matplotlib", "pip install 'd2lconv[cli]'", status=2)  # as a missing framework
    assert done.stdout == ""  # found before any work
    assert not (tmp_path / "demo.png").exists()


def test_debug_shows_the_traceback(tmp_path):
    done = run_in(tmp_path, "--debug", "edges", "--kernel", "sharpen")
    assert done.returncode != 0 and "Traceback" in done.stderr


@pytest.mark.parametrize("command", ["demo", "compare", "edges", "learn"])
def test_every_command_has_help_with_examples(command):
    done = run("--help") if command is None else run(command, "--help")
    assert done.returncode == 0 and "examples:" in done.stdout and f"d2lconv {command}" in done.stdout


# In-process checks of the pieces (no framework involved).


def test_kernel_values_parse_rows_and_columns():
    from d2lconv.cli import UsageError, parse_kernel_values

    np.testing.assert_array_equal(parse_kernel_values("1,-1"), [[1.0, -1.0]])
    sobel = [[1, 0, -1], [2, 0, -2], [1, 0, -1]]
    np.testing.assert_array_equal(parse_kernel_values(" 1, 0,-1 ; 2,0,-2;1,0,-1 "), sobel)
    np.testing.assert_array_equal(parse_kernel_values("0.5;-0.5"), [[0.5], [-0.5]])
    for bad in ("", "1,,2", "1;2,3", "nan", "1,inf", "x"):
        with pytest.raises(UsageError):
            parse_kernel_values(bad)


def test_the_sample_image_is_deterministic_and_has_edges_in_every_direction():
    from d2lconv.images import sample_image

    image = sample_image()
    assert image.shape == (128, 128) and image.dtype == np.float64
    assert 0 <= image.min() and image.max() <= 1
    np.testing.assert_array_equal(image, sample_image())
    smooth = sample_image(64)
    assert smooth.shape == (64, 64)
    for axis in (0, 1):
        steps = np.abs(np.diff(image, axis=axis))
        assert (steps > 0.4).sum() > 50  # strong edges across both axes
    diagonal = np.abs(image[1:, 1:] - image[:-1, :-1])
    assert (diagonal > 0.4).sum() > 50


def test_signed_responses_map_zero_to_mid_grey_symmetrically():
    from d2lconv.images import display_range, to_uint8

    response = np.array([[-2.0, 0.0, 1.0]])
    assert display_range(response, signed=True) == (-2.0, 2.0)
    assert to_uint8(response, signed=True).tolist() == [[0, 128, 191]]
    assert to_uint8(np.array([[0.0, 0.5, 1.0]]), signed=False).tolist() == [[0, 128, 255]]


def test_output_files_are_written_completely_or_not_at_all(tmp_path):
    from d2lconv.images import atomic_output, write_text

    target = tmp_path / "result.json"
    write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_output(target) as temporary:
            temporary.write_text("half")
            raise RuntimeError("stopped half way")
    assert target.read_text() == "old" and [path.name for path in tmp_path.iterdir()] == ["result.json"]
    write_text(target, "new")
    assert target.read_text() == "new" and len(list(tmp_path.iterdir())) == 1


# ----------------------------------------------------------------------------------------------------------
# Issue 9: the command line as a new user meets it.


def fake_packages(folder, **modules):
    """A folder of stand-in top-level modules whose import runs the given code; put it first on PYTHONPATH."""
    for name, code in modules.items():
        (folder / name).mkdir(parents=True)
        (folder / name / "__init__.py").write_text(code)
    return {"PYTHONPATH": os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")])}


def missing(name):
    return f"raise ModuleNotFoundError(\"No module named '{name}'\", name='{name}')\n"


def run_on_a_terminal(folder, *args, env=None):
    """The command line with stderr on a pseudo-terminal (stdout piped); returns (status, stdout, terminal text)."""
    import pty

    main, secondary = pty.openpty()
    chunks = []

    def drain():
        while True:
            try:
                chunk = os.read(main, 4096)
            except OSError:
                return
            if not chunk:
                return
            chunks.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        done = subprocess.run([sys.executable, "-m", "d2lconv", *args], stdout=subprocess.PIPE, stderr=secondary,
                              text=True, timeout=600, cwd=folder, env={**os.environ, **(env or {})})
    finally:
        os.close(secondary)
        reader.join(timeout=10)
        os.close(main)
    return done.returncode, done.stdout, b"".join(chunks).decode(errors="replace")


def write_photo(path):
    from PIL import Image

    Image.fromarray(np.random.default_rng(0).integers(0, 256, (24, 32), dtype=np.uint8)).save(path)
    return path.read_bytes()


@pytest.mark.parametrize("args", [
    ["edges", "photo.png", "-o", "photo.png"],
    ["edges", "photo.png", "--plot", "photo.png"],
    ["edges", "photo.png", "--plot", "./photo.png"],
    ["learn", "photo.png", "--plot", "photo.png", "--epochs", "1", "--quiet"],
])
def test_an_output_never_overwrites_the_input_image(tmp_path, args):
    before = write_photo(tmp_path / "photo.png")
    done = run_in(tmp_path, *args)
    assert_usage_error(done, "is the input image", "refusing to write over it")
    assert done.stdout == "" and (tmp_path / "photo.png").read_bytes() == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["photo.png"]


def test_the_response_and_the_figure_cannot_share_a_file(tmp_path):
    done = run_in(tmp_path, "edges", "-o", "out.png", "--plot", "out.png")
    assert_usage_error(done, "--plot 'out.png' is also the -o file")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("package", "args", "needs"), [
    ("PIL", ["edges"], "writing an image needs Pillow"),
    ("PIL", ["learn", "photo.png", "--quiet"], "needs Pillow"),
    ("PIL", ["learn", "--max-size", "32", "--quiet"], "shrinking an image (--max-size) needs Pillow"),
    ("matplotlib", ["learn", "--plot", "fig.png", "--quiet"], "--plot needs matplotlib"),
    ("matplotlib", ["edges", "--plot", "fig.png"], "--plot needs matplotlib"),
])
def test_a_missing_optional_package_is_found_before_any_work(tmp_path, package, args, needs):
    write_photo(tmp_path / "photo.png")
    done = run_in(tmp_path, *args, env=fake_packages(tmp_path / "fake", **{package: missing(package)}))
    assert_usage_error(done, needs, "pip install 'd2lconv[cli]'", status=2)
    assert done.stdout == ""
    assert sorted(path.name for path in tmp_path.iterdir()) == ["fake", "photo.png"]


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_a_missing_tqdm_is_found_before_learning_starts(tmp_path):
    status, out, terminal = run_on_a_terminal(tmp_path, "learn", "--epochs", "2",
                                              env=fake_packages(tmp_path / "fake", tqdm=missing("tqdm")))
    assert status == 2 and out == ""
    assert "the progress bar (or pass --quiet) needs tqdm" in terminal and "Traceback" not in terminal


def test_a_missing_framework_from_the_environment_prints_nothing_first(tmp_path):
    absent = [name for name in dc.BACKENDS if name not in dc.available_backends()][0]
    done = run_in(tmp_path, "demo", env={"D2LCONV_BACKEND": absent})
    assert_usage_error(done, f"pip install 'd2lconv[{absent}]'")
    assert done.stdout == ""


def test_a_framework_that_fails_to_import_is_one_line_whatever_it_prints(tmp_path):
    """What MXNet 1.9.1 does beside numpy >= 1.24: a FutureWarning, then a paragraph-long AttributeError."""
    broken = ("import warnings\n"
              "warnings.warn('In the future `np.bool` will be defined as the corresponding NumPy scalar.', "
              "FutureWarning)\n"
              "raise AttributeError(\"module 'numpy' has no attribute 'bool'.\\n`np.bool` was a deprecated alias "
              "for the builtin `bool`. To avoid this error in existing code, use `bool` by itself.\")\n")
    done = run_in(tmp_path, "demo", "--backend", "mxnet", env=fake_packages(tmp_path / "fake", mxnet=broken))
    assert_usage_error(done, "MXNet is installed but fails to import (AttributeError: module 'numpy' has no "
                             "attribute 'bool')", "pip install 'd2lconv[mxnet]'")
    assert "FutureWarning" not in done.stderr and done.stdout == ""
    numpy_version = tuple(int(part) for part in np.__version__.split(".")[:2])
    assert ("needs numpy<1.24" in done.stderr) == (numpy_version >= (1, 24))


def test_compare_skips_every_file_that_is_not_a_demo_record_and_names_it(tmp_path):
    (tmp_path / "empty.json").write_text("{}")
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "blank.json").write_text("")
    done = run_in(tmp_path, "compare", "--from", ".", "--backends", "numpy")
    assert done.returncode == 0, done.stderr
    for name in ("empty.json", "broken.json", "blank.json"):
        assert f"compare: skipped '{name}'" in done.stderr
    assert "not valid JSON" in done.stderr and "not the JSON of 'd2lconv demo --json'" in done.stderr
    assert "not run: no results for it" in done.stdout


def test_compare_from_a_file_or_an_empty_directory(tmp_path):
    (tmp_path / "numpy.json").write_text("{}")
    assert_usage_error(run_in(tmp_path, "compare", "--from", "numpy.json"), "--from 'numpy.json' is a file")
    (tmp_path / "empty").mkdir()
    done = run_in(tmp_path, "compare", "--from", "empty", "--backends", "numpy")
    assert done.returncode == 0 and "no *.json files in 'empty'" in done.stderr


def test_version_and_python_dash_m():
    done = subprocess.run([sys.executable, "-m", "d2lconv", "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == f"d2lconv {dc.__version__}"
    done = subprocess.run([sys.executable, "-m", "d2lconv", "demo", "--help"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0 and "examples:" in done.stdout
