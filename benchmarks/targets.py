"""Check issue 11's speed targets against the ``bench.py --json`` results (and ``first_call.py --json``).

    python benchmarks/targets.py benchmarks/results/{numpy,torch,tensorflow,jax,mxnet}.json \
        --first-call benchmarks/results/first-call-*.json

Prints one markdown table: each target, the measured ratios it depends on, and whether it was met.
Random (not rank-one) kernels; every ratio comes from one process, so it does not depend on the load as
much as the times do (the load averages of each run are printed below the table). A target whose cases a
run did not measure (``--quick``, ``--sizes``) is "not measured". Single-channel images only: the batch and
channel shapes of issue 10 are timed by ``bench_channels.py`` (``RESULTS_CHANNELS.md``), not checked here.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def load(paths: list[str]) -> dict[str, dict[str, Any]]:
    results = {}
    for path in paths:
        with open(path) as f:
            data = json.load(f)
        results[data["backend"]] = data
    return results


def case(result: dict[str, Any], N: int, k: int, kernel: str = "random") -> dict[str, Any] | None:
    return next((c for c in result["cases"] if (c["N"], c["k"], c["kernel"]) == (N, k, kernel)), None)


def ratio(result: dict[str, Any] | None, N: int, k: int, name: str, kernel: str = "random") -> float | None:
    found = case(result, N, k, kernel) if result else None
    return None if found is None else found["ratios"].get(name)


def fmt(value: float | None, suffix: str = "") -> str:
    return "n/a" if value is None else f"{value:.3g}{suffix}"


def check(values: list[tuple[str, float | None]], ok: Any) -> tuple[str, str]:
    """``(cells, verdict)``: the labelled values and 'met' if every present value passes ``ok``."""
    cells = ", ".join(f"{label} {fmt(value)}" for label, value in values)
    present = [value for _, value in values if value is not None]
    if not present:
        return cells, "not measured"
    failed = [label for label, value in values if value is not None and not ok(value)]
    return cells, "met" if not failed else "**missed** (" + ", ".join(failed) + ")"


def rows(results: dict[str, dict[str, Any]], first_calls: list[dict[str, Any]],
         book: dict[str, dict[str, Any]] | None = None) -> list[tuple[str, str, str]]:
    table = []
    for backend in ("torch", "tensorflow", "jax", "mxnet"):
        r = results.get(backend)
        if r is None:
            continue
        values = [(f"k={k}", ratio(r, 2048, k, "auto/native")) for k in (3, 7, 15, 31)]
        cells, verdict = check(values, lambda v: v < 1)
        table.append((f"{backend}: faster than its op at 2048 (auto / op < 1)", cells, verdict))
        if backend != "mxnet":
            values = [(f"k={k}", ratio(r, 2048, k, "auto/native")) for k in (3, 31)]
            cells, verdict = check(values, lambda v: v <= 0.2)
            table.append((f"{backend}: >= 5x faster than its op at 2048, k = 3 and 31 (<= 0.2)", cells, verdict))
    for backend, limit in (("torch", 2.0), ("numpy", 2.0), ("jax", 1.25), ("tensorflow", 1.25)):
        r = results.get(backend)
        if r is None:
            continue
        values = [(f"{N}/k={k}", ratio(r, N, k, "auto/cv2")) for N in (2048, 4096) for k in (3, 7)]
        cells, verdict = check(values, lambda v, limit=limit: v <= limit)
        table.append((f"{backend}: auto / cv2.filter2D <= {limit:g} at k = 3 and 7", cells, verdict))
    for backend in ("numpy", "torch", "tensorflow", "jax"):
        r = results.get(backend)
        if r is None:
            continue
        values = [(f"{N}", ratio(r, N, 31, "auto/cv2")) for N in (2048, 4096)]
        cells, verdict = check(values, lambda v: v <= 1)
        table.append((f"{backend}: at or below cv2.filter2D at k = 31 (<= 1)", cells, verdict))
    for backend in ("torch", "numpy"):
        r = results.get(backend)
        if r is None:
            continue
        values = [(f"k={k}", ratio(r, 2048, k, "speed-up")) for k in (3, 7)]
        cells, verdict = check(values, lambda v: v >= 1.6)
        table.append((f"{backend}: 1 CPU -> all, auto at 2048 >= 1.6x faster", cells, verdict))
    floors = [(backend, ratio(r, 4096, 3, "auto/copy")) for backend, r in results.items()]
    floors = [(b, v) for b, v in floors if v is not None]
    if floors:
        best = min(floors, key=lambda item: item[1])
        cells = ", ".join(f"{b} {fmt(v)}" for b, v in floors)
        table.append(("best backend within 2x of the memory copy at 4096, k = 3", cells,
                      "met" if best[1] <= 2 else f"**missed** (best: {best[0]} {best[1]:.3g})"))
    book = {**results, **(book or {})}  # a later run of the small sizes replaces the full run's book case
    values = [(backend, ratio(r, 3, 2, "auto/native", "book")) for backend, r in book.items() if backend != "numpy"]
    cells, verdict = check(values, lambda v: v <= 1.3)
    table.append(("the book's 3x3 call within 1.3x of the framework's op", cells, verdict))
    if first_calls:
        values = [(f["backend"], f["slowest"]) for f in first_calls]
        cells, verdict = check(values, lambda v: v <= 2.0)
        table.append(("first call (corr2d, corr2d_gradients; up to 64x64, k = 15) <= 2 s, fresh process",
                      cells + " (slowest, seconds)", verdict))
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", nargs="+")
    parser.add_argument("--first-call", nargs="*", default=[])
    parser.add_argument("--book", nargs="*", default=[], help="later runs whose book case (N = 3) counts instead")
    args = parser.parse_args(argv)
    results = load(args.results)
    first_calls = []
    for path in args.first_call:
        with open(path) as f:
            first_calls.append(json.load(f))
    print("| target | measured (ratios; < 1 = d2lconv faster) | result |")
    print("|---|---|---|")
    for target, cells, verdict in rows(results, first_calls, load(args.book)):
        print(f"| {target} | {cells} | {verdict} |")
    print()
    for backend, r in results.items():
        print(f"- {backend}: load average {r.get('load_average')} before, {r.get('load_average_after')} after; "
              f"threads {r.get('threads')}; one-CPU run: {r.get('one_cpu_run')}")
    print("- batches and channels: see bench_channels.py and RESULTS_CHANNELS.md (not checked here)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
