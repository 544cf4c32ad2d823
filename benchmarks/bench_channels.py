"""Benchmark batches and channels: d2lconv's ``corr2d`` / ``corr2d_multi_in_out`` against the framework's conv op.

One process times one backend (``D2LCONV_BACKEND`` or ``--backend``) on the shapes of issue 10, float32:

- ``batch8``: a batch of 8 single-channel 512x512 frames, one 3x3 kernel (``corr2d`` on ``(8, H, W)``);
- ``rgb``: an RGB 256x256 image to 8 channels, 3x3;
- ``c64``: 64 -> 64 channels at 56x56, 3x3;
- ``dw3`` / ``dw5``: depthwise, 32 channels at 112x112, 3x3 and 5x5 (``groups=32``);
- ``bank6``: a bank of 6 random 3x3 kernels on one 2048x2048 image (one input channel, six outputs);
- ``bank6-named``: the same with the named 3x3 kernels sobel-x, sobel-y, laplacian, box, prewitt-x, prewitt-y.

Columns: ``d2l.auto`` and each method through d2lconv, on data in the framework's own layout (``data_format=
"channels_last"`` on TensorFlow and JAX, channels first elsewhere; ``d2l.native`` is the framework op through
d2lconv's checks), ``d2l.auto-other``: ``auto`` on the other layout, and ``fw-op``: the framework's own op called
directly on inputs already in its own layout
(``F.conv2d`` on NCHW; ``tf.nn.conv2d`` on NHWC in a ``tf.function``, ``tf.nn.depthwise_conv2d`` for the
depthwise cases, as Keras's layers use them; ``lax.conv_general_dilated`` under ``jax.jit`` on NHWC, Flax's
layout; ``npx.convolution`` on NCHW; none on NumPy). Every result is checked against a float64 reference.
Timing: warm up (compile) once, then ``--rounds`` rounds that time every column in turn (so a changing load
weighs on all alike); the median per column.
The load average (``os.getloadavg``) is recorded before and after, since the machine may be shared.

``--merge A.json B.json ...`` prints the markdown tables of several runs instead (RESULTS_CHANNELS.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import limit_threads, make_sync, versions  # noqa: E402 (the grid benchmark's helpers)


@dataclass(frozen=True)
class Shape:
    """One benchmark case: the input, the kernel bank and the groups."""

    name: str
    x: tuple[int, ...]  # (N, C, H, W)
    k: tuple[int, ...]  # (O, C // groups, h, w)
    groups: int = 1
    named: bool = False  # the named kernels instead of random ones
    batch2d: bool = False  # time corr2d on (N, H, W) with a 2-D kernel (single-channel frames)


SHAPES = (
    Shape("batch8", (8, 1, 512, 512), (1, 1, 3, 3), batch2d=True),
    Shape("rgb", (1, 3, 256, 256), (8, 3, 3, 3)),
    Shape("c64", (1, 64, 56, 56), (64, 64, 3, 3)),
    Shape("dw3", (1, 32, 112, 112), (32, 1, 3, 3), groups=32),
    Shape("dw5", (1, 32, 112, 112), (32, 1, 5, 5), groups=32),
    Shape("bank6", (1, 1, 2048, 2048), (6, 1, 3, 3)),
    Shape("bank6-named", (1, 1, 2048, 2048), (6, 1, 3, 3), named=True),
)
METHODS = ("auto", "direct", "separable", "fft", "native")
COLUMNS = tuple(f"d2l.{m}" for m in METHODS) + ("fw-op", "d2l.auto-other")
TOLERANCE = 2e-5  # relative to max|X| * the largest sum|K| of an output channel
BANK = ("sobel-x", "sobel-y", "laplacian", "box", "prewitt-x", "prewitt-y")


def make_inputs(shape: Shape, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng([seed, *shape.x, *shape.k])
    X = rng.random(shape.x, dtype=np.float32)
    if shape.named:
        import d2lconv as dc

        K = np.stack([dc.to_numpy(dc.kernels.named(name)) for name in BANK])[:, None].astype(np.float32)
    else:
        K = rng.standard_normal(shape.k, dtype=np.float32)
    return X, K


def reference(X: np.ndarray, K: np.ndarray, groups: int) -> np.ndarray:
    """The valid ``corr2d_multi_in_out`` in float64: a contraction over channels per kernel tap."""
    N, C, H, W = X.shape
    O, per_group, h, w = K.shape
    rows, cols = H - h + 1, W - w + 1
    Xg = X.astype(np.float64).reshape(N, groups, per_group, H, W)
    Kg = K.astype(np.float64).reshape(groups, O // groups, per_group, h, w)
    Y = np.zeros((N, groups, O // groups, rows, cols))
    for a in range(h):
        for b in range(w):
            Y += np.einsum("ngcij,goc->ngoij", Xg[..., a:a + rows, b:b + cols], Kg[..., a, b], optimize=True)
    return Y.reshape(N, O, rows, cols)


def max_error(result: Any, ref: np.ndarray, X: np.ndarray, K: np.ndarray) -> float:
    result = np.asarray(result, dtype=np.float64)
    if result.shape != ref.shape:
        return float("inf")
    scale = float(np.abs(X).max() * np.abs(K).reshape(K.shape[0], -1).sum(axis=1).max()) or 1.0
    return float(np.abs(result - ref).max() / scale)


Runner = tuple[Callable[[], Any], Callable[[Any], np.ndarray]]


LAST = ("tensorflow", "jax")  # frameworks whose own layers take (N, H, W, C): d2lconv is timed in that layout


def d2l_runners(adapter: Any, sync: Callable[[Any], Any], shape: Shape, X: np.ndarray,
                K: np.ndarray) -> dict[str, Runner | str]:
    """d2lconv with each method on native tensors in the framework's own layout (channels last on TensorFlow and
    JAX), and ``auto`` in the other layout; results as ``(N, O, H', W')`` NumPy arrays."""
    import d2lconv as dc

    runners: dict[str, Runner | str] = {}
    if shape.batch2d:  # single-channel frames: corr2d on (N, H, W) with the 2-D kernel; no layout to choose
        Xn, Kn = adapter.from_numpy(X[:, 0]), adapter.from_numpy(K[0, 0])
        for method in METHODS:
            runners[f"d2l.{method}"] = (lambda m=method: sync(dc.corr2d(Xn, Kn, method=m)),
                                        lambda y: dc.to_numpy(y)[:, None])
        runners["d2l.separable"] = "skipped: kernel not rank one"
        runners["d2l.auto-other"] = "n/a: no channel axis"
        return runners
    Kn = adapter.from_numpy(K)
    layouts = {"channels_first": adapter.from_numpy(X),
               "channels_last": adapter.from_numpy(np.ascontiguousarray(X.transpose(0, 2, 3, 1)))}
    own = "channels_last" if adapter.NAME in LAST else "channels_first"
    other = "channels_first" if own == "channels_last" else "channels_last"

    def run(method: str, layout: str) -> Runner:
        Xn = layouts[layout]
        back = (lambda y: dc.to_numpy(y).transpose(0, 3, 1, 2)) if layout == "channels_last" else dc.to_numpy
        return (lambda: sync(dc.corr2d_multi_in_out(Xn, Kn, groups=shape.groups, method=method, data_format=layout)),
                back)

    for method in METHODS:
        runners[f"d2l.{method}"] = ("skipped: kernels not rank one" if method == "separable" and not shape.named
                                    else run(method, own))
    runners["d2l.auto-other"] = run("auto", other)
    return runners


def framework_runner(backend: str, shape: Shape, X: np.ndarray, K: np.ndarray) -> Runner | str:
    """The framework's own op on inputs already in its layout (see the module docstring)."""
    groups = shape.groups
    depthwise = groups > 1 and K.shape[1] == 1
    if backend == "torch":
        import torch
        import torch.nn.functional as F

        x, w = torch.from_numpy(X), torch.from_numpy(K)
        return (lambda: F.conv2d(x, w, groups=groups), lambda y: y.numpy())
    if backend == "tensorflow":
        import tensorflow as tf

        x = tf.constant(X.transpose(0, 2, 3, 1))  # NHWC
        if depthwise:  # Keras's DepthwiseConv2D: (h, w, C, multiplier)
            w = tf.constant(K.transpose(2, 3, 0, 1).reshape(K.shape[2], K.shape[3], groups, -1))
            conv = tf.function(lambda x, w: tf.nn.depthwise_conv2d(x, w, (1, 1, 1, 1), "VALID"))
        else:
            w = tf.constant(K.transpose(2, 3, 1, 0))  # HWIO
            conv = tf.function(lambda x, w: tf.nn.conv2d(x, w, strides=1, padding="VALID"))
        return (lambda: conv(x, w).numpy(), lambda y: y.transpose(0, 3, 1, 2))
    if backend == "jax":
        import jax
        import jax.numpy as jnp

        x, w = jnp.asarray(X.transpose(0, 2, 3, 1)), jnp.asarray(K.transpose(2, 3, 1, 0))  # NHWC, HWIO (Flax)
        conv = jax.jit(lambda x, w: jax.lax.conv_general_dilated(
            x, w, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=groups))
        return (lambda: conv(x, w).block_until_ready(), lambda y: np.asarray(y).transpose(0, 3, 1, 2))
    if backend == "mxnet":
        from mxnet import np as mnp
        from mxnet import npx

        npx.set_np()
        x, w = mnp.array(X), mnp.array(K)

        def run() -> Any:
            y = npx.convolution(data=x, weight=w, kernel=K.shape[2:], num_filter=K.shape[0], num_group=groups,
                                no_bias=True)
            npx.waitall()
            return y

        return (run, lambda y: y.asnumpy())
    return "n/a: NumPy has no conv op"


def interleaved(runners: dict[str, Callable[[], Any]], budget: float, rounds: int) -> dict[str, float]:
    """Median seconds per call of each warmed-up runner, timed in alternation: ``rounds`` rounds, each timing
    every runner once (calls batched to samples of ~``budget / rounds`` s), so that a load that changes during
    the run (a shared machine) weighs on every runner alike and their ratios stay fair."""
    per_sample = budget / rounds
    numbers = {}
    for name, fn in runners.items():
        start = time.perf_counter()
        fn()
        numbers[name] = max(1, min(1000, int(per_sample / max(time.perf_counter() - start, 1e-9))))
    samples: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(rounds):
        for name, fn in runners.items():
            start = time.perf_counter()
            for _ in range(numbers[name]):
                fn()
            samples[name].append((time.perf_counter() - start) / numbers[name])
    return {name: statistics.median(values) for name, values in samples.items()}


def auto_choice(adapter: Any, shape: Shape, X: np.ndarray, K: np.ndarray) -> str:
    """What ``auto`` picks for this case (``corr2d``'s choice for the 2-D batch)."""
    from d2lconv._auto import choose_channel_method, choose_method

    Kn = adapter.from_numpy(K)
    if shape.batch2d:
        return choose_method(adapter, X.shape[-2:], adapter.from_numpy(K[0, 0]), (1, 1), (1, 1), X.shape[0])
    choice = choose_channel_method(adapter, X.shape[0], X.shape[1], X.shape[-2:], Kn, (1, 1), (1, 1), shape.groups)
    if choice == "per_kernel" and adapter.NAME in ("tensorflow", "jax"):
        from d2lconv._auto import choose_bank_method

        choice += f" ({choose_bank_method(adapter, Kn, X.shape[0] * K.shape[0] * X.shape[2] * X.shape[3])})"
    return choice


def run(args: argparse.Namespace) -> dict[str, Any]:
    import d2lconv as dc
    from d2lconv._backend import active_adapter

    if args.backend:
        dc.set_backend(args.backend)
    adapter = active_adapter()
    backend = adapter.NAME
    sync = make_sync(backend)
    load_before = os.getloadavg()
    cases = []
    for shape in SHAPES:
        if args.only and shape.name not in args.only:
            continue
        X, K = make_inputs(shape, args.seed)
        ref = reference(X, K, shape.groups)
        runners = d2l_runners(adapter, sync, shape, X, K)
        runners["fw-op"] = framework_runner(backend, shape, X, K)
        case: dict[str, Any] = {"case": shape.name, "x": list(shape.x), "k": list(shape.k), "groups": shape.groups,
                                "auto_choice": auto_choice(adapter, shape, X, K), "times": {}, "errors": {},
                                "notes": {}}
        ready = {}
        for name in COLUMNS:
            runner = runners.get(name, "n/a")
            if isinstance(runner, str):
                case["notes"][name] = runner
                continue
            fn, as_array = runner
            try:
                out = fn()  # the warm-up: compiles, and is checked against the reference
                case["errors"][name] = max_error(as_array(out), ref, X, K)
                ready[name] = fn
            except Exception as error:  # an unavailable method (no FFT on MXNet, no conv op on NumPy)
                case["notes"][name] = f"n/a: {type(error).__name__}: {' '.join(str(error).split())[:160]}"
        case["times"] = interleaved(ready, args.budget, args.rounds)
        times = case["times"]
        case["auto/fw-op"] = (times["d2l.auto"] / times["fw-op"] if "d2l.auto" in times and "fw-op" in times
                              else None)
        case["mismatches"] = [name for name, error in case["errors"].items() if not error <= TOLERANCE]
        cases.append(case)
        print(_row(case), flush=True)
    return {"backend": backend, "versions": versions(), "threads": args.threads or "default",
            "cpus": len(os.sched_getaffinity(0)), "python": platform.python_version(),
            "load_before": list(load_before), "load_after": list(os.getloadavg()),
            "budget": args.budget, "cases": cases, "date": time.strftime("%Y-%m-%d %H:%M")}


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1e3:.3g}"


def _row(case: dict[str, Any]) -> str:
    times = case["times"]
    cells = [case["case"], case["auto_choice"]] + [_ms(times.get(name)) for name in COLUMNS]
    ratio = case["auto/fw-op"]
    cells.append("-" if ratio is None else f"{ratio:.2f}")
    cells.append("MISMATCH " + ",".join(case["mismatches"]) if case["mismatches"] else "ok")
    return " | ".join(cells)


HEADER = ["case", "auto ->"] + [f"{name} ms" for name in COLUMNS] + ["auto / fw-op", "check"]


def summary(results: list[dict[str, Any]]) -> str:
    """``auto / fw-op`` for every case (rows) and run (columns), with the load average of each run."""
    names = [case["case"] for case in results[0]["cases"]]
    header = ["case"] + [f"{r['backend']} ({'1 thread' if r['threads'] == 1 else 'default threads'})"
                         for r in results]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name in names:
        cells = [name]
        for result in results:
            case = next((c for c in result["cases"] if c["case"] == name), None)
            ratio = None if case is None else case["auto/fw-op"]
            cells.append("-" if ratio is None else f"{ratio:.2f} ({case['auto_choice']})")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("| load average (1 min), before -> after | " + " | ".join(
        f"{r['load_before'][0]:.1f} -> {r['load_after'][0]:.1f}" for r in results) + " |")
    return "\n".join(lines)


def markdown(results: list[dict[str, Any]]) -> str:
    """One table per run (backend, threads), with its load average."""
    lines = []
    for result in results:
        load = ", ".join(f"{x:.2f}" for x in result["load_before"]) + " -> " + ", ".join(
            f"{x:.2f}" for x in result["load_after"])
        lines += [f"### {result['backend']}, threads: {result['threads']} ({result['cpus']} CPUs allowed)", "",
                  f"{' '.join(f'{k} {v}' for k, v in result['versions'].items())}; load average (1, 5, 15 min) "
                  f"{load}; {result['date']}", "",
                  "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
        lines += ["| " + _row(case) + " |" for case in result["cases"]]
        notes = sorted({f"{name}: {note}" for case in result["cases"] for name, note in case["notes"].items()
                        if not note.startswith("skipped")})
        lines += [""] + [f"- {note}" for note in notes] + [""]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", help="d2lconv backend (default: D2LCONV_BACKEND, else numpy)")
    parser.add_argument("--only", nargs="+", metavar="CASE", help=f"cases to run ({', '.join(s.name for s in SHAPES)})")
    parser.add_argument("--budget", type=float, default=1.0, help="seconds of timing per column (default 1)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds of timing (default 5)")
    parser.add_argument("--threads", type=int, help="limit the threads of the frameworks and BLAS (not JAX: use "
                        "taskset -c 0)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", metavar="OUT.json", help="also write the results as JSON")
    parser.add_argument("--merge", nargs="+", metavar="RUN.json", help="print the markdown of these runs and exit")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.merge:
        results = []
        for path in args.merge:
            with open(path, encoding="utf-8") as handle:
                results.append(json.load(handle))
        print(summary(results) + "\n\n" + markdown(results))
        return 0
    if args.threads:
        limit_threads(args.threads)
    print(" | ".join(HEADER), flush=True)
    result = run(args)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=1)
    return 1 if any(case["mismatches"] for case in result["cases"]) else 0


if __name__ == "__main__":
    sys.exit(main())
