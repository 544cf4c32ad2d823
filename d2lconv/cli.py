"""The ``d2lconv`` command line: the chapter on one backend or all five side by side, kernels on images.

``demo`` runs the chapter and prints what the book prints (``--json`` for every result); ``compare`` puts
the five backends' results in one table, running each backend in its own interpreter; ``edges`` applies a
kernel to an image; ``learn`` learns a kernel back from an image and its filtered version. Everything
goes through d2lconv's public API, so every command runs on every backend. Pillow, matplotlib and tqdm
(the ``cli`` extra) are imported only by the options that need them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import d2lconv as dc
from d2lconv import images, methods, stores
from d2lconv._backend import FRAMEWORKS, canonical_name, load_adapter
from d2lconv._usage import RunError, UsageError
from d2lconv.compare import book_checks, run_compare
from d2lconv.images import ImageError, MissingPackageError

EPILOG = """examples:
  d2lconv demo                           the chapter on the default backend (numpy, or $D2LCONV_BACKEND)
  d2lconv demo --backend torch --seed 0  the chapter on PyTorch, with a seeded start
  d2lconv compare                        the chapter on all five backends in one table
  d2lconv edges photo.jpg --kernel sobel-x -o edges.png
  d2lconv learn --kernel laplacian --plot learn.png

Run 'd2lconv COMMAND --help' for a command's options and examples.
"""

DEMO_EPILOG = """examples:
  d2lconv demo                            the book's printout on the default backend
  d2lconv demo --backend jax --seed 0     on JAX/Flax, with a seeded random start
  d2lconv demo --json                     every result as JSON on stdout (no printout)
  d2lconv demo --seed 0 --json run.json   the printout, and the JSON in run.json
  d2lconv demo --plot demo.png            a figure: the edge image, its edges, kernels, losses
"""

COMPARE_EPILOG = """examples:
  d2lconv compare                         run every backend that has an interpreter, one table
  d2lconv compare --python mxnet=/opt/mx/bin/python
  d2lconv compare --from .tox/demo-json   merge JSON files written by 'd2lconv demo --json PATH'
  tox -m compare                          all five backends, each in its own tox environment

Each backend runs '<python> -m d2lconv.cli demo --backend NAME --json --seed 0' in a subprocess:
<python> is --python NAME=PATH if given, else this interpreter if the framework is installed here,
else .tox/NAME/bin/python or .tox/demo-NAME/bin/python of the project (made by 'tox -e NAME').
"""

EDGES_EPILOG = f"""examples:
  d2lconv edges                           the book's [[1, -1]] on the built-in sample image
  d2lconv edges photo.jpg --kernel sobel-y -o photo-sobel-y.png
  d2lconv edges photo.jpg --kernel sobel-x,sobel-y,laplacian --plot bank.png
                                          a filter bank in one call: photo-sobel-x.png, ... and a figure
  d2lconv edges --kernel-values "1,0,-1;2,0,-2;1,0,-1" --plot edges-figure.png
  d2lconv edges scan.zarr --kernel sobel-x                writes scan-sobel-x.zarr, chunk by chunk
  d2lconv edges slide.tif --kernel gaussian -o out.zarr --backend torch

A Zarr store or a TIFF file is never read whole: Dask filters it chunk by chunk (each chunk computed by
--backend, NumPy by default) into a new Zarr store (-o NAME.zarr; an existing one is never overwritten),
with a progress bar on a terminal. Its values are used as stored. Needs the dask extra:
pip install 'd2lconv[dask]'.

kernels: {', '.join(dc.kernels.NAMED)}. Signed responses are written with 0 as mid-grey and a scale
symmetric about 0; responses that are never negative (box, gaussian) run from black (0) to white.
"""

LEARN_EPILOG = """examples:
  d2lconv learn                           learn the book's [[1, -1]] back from the sample image
  d2lconv learn photo.jpg --kernel sobel-x --plot learn.png
  d2lconv learn photo.jpg --kernel laplacian --method gd --epochs 1000
  d2lconv learn --kernel laplacian --lr 2e-5 --init zeros --backend torch

The target is corr2d(image, kernel); the kernel is then learned back from the image and the target by
minimising the book's loss, the summed squared error. That loss is quadratic in the kernel, so
'--method solve' (the default) solves for its minimum directly (least squares, in float64: exact in one
step); '--method gd' runs the book's gradient descent with train_kernel, where '--lr auto' (its default)
takes 1 / the loss's largest curvature, a step that never diverges. Giving --epochs, --lr, --init or
--seed chooses gd. The image's mean is subtracted first (--no-center to keep it), which makes gradient
descent converge many times faster.
"""

BOOK_KERNEL = "[[1.0, -1.0]]"
DEFAULT_EPOCHS = 400
DEFAULT_MAX_SIZE = 128


# ----------------------------------------------------------------------------------------------- demo


def run_demo(args: argparse.Namespace) -> int:
    """The chapter, section by section, on the chosen backend; ``--json`` records every result."""
    json_path = None if args.json in (None, "-") else images.check_output(args.json)
    plot_path = _check_plot(args.plot)
    say = print if args.json != "-" else _silent
    book = dc.book
    backend = dc.get_backend()
    load_adapter(backend)  # a missing framework fails here, before the header
    say(f"d2lconv demo on the {backend!r} backend\n")
    X, K = book.figure_input(), book.figure_kernel()
    figure = dc.corr2d(X, K, method="loop")
    say("The cross-correlation of the figure, corr2d(X, K):")
    say(_shown(figure), end="\n\n")
    X = book.edge_image()
    say("The edge image X (6x8, the middle four columns black):")
    say(_shown(X), end="\n\n")
    K = book.edge_kernel()
    Y = dc.corr2d(X, K)
    say("Edges, Y = corr2d(X, K) with K = [[1, -1]] (1 for white to black, -1 for black to white):")
    say(_shown(Y), end="\n\n")
    transposed = dc.corr2d(dc.transpose(X), K)
    say("The transposed image, corr2d(X.T, K): K only detects vertical edges")
    say(_shown(transposed), end="\n\n")
    say(f"Learning a {book.KERNEL_SIZE} kernel back from X and Y "
        f"(lr {book.LEARNING_RATE}, the framework's own layer):")

    def book_line(epoch: int, loss: float) -> None:
        if epoch % 2 == 0:
            say(f"epoch {epoch}, loss {loss:.3f}")

    seeded, seeded_times = _timed_training(X, Y, seed=args.seed, init="random", callback=book_line)
    say(f"\nThe learned kernel: {kernel_text(seeded.kernel)} (K is {BOOK_KERNEL})")
    zeros, zeros_times = _timed_training(X, Y, seed=None, init="zeros")
    record = {
        "command": "d2lconv demo",
        "backend": backend,
        "versions": _framework_versions(backend),
        "d2lconv": dc.__version__,
        "python": platform.python_version(),
        "executable": sys.executable,
        "figure": {"output": _listed(figure), "expected": [list(row) for row in book.FIGURE_OUTPUT]},
        "edges": {"output": _listed(Y), "expected_row": list(book.EDGE_ROW)},
        "transposed": {"output": _listed(transposed)},
        "learning": {
            "kernel_size": list(book.KERNEL_SIZE), "lr": book.LEARNING_RATE, "epochs": book.EPOCHS,
            "layer": "builtin", "true_kernel": [[1.0, -1.0]],
            "runs": {
                "seed": _run_record(seeded, seeded_times, init="random", seed=args.seed),
                "zeros": _run_record(zeros, zeros_times, init="zeros", seed=None),
            },
        },
    }
    record["checks"] = book_checks(record)
    if args.json == "-":
        print(to_json(record))
    elif json_path is not None:
        images.write_text(json_path, to_json(record) + "\n")
        print(f"\nwrote {json_path}")
    if plot_path is not None:
        from d2lconv.plots import Panel, save_figure

        prediction = dc.to_numpy(dc.corr2d(X, dc.tensor(seeded.kernel)))
        limit = max(1.0, float(np.abs(seeded.kernel).max()), float(np.abs(zeros.kernel).max()))
        shown = max(1.0, float(np.abs(prediction).max()))
        save_figure(plot_path, [
            Panel("input X (the edge image)", dc.to_numpy(X)),
            Panel("target Y = corr2d(X, K)", dc.to_numpy(Y), signed=True, limit=shown),
            Panel(f"prediction corr2d(X, learned), seed {args.seed}", prediction, signed=True, limit=shown),
            Panel("true kernel K", np.array([[1.0, -1.0]]), signed=True, kernel=True, limit=limit),
            Panel(f"learned kernel, seed {args.seed}", seeded.kernel, signed=True, kernel=True, limit=limit),
        ], losses={f"seed {args.seed}": seeded.losses, "init='zeros'": zeros.losses},
            title=f"d2lconv demo on the {backend!r} backend (lr {book.LEARNING_RATE}, {book.EPOCHS} epochs)")
        if args.json != "-":
            print(f"wrote {plot_path}")
    return 0


def _shown(x: Any) -> str:
    """A tensor as its framework prints it; a lazy Dask array is computed first (its repr has no values)."""
    from d2lconv._inputs import framework_of

    return repr(dc.to_numpy(x)) if framework_of(x) == "dask" else repr(x)


def kernel_text(kernel: Any) -> str:
    """A kernel as nested lists with four decimals each, as ``compare`` prints it: ``[[1.0696, -0.9098]]``."""
    rows = np.atleast_2d(np.asarray(kernel, dtype=float))
    return "[" + ", ".join("[" + ", ".join(f"{value:.4f}" for value in row) + "]" for row in rows) + "]"


def to_json(record: dict[str, Any]) -> str:
    """Indented JSON with every list of numbers on one line (a matrix is one line per row)."""
    text = json.dumps(record, indent=1)
    return re.sub(r"\[\s+([-+0-9.eEinfaNIty, \n]*?)\s+\]", lambda m: "[" + " ".join(m.group(1).split()) + "]", text)


def _silent(*args: Any, **kwargs: Any) -> None:
    pass


def _timed_training(X: Any, Y: Any, *, seed: int | None, init: str,
                    callback: Callable[[int, float], None] | None = None) -> tuple[dc.TrainResult, list[float]]:
    """``train_kernel`` as the book runs it, with the wall time of every epoch (from the callbacks)."""
    book = dc.book
    stamps = [time.perf_counter()]

    def record(epoch: int, loss: float) -> None:
        stamps.append(time.perf_counter())
        if callback is not None:
            callback(epoch, loss)

    result = dc.train_kernel(X, Y, book.KERNEL_SIZE, lr=book.LEARNING_RATE, epochs=book.EPOCHS, seed=seed,
                             init=init, callback=record)
    return result, [later - earlier for earlier, later in zip(stamps, stamps[1:])]


def _run_record(result: dc.TrainResult, times: list[float], *, init: str, seed: int | None) -> dict[str, Any]:
    steady = times[1:] or times  # the first epoch also builds the layer (and compiles, on JAX)
    return {
        "init": init, "seed": seed, "kernel": result.kernel.astype(float).tolist(),
        "losses": [float(loss) for loss in result.losses], "final_loss": float(result.losses[-1]),
        "seconds_per_step": statistics.median(steady), "seconds_first_step": times[0],
    }


def _listed(x: Any) -> list[list[float]]:
    return dc.to_numpy(x).astype(float).tolist()


def _framework_versions(backend: str) -> dict[str, str]:
    """Versions of the backend's framework modules, from the modules already imported (costs nothing)."""
    versions = {}
    for module in FRAMEWORKS[backend].modules:
        loaded = sys.modules.get(module)
        version = getattr(loaded, "__version__", None)
        if version is None:
            try:
                from importlib.metadata import version as distribution_version

                version = distribution_version(module)
            except Exception:
                continue
        versions[module] = str(version)
    return versions


# ---------------------------------------------------------------------------------------------- edges


def run_edges(args: argparse.Namespace) -> int:
    """Cross-correlate an image (or the sample) with a kernel, or a bank of them, and write each response.

    A bank (``--kernel sobel-x,sobel-y,laplacian``) is one ``corr2d_multi_in_out`` call per kernel shape: one
    input channel, one output channel per kernel, as the chapter's figure after Field (1987) shows six.
    """
    bank = _bank_from(args)
    if (args.image and stores.is_store(args.image)) or (args.output or "").lower().endswith(".zarr"):
        if len(bank) > 1:
            raise UsageError("a Zarr or TIFF input, or a Zarr output, takes one kernel at a time")
        return _run_edges_in_chunks(args, *bank[0])
    image, name = _load_image(args.image)
    stem = Path(args.image).stem if args.image else "sample"
    template = args.output or f"{stem}-{{kernel}}.png"
    if len(bank) > 1 and "{kernel}" not in template:
        raise UsageError(f"-o {args.output!r} names one file, but there are {len(bank)} kernels: put {{kernel}} in "
                         "it (e.g. -o 'edges-{kernel}.png'), one file per kernel")
    outputs = []
    for label, _ in bank:
        output = images.check_output(template.replace("{kernel}", label))
        images.image_format(output)
        outputs.append(output)
    plot_path = _check_plot(args.plot)
    refuse_overwrite(args.image, *(("-o", output) for output in outputs), ("--plot", plot_path))
    kernels = [make_kernel() for _, make_kernel in bank]
    for kernel in kernels:
        _check_fits(image, kernel)
    responses = _filter_bank(image, kernels)
    if len(bank) == 1:
        print(f"{name} ({_size(image)}) * kernel {bank[0][0]!r} {_kernel_inline(kernels[0])} on the "
              f"{dc.get_backend()!r} backend")
    else:
        calls = len({kernel.shape for kernel in kernels})
        print(f"{name} ({_size(image)}) * {len(bank)} kernels in {calls} corr2d_multi_in_out call"
              f"{'s' if calls > 1 else ''} on the {dc.get_backend()!r} backend")
    panels = []
    for (label, _), kernel, response, output in zip(bank, kernels, responses, outputs):
        signed = bool((kernel < 0).any() or (response < 0).any())
        low, high = images.write_image(output, response, signed)
        rows, cols = response.shape
        shown = f"range [{response.min():.4g}, {response.max():.4g}]"
        if len(bank) == 1:
            print(f"response: {rows}x{cols}, {shown}")
        else:
            print(f"kernel {label!r} {_kernel_inline(kernel)}: response {rows}x{cols}, {shown}")
        if signed:
            print(f"wrote {output} (0 is mid-grey; black is {low:.3g}, white is +{high:.3g})")
        else:
            print(f"wrote {output} (black is {low:.3g}, white is {high:.3g})")
        panels.append((label, kernel, response, signed))
    if plot_path is not None:
        from d2lconv.plots import Panel, save_figure

        figure = [Panel(f"input: {name}", image, signed=False)]
        for label, kernel, response, signed in panels:
            figure.append(Panel(f"response: corr2d(input, {label})", response, signed=signed))
            if len(panels) == 1:
                figure.append(Panel(f"kernel {label}", kernel, kernel=True))
        save_figure(plot_path, figure, title=f"d2lconv edges on the {dc.get_backend()!r} backend")
        print(f"wrote {plot_path}")
    return 0


def _run_edges_in_chunks(args: argparse.Namespace, label: str, make_kernel: Callable[[], np.ndarray]) -> int:
    """A Zarr store or TIFF file (or any image written as Zarr): filtered by Dask into a new Zarr store."""
    source = args.image
    output = stores.check_new_store(args.output or f"{Path(source).stem if source else 'sample'}-{label}.zarr",
                                    source)
    if args.plot is not None:
        raise UsageError("--plot draws the whole image in memory: it is not available with a Zarr or TIFF input "
                         "or a Zarr output")
    if source is not None and stores.is_store(source):
        X, name = stores.open_image(source, args.chunks), repr(source)
    else:
        image, name = _load_image(source)
        X = stores.require("dask.array", "writing a Zarr store").from_array(
            image.astype(np.float32), chunks=args.chunks or "auto")
    kernel = make_kernel()
    _check_fits(X, kernel)
    kernel = kernel.astype(np.float64 if X.dtype == np.float64 else np.float32)
    active = dc.get_backend()
    with dc.use_backend("dask"):
        from d2lconv.backends.dask import get_chunk_backend, use_chunk_backend

        chunk_backend = get_chunk_backend() if active == "dask" else active
        with use_chunk_backend(chunk_backend):
            response = dc.corr2d(X, kernel)
    chunks = tuple(int(c[0]) for c in X.chunks)
    print(f"{name} ({_size(X)}, {X.dtype}, chunks {chunks[0]}x{chunks[1]}) * kernel {label!r} "
          f"{_kernel_inline(kernel)} on the 'dask' backend, each chunk computed by {chunk_backend!r}", flush=True)
    low, high = stores.write_zarr(response, output, chunks=chunks, progress=not args.quiet and sys.stderr.isatty())
    rows, cols = response.shape
    print(f"response: {rows}x{cols}, range [{low:.4g}, {high:.4g}]")
    print(f"wrote {output} (Zarr, {response.dtype}, chunks {min(chunks[0], rows)}x{min(chunks[1], cols)})")
    return 0


def _filter_bank(image: np.ndarray, kernels: list[np.ndarray]) -> list[np.ndarray]:
    """Each kernel's response to the image, as float64 arrays; kernels of one shape go in one multi-output call."""
    X = dc.tensor(image.astype(np.float32)[None])  # one input channel
    responses: dict[int, np.ndarray] = {}
    for shape in dict.fromkeys(kernel.shape for kernel in kernels):
        indices = [i for i, kernel in enumerate(kernels) if kernel.shape == shape]
        bank = np.stack([kernels[i] for i in indices])[:, None].astype(np.float32)  # (out, in=1, h, w)
        Y = dc.to_numpy(dc.corr2d_multi_in_out(X, dc.tensor(bank))).astype(np.float64)
        responses.update(zip(indices, Y))
    return [responses[i] for i in range(len(kernels))]


# ---------------------------------------------------------------------------------------------- learn


def run_learn(args: argparse.Namespace) -> int:
    """Filter an image with a kernel, then learn the kernel back from the image and the result."""
    label, make_kernel = _kernel_from(args)
    method = _learn_method(args)
    image, name = _load_image(args.image)
    plot_path = _check_plot(args.plot)
    refuse_overwrite(args.image, ("--plot", plot_path))
    kernel = make_kernel()
    original = _size(image)
    if args.max_size:
        image = images.shrink(image, args.max_size)
    _check_fits(image, kernel)
    mean = float(image.mean())
    inputs = image - mean if args.center else image
    X = dc.tensor(inputs.astype(np.float32))
    Y = dc.corr2d(X, dc.tensor(kernel))
    shrunk = f", shrunk from {original}" if _size(image) != original else ""
    centred = f", mean {mean:.3f} subtracted" if args.center else ""
    print(f"learning kernel {label!r} ({kernel.shape[0]}x{kernel.shape[1]}) back from {name} "
          f"({_size(image)}{shrunk}{centred}) on the {dc.get_backend()!r} backend")
    if method == "solve":
        print("method solve: the loss's minimum solved for by least squares in float64 "
              "(--method gd for the book's gradient descent)", flush=True)
        started = time.perf_counter()
        learned = dc.least_squares_kernel(X, Y, kernel.shape)
        seconds = time.perf_counter() - started
        losses = None
    else:
        result, per_epoch, lr = _descend(args, X, Y, inputs, kernel.shape)
        learned, losses = np.asarray(result.kernel, dtype=np.float64), result.losses
    difference = float(np.abs(learned - kernel).max())
    print()
    print(_side_by_side(kernel, learned))
    print(f"\nlargest difference |learned - true|: {difference:.2g}")
    if losses is None:
        target = dc.to_numpy(Y).astype(np.float64)
        residual = methods.corr2d_direct(inputs, learned) - target  # the loss in float64, whatever the backend
        print(f"loss {float((target ** 2).sum()):.4g} at a zero kernel -> {float((residual ** 2).sum()):.4g} "
              f"solved ({1e3 * seconds:.3g} ms)")
    else:
        print(f"loss {losses[0]:.4g} -> {losses[-1]:.4g} after {args.epochs} epochs "
              f"({1e3 * per_epoch:.3g} ms per epoch)")
    outputs = (image.shape[0] - kernel.shape[0] + 1) * (image.shape[1] - kernel.shape[1] + 1)
    if outputs < kernel.size:
        print(f"the {_size(image)} image gives only {outputs} target values for the kernel's {kernel.size} "
              "numbers, so many kernels fit them: use a larger image (--max-size)")
    elif difference > 1e-2 and method == "solve":
        print("many kernels fit this image as well as the true one (it has too little detail to pin down "
              "every coefficient): use a larger or more detailed image (--max-size)")
    elif difference > 1e-2:
        print(f"not converged to 1e-2 yet: try --epochs {4 * args.epochs}, or --method solve"
              + ("" if args.center else ", or leave out --no-center"))
    if plot_path is not None:
        from d2lconv.plots import Panel, robust_limit, save_figure

        prediction = dc.to_numpy(dc.corr2d(X, dc.tensor(learned.astype(np.float32))))
        method_title = "least squares" if method == "solve" else "gradient descent"
        limit = max(float(np.abs(kernel).max()), float(np.abs(learned).max())) or 1.0
        kernel_signed = bool((kernel < 0).any() or (learned < 0).any())
        target = dc.to_numpy(Y)
        target_signed = bool(kernel_signed or (target < 0).any())
        shown = robust_limit(target)  # the same scale for both, set by the bulk of the target, not its extremes
        save_figure(plot_path, [
            Panel(f"input: {name}" + (" (centred)" if args.center else ""), inputs, signed=args.center,
                  gray=True),
            Panel(f"target: corr2d(input, {label})", target, signed=target_signed, limit=shown),
            Panel("prediction: corr2d(input, learned)", prediction, signed=target_signed, limit=shown),
            Panel(f"true kernel {label}", kernel, signed=kernel_signed, kernel=True, limit=limit),
            Panel(f"learned kernel (max diff {difference:.1g})", learned, signed=kernel_signed, kernel=True,
                  limit=limit),
        ], losses=None if losses is None else {f"lr {lr:.3g}, init {args.init}": losses},
            title=f"d2lconv learn on the {dc.get_backend()!r} backend ({method_title})")
        print(f"wrote {plot_path}")
    return 0


GRADIENT_OPTIONS = {"epochs": DEFAULT_EPOCHS, "lr": "auto", "init": "random", "seed": 0}


def _learn_method(args: argparse.Namespace) -> str:
    """``--method``, or gd when a gradient-descent option is given without it; fills in those options' defaults."""
    given = [f"--{option}" for option in GRADIENT_OPTIONS if getattr(args, option) is not None]
    method = args.method or ("gd" if given else "solve")
    if method == "solve" and given:
        raise UsageError(f"{', '.join(given)} only apply to --method gd (gradient descent); --method solve "
                         "solves for the kernel in one step")
    for option, default in GRADIENT_OPTIONS.items():
        if getattr(args, option) is None:
            setattr(args, option, default)
    return method


def _descend(args: argparse.Namespace, X: Any, Y: Any, inputs: np.ndarray,
             kernel_shape: tuple[int, int]) -> tuple[dc.TrainResult, float, float]:
    """The book's gradient descent with ``train_kernel``: the result, the median seconds per epoch, the lr."""
    lr = args.lr
    if lr == "auto":
        curvature = dc.largest_curvature(inputs, kernel_shape)
        lr = 1.0 / curvature
        lr_text = f"auto = {lr:.3g} (1 / the loss's largest curvature, {curvature:.4g})"
    else:
        lr_text = f"{lr:g}"
    print(f"method gd: the book's gradient descent, lr {lr_text}, {args.epochs} epochs, init {args.init}"
          + (f", seed {args.seed}" if args.init == "random" else ""), flush=True)
    bar = _progress_bar(args.epochs, quiet=args.quiet)
    stamps = [time.perf_counter()]

    def progress(epoch: int, loss: float) -> None:
        stamps.append(time.perf_counter())
        if bar is not None:
            bar.update(1)
            bar.set_postfix_str(f"loss {loss:.4g}", refresh=epoch == args.epochs)  # the last state is drawn

    try:
        result = dc.train_kernel(X, Y, kernel_shape, lr=lr, epochs=args.epochs, init=args.init, seed=args.seed,
                                 callback=progress)
    except dc.TrainingDivergedError as error:
        raise RunError(f"{error} (on the command line: --lr auto)") from error
    finally:
        if bar is not None:
            bar.close()
    per_epoch = statistics.median(np.diff(stamps[1:])) if len(stamps) > 2 else stamps[-1] - stamps[0]
    return result, per_epoch, lr


def _progress_bar(total: int, *, quiet: bool) -> Any:
    """A tqdm bar on stderr, or None when quiet or when stderr is not a terminal."""
    if quiet or not sys.stderr.isatty():
        return None
    tqdm = images.require("tqdm", "the progress bar (or pass --quiet)").tqdm
    return tqdm(total=total, desc="learning", unit="epoch", file=sys.stderr, dynamic_ncols=True, leave=False)


def _side_by_side(true: np.ndarray, learned: np.ndarray) -> str:
    def cells(matrix: np.ndarray) -> list[str]:
        return ["[" + " ".join(f"{value:8.4f}" for value in row) + " ]" for row in matrix]

    left, right = cells(true), cells(learned)
    width = max(len(left[0]), len("true kernel"))
    lines = [f"{'true kernel'.ljust(width)}    learned kernel"]
    lines += [f"{a.ljust(width)}    {b}" for a, b in zip(left, right)]
    return "\n".join(line.replace("-0.0000", " 0.0000") for line in lines)


# ------------------------------------------------------------------------------------- shared helpers


def _bank_from(args: argparse.Namespace) -> list[tuple[str, Callable[[], np.ndarray]]]:
    """``--kernel a,b,c`` as one ``(label, make_kernel)`` per name (checked now), or the one ``--kernel-values``."""
    if args.kernel_values is not None or "," not in args.kernel:
        return [_kernel_from(args)]
    names = [name.strip() for name in args.kernel.split(",") if name.strip()]
    if len(set(n.lower() for n in names)) != len(names):
        raise UsageError(f"--kernel {args.kernel!r} names a kernel twice")
    return [_kernel_from(argparse.Namespace(kernel_values=None, kernel=name)) for name in names]


def _kernel_from(args: argparse.Namespace) -> tuple[str, Callable[[], np.ndarray]]:
    """The label of ``--kernel NAME`` or ``--kernel-values`` and a function making the float64 kernel.

    Both are checked here, before any framework is imported; making a named kernel imports the backend's.
    """
    if args.kernel_values is not None:
        values = parse_kernel_values(args.kernel_values)
        return "custom", lambda: values
    label = args.kernel.strip().lower()
    if label not in dc.kernels.NAMED:
        raise UsageError(f"unknown kernel {args.kernel!r}; choose one of {', '.join(dc.kernels.NAMED)} "
                         "or give --kernel-values")
    return label, lambda: dc.to_numpy(dc.kernels.named(label)).astype(np.float64)


def parse_kernel_values(text: str) -> np.ndarray:
    """``"1,-1"`` is one row; rows are separated by ``;``: ``"1,0,-1;2,0,-2;1,0,-1"``."""
    rows = []
    for row_text in text.strip().strip(";").split(";"):
        row = []
        for cell in row_text.split(","):
            cell = cell.strip()
            try:
                value = float(cell)
            except ValueError:
                raise UsageError(f"malformed --kernel-values {text!r}: {cell!r} is not a number "
                                 "(write rows of comma-separated numbers separated by ';', e.g. '1,0,-1;2,0,-2')"
                                 ) from None
            if not math.isfinite(value):
                raise UsageError(f"malformed --kernel-values {text!r}: {cell!r} is not a finite number")
            row.append(value)
        rows.append(row)
    if len({len(row) for row in rows}) != 1:
        raise UsageError(f"malformed --kernel-values {text!r}: rows have different lengths "
                         f"({', '.join(str(len(row)) for row in rows)})")
    return np.array(rows, dtype=np.float64)


def _load_image(path: str | None) -> tuple[np.ndarray, str]:
    if path is None:
        return images.sample_image(), "the sample image"
    if Path(path).is_dir() and stores.is_store(path):
        raise UsageError(f"cannot read image {path!r} into memory: it is a Zarr store (d2lconv edges filters one in "
                         "chunks; in Python, train_kernel takes it as a Dask array)")
    try:
        return images.read_image(path), repr(path)
    except ImageError as error:
        raise UsageError(str(error)) from None


def _check_fits(image: np.ndarray, kernel: np.ndarray) -> None:
    if kernel.shape[0] > image.shape[0] or kernel.shape[1] > image.shape[1]:
        raise UsageError(f"the {kernel.shape[0]}x{kernel.shape[1]} kernel is larger than the image "
                         f"({_size(image)})")


def refuse_overwrite(image: str | None, *outputs: tuple[str, Path | str | None]) -> None:
    """A ``UsageError`` if an output would write over the input image, or two outputs over each other."""
    named = [(option, Path(path)) for option, path in outputs if path is not None]
    if image is not None:
        named.insert(0, ("IMAGE", Path(image)))
    for i, (first, path) in enumerate(named):
        for second, other in named[i + 1:]:
            if _same_file(path, other):
                what = "the input image" if first == "IMAGE" else f"also the {first} file"
                raise UsageError(f"{second} {str(other)!r} is {what}; refusing to write over it (choose another "
                                 "name)")


def _same_file(a: Path, b: Path) -> bool:
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def _check_plot(path: str | None) -> Path | None:
    if path is None:
        return None
    from d2lconv.plots import plot_format

    checked = images.check_output(path)
    plot_format(checked)
    return checked


def _size(image: np.ndarray) -> str:
    return f"{image.shape[0]}x{image.shape[1]}"


def _kernel_inline(kernel: np.ndarray) -> str:
    rows = ["[" + ", ".join(f"{value:g}" for value in row) + "]" for row in np.asarray(kernel)]
    text = "[" + ", ".join(rows) + "]"
    return text if len(text) <= 60 else f"({kernel.shape[0]}x{kernel.shape[1]})"


# ------------------------------------------------------------------------------------------ the parser


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line: ``d2lconv: error: ...``, exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        hint = f" (see '{self.prog} --help')"
        self.exit(2, f"d2lconv: error: {message}{hint}\n")


def _whole_number(text: str, minimum: int, meaning: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be {meaning}, got {value}")
    return value


def _positive_int(text: str) -> int:
    return _whole_number(text, 1, "at least 1")


def _size_limit(text: str) -> int:
    return _whole_number(text, 0, "0 (no limit) or more")


def _learning_rate(text: str) -> float | str:
    if text.strip().lower() == "auto":
        return "auto"
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number or 'auto'") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number or 'auto', got {text!r}")
    return value


def _backend_list(text: str) -> tuple[str, ...]:
    try:
        chosen = {canonical_name(name) for name in text.split(",") if name.strip()}
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    if not chosen:
        raise argparse.ArgumentTypeError("name at least one backend")
    return tuple(name for name in dc.BACKENDS if name in chosen)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = _Parser(prog="d2lconv", description="The 'Convolutions for Images' chapter of d2l.ai on five backends.",
                     epilog=EPILOG, formatter_class=formatter)
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    parser.add_argument("--version", action="version", version=f"d2lconv {dc.__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks instead of one-line errors")
    backend = argparse.ArgumentParser(add_help=False)
    backend.add_argument("--backend", metavar="NAME",
                         help=f"one of {', '.join(dc.BACKENDS)} (default: $D2LCONV_BACKEND or numpy)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", parents=[backend, common], epilog=DEMO_EPILOG, formatter_class=formatter,
                               help="run the chapter on one backend and print the book's results",
                               description="Run the chapter on one backend and print what the book prints.")
    demo.add_argument("--seed", type=int, default=None, help="seed the kernel's random start (the book does not)")
    demo.add_argument("--json", nargs="?", const="-", metavar="PATH",
                      help="write every result as JSON to PATH, or to stdout (instead of the printout) without PATH")
    demo.add_argument("--plot", metavar="OUT.png", help="also draw the data, kernels and losses (needs matplotlib)")
    demo.set_defaults(run=run_demo)

    compare = commands.add_parser("compare", parents=[common], epilog=COMPARE_EPILOG, formatter_class=formatter,
                                  help="the chapter's results from all five backends in one table",
                                  description="Run the chapter on every backend, each in its own interpreter, "
                                              "and print one table.")
    compare.add_argument("--from", dest="source", metavar="DIR",
                         help="merge JSON files written by 'd2lconv demo --json PATH' instead of running anything")
    compare.add_argument("--backends", metavar="LIST", type=_backend_list, default=dc.BACKENDS,
                         help=f"comma-separated backends to show (default: all, {','.join(dc.BACKENDS)})")
    compare.add_argument("--python", action="append", metavar="NAME=PATH",
                         help="the interpreter for backend NAME (repeatable)")
    compare.add_argument("--seed", type=int, default=0, help="the seed of the random start (default 0)")
    compare.add_argument("--timeout", type=_seconds, default=600.0, help="seconds per backend (default 600)")
    compare.add_argument("--quiet", action="store_true", help="do not report each backend's run on stderr")
    compare.set_defaults(run=run_compare)

    kernel_options = argparse.ArgumentParser(add_help=False)
    choice = kernel_options.add_mutually_exclusive_group()
    choice.add_argument("--kernel", default="edge", metavar="NAME",
                        help=f"a named kernel: {', '.join(dc.kernels.NAMED)} (default: edge, the book's [[1, -1]]); "
                             "edges takes a comma-separated bank too: sobel-x,sobel-y,laplacian")
    choice.add_argument("--kernel-values", metavar="VALUES",
                        help="the kernel's numbers: '1,-1' is one row; rows are separated by ';', "
                             "e.g. '1,0,-1;2,0,-2;1,0,-1'")
    kernel_options.add_argument("image", nargs="?", metavar="IMAGE",
                                help="a PNG or JPEG (read as grayscale in [0, 1]), or for edges a Zarr store or TIFF "
                                     "file (filtered in chunks); default: the built-in sample image")

    edges = commands.add_parser("edges", parents=[kernel_options, backend, common], epilog=EDGES_EPILOG,
                                formatter_class=formatter, help="apply a kernel to an image, write the response",
                                description="Cross-correlate an image with a kernel and write the response as an "
                                            "image.")
    edges.add_argument("-o", "--output", metavar="OUT.png",
                       help="where to write the response (default: IMAGE-KERNEL.png here, e.g. sample-edge.png); "
                            "with several kernels a name with {kernel} in it, one file per kernel; a new Zarr "
                            "store NAME.zarr (the default for a Zarr or TIFF input: IMAGE-KERNEL.zarr)")
    edges.add_argument("--plot", metavar="OUT.png", help="also draw input, response and kernel (needs matplotlib)")
    edges.add_argument("--chunks", type=_positive_int, metavar="PIXELS",
                       help="Zarr/TIFF: square chunks of this many pixels a side (default: the stored chunks, "
                            "merged up to Dask's chunk size)")
    edges.add_argument("--quiet", action="store_true", help="Zarr/TIFF: no progress bar")
    edges.set_defaults(run=run_edges)

    learn = commands.add_parser("learn", parents=[kernel_options, backend, common], epilog=LEARN_EPILOG,
                                formatter_class=formatter, help="learn a kernel back from an image and its response",
                                description="Filter an image with a kernel, then learn the kernel back with "
                                            "train_kernel.")
    learn.add_argument("--method", choices=("solve", "gd"), default=None,
                       help="solve: the loss's minimum by least squares, exact in one step (the default); "
                            "gd: the book's gradient descent (the default when --epochs, --lr, --init or --seed "
                            "is given)")
    learn.add_argument("--epochs", type=_positive_int, default=None,
                       help=f"gd: gradient descent steps (default {DEFAULT_EPOCHS})")
    learn.add_argument("--lr", type=_learning_rate, default=None,
                       help="gd: the learning rate, or 'auto': 1 / the loss's largest curvature (default)")
    learn.add_argument("--init", choices=("random", "zeros"), default=None,
                       help="gd: the kernel's start: the framework's random init (default) or zeros")
    learn.add_argument("--seed", type=int, default=None, help="gd: seed of the random start (default 0)")
    learn.add_argument("--max-size", type=_size_limit, default=DEFAULT_MAX_SIZE, metavar="PIXELS",
                       help=f"shrink the image so its longest side is at most this (default {DEFAULT_MAX_SIZE}; "
                            "0 keeps it)")
    learn.add_argument("--no-center", dest="center", action="store_false",
                       help="keep the image's mean (gradient descent then converges much more slowly)")
    learn.add_argument("--plot", metavar="OUT.png",
                       help="also draw input, target, prediction, kernels and the loss curve (needs matplotlib)")
    learn.add_argument("--quiet", action="store_true", help="no progress bar")
    learn.set_defaults(run=run_learn)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if getattr(args, "backend", None):
            try:
                dc.set_backend(args.backend)
            except ValueError as error:
                raise UsageError(str(error)) from error
        elif args.command != "compare":
            dc.get_backend()  # a bad D2LCONV_BACKEND is a usage error too
        check_packages(args)
        return args.run(args)
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("\nd2lconv: error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (| head): stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush does not fail
        return 141
    except (UsageError, ImageError, dc.BackendNotInstalledError, MissingPackageError) as error:
        return _fail(args, error, 2)  # bad usage, or a package this command needs is missing
    except ValueError as error:
        return _fail(args, error, 2 if "D2LCONV_BACKEND" in str(error) else 1)
    except (RunError, dc.TrainingDivergedError, OSError) as error:
        return _fail(args, error, 1)
    except Exception as error:  # never a traceback without --debug
        return _fail(args, error, 1, f"{type(error).__name__}: {error} (run with --debug for the traceback)")


def check_packages(args: argparse.Namespace) -> None:
    """Fail before any work if the command's options need a package of the ``cli`` extra that is missing."""
    image = getattr(args, "image", None)
    if args.command == "edges" or image is not None:
        images.require("PIL.Image", "reading and writing images" if image is not None else "writing an image")
    if args.command == "learn" and args.max_size and args.max_size < images.SAMPLE_SIZE:
        images.require("PIL.Image", "shrinking an image (--max-size)")
    if getattr(args, "plot", None):
        images.require("matplotlib", "--plot")
    if args.command == "learn" and not args.quiet and sys.stderr.isatty():
        images.require("tqdm", "the progress bar (or pass --quiet)")


def _fail(args: argparse.Namespace, error: BaseException, status: int, message: str | None = None) -> int:
    if args.debug:
        raise error
    message = " ".join((message or str(error)).split())  # one line, whatever the error's text
    print(f"d2lconv: error: {message}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
