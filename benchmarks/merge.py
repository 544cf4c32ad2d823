"""Merge the ``--json`` outputs of ``bench.py`` (one per backend) into one markdown table.

Rows are the cases (N, k, kernel); for every backend the columns are the time of
``corr2d(method="auto")`` with the method it chose, and its ratios to the framework's own conv op,
to OpenCV's ``cv2.filter2D`` and to a memory copy, and its speed-up from one CPU to all (N >= 512).

    python benchmarks/merge.py numpy.json torch.json tensorflow.json jax.json mxnet.json > RESULTS.md
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

RATIOS = ("auto/native", "auto/cv2", "auto/copy", "speed-up")


def load(paths: list[str]) -> list[dict[str, Any]]:
    """The JSON results, in the order given."""
    results = []
    for path in paths:
        with open(path) as f:
            results.append(json.load(f))
    return results


def case_key(case: dict[str, Any]) -> tuple[int, int, str]:
    return case["N"], case["k"], case["kernel"]


def auto_cell(case: dict[str, Any] | None) -> str:
    """``auto``'s median time with the method it chose, or why it has none."""
    if case is None:
        return ""
    timing = case["times"]["d2l.auto"]
    if timing["median"] is None:
        return timing["note"].split(":")[0]
    flag = " !" if case["mismatches"] else ""  # some method disagreed with the float64 reference
    return f"{timing['median']:.3g} ({case['auto_choice']}){flag}"


def ratio_cell(case: dict[str, Any] | None, ratio: str) -> str:
    if case is None:
        return ""
    value = case["ratios"].get(ratio)
    return "n/a" if value is None else f"{value:.3g}"


def merge(results: list[dict[str, Any]]) -> str:
    """One GitHub-markdown table: rows (N, k, kernel), four columns per backend."""
    by_backend = [{case_key(c): c for c in r["cases"]} for r in results]
    keys = sorted({key for cases in by_backend for key in cases})
    header = ["N", "k", "kernel"]
    for r in results:
        header += [f"{r['backend']} auto (s)"] + [f"{r['backend']} {ratio}" for ratio in RATIOS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---:|" * len(header)]
    for key in keys:
        row = [str(key[0]), str(key[1]), key[2]]
        for cases in by_backend:
            case = cases.get(key)
            row += [auto_cell(case)] + [ratio_cell(case, ratio) for ratio in RATIOS]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def footer(results: list[dict[str, Any]]) -> str:
    """Versions and settings of each run, so a table says what produced it."""
    lines = ["", "Medians in seconds; ratios < 1 mean d2lconv's auto is faster; speed-up = auto's time on one CPU "
             "(a child process under taskset) / its time on all. '!' = a method disagreed with the float64 reference "
             "in that case (see the backend's own output)."]
    for r in results:
        versions = ", ".join(f"{name} {version}" for name, version in r["versions"].items())
        lines.append(f"- {r['backend']}: {versions}; {r['cpus']} CPUs; threads {r['args'].get('threads') or 'default'}"
                     f" {r.get('threads', '')}; load average {r.get('load_average')} before,"
                     f" {r.get('load_average_after')} after")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", nargs="+", help="JSON files written by bench.py --json")
    parser.add_argument("--out", help="write the markdown here instead of to stdout")
    args = parser.parse_args(argv)
    results = load(args.results)
    text = merge(results) + "\n" + footer(results) + "\n"
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
