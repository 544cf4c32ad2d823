"""``d2lconv compare``: the chapter's results from all five backends in one table.

MXNet needs numpy<1.24 and the other frameworks numpy 2, so no single interpreter has them all: each
backend runs ``d2lconv demo --json`` in an interpreter that has its framework (this one, a ``.tox/<backend>``
environment of the project, or one given with ``--python NAME=PATH``), or the table merges JSON files that
``tox -m compare`` wrote. A backend with no interpreter gets a row that says how to get one.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

import d2lconv as dc
from d2lconv._backend import canonical_name
from d2lconv._usage import UsageError


def book_checks(record: dict[str, Any]) -> dict[str, bool]:
    """Whether a demo record holds the book's results: the figure, the edges, the transposed zeros."""
    book = dc.book

    def close(values: Any, expected: Any) -> bool:
        try:
            values, expected = np.asarray(values, dtype=float), np.asarray(expected, dtype=float)
        except (TypeError, ValueError):
            return False
        return values.shape == expected.shape and bool(np.allclose(values, expected, atol=1e-4))

    return {
        "figure": close(record.get("figure", {}).get("output"), book.FIGURE_OUTPUT),
        "edges": close(record.get("edges", {}).get("output"), [book.EDGE_ROW] * 6),
        "transposed": close(record.get("transposed", {}).get("output"), np.zeros((8, 5))),
    }


def run_compare(args: argparse.Namespace) -> int:
    """One table of the chapter's results from all five backends."""
    if args.source is not None:
        records, notes = _records_from(Path(args.source), args.backends)
    else:
        records, notes = _records_from_subprocesses(args)
    print(compare_table(records, notes))
    failed = [name for name, record in records.items()
              if record is not None and not all(book_checks(record).values())]
    failed += [name for name, note in notes.items() if note.startswith("failed")]
    return 1 if failed else 0


def _python_overrides(values: Sequence[str]) -> dict[str, str]:
    overrides = {}
    for value in values:
        name, equals, path = value.partition("=")
        if not equals or not path:
            raise UsageError(f"--python takes NAME=PATH (e.g. mxnet=.tox/mxnet/bin/python), got {value!r}")
        try:
            name = canonical_name(name)
        except ValueError as error:
            raise UsageError(f"--python {value!r}: {error}") from None
        if not Path(path).exists():
            raise UsageError(f"--python {value!r}: no such interpreter {path!r}")
        overrides[name] = path
    return overrides


def project_root(start: Path | None = None) -> Path | None:
    """The d2lconv checkout containing ``start`` (the current directory): it has tox.ini and our pyproject."""
    start = (start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        pyproject = folder / "pyproject.toml"
        if (folder / "tox.ini").is_file() and pyproject.is_file() and 'name = "d2lconv"' in pyproject.read_text():
            return folder
    return None


def tox_interpreters(backend: str, root: Path | None) -> list[Path]:
    """The Pythons of the project's tox environments for ``backend`` that exist."""
    if root is None:
        return []
    found = []
    for env in (backend, f"demo-{backend}"):
        for relative in ("bin/python", "Scripts/python.exe"):
            candidate = root / ".tox" / env / relative
            if candidate.exists():
                found.append(candidate)
    return found


def how_to_get(backend: str) -> str:
    if backend == "numpy":
        return "pip install d2lconv"
    return (f"run 'tox -e {backend}' in the project, or pip install 'd2lconv[{backend}]', "
            f"or pass --python {backend}=PATH")


def _records_from_subprocesses(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, str]]:
    overrides = _python_overrides(args.python or [])
    available = set(dc.available_backends())
    root = project_root()
    records: dict[str, Any] = {}
    notes: dict[str, str] = {}
    for backend in args.backends:
        candidates: list[str] = []
        if backend in overrides:
            candidates.append(overrides[backend])
        else:
            if backend in available:
                candidates.append(sys.executable)
            candidates += [str(path) for path in tox_interpreters(backend, root)]
        if not candidates:
            records[backend] = None
            notes[backend] = f"not run: no Python with {backend} here; {how_to_get(backend)}"
            continue
        errors = []
        for python in candidates:
            if not args.quiet:
                print(f"compare: {backend} with {python} ...", file=sys.stderr, flush=True)
            record, error = _run_demo_in(python, backend, args.seed, args.timeout)
            if record is not None:
                records[backend] = record
                break
            errors.append(f"{python}: {error}")
        else:
            records[backend] = None
            notes[backend] = "failed: " + "; ".join(errors)
    return records, notes


def _run_demo_in(python: str, backend: str, seed: int, timeout: float) -> tuple[dict[str, Any] | None, str]:
    command = [python, "-m", "d2lconv.cli", "demo", "--backend", backend, "--json", "--seed", str(seed)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
    env.pop("D2LCONV_BACKEND", None)
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout:g} s"
    except OSError as error:
        return None, f"cannot run it ({error.strerror or error})"
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        return None, (lines[-1] if lines else f"exit status {done.returncode}")
    record = _parse_json_output(done.stdout)
    if record is None:
        return None, "its output is not the JSON of 'd2lconv demo --json'"
    return record, ""


def _parse_json_output(text: str) -> dict[str, Any] | None:
    """The JSON object in ``text``, even if a framework printed something on stdout before it."""
    decoder = json.JSONDecoder()
    position = 0
    while True:
        start = text.find("{", position)
        if start < 0:
            return None
        if start == 0 or text[start - 1] == "\n":
            try:
                record, end = decoder.raw_decode(text, start)
            except json.JSONDecodeError:
                record = None
            if isinstance(record, dict) and "backend" in record and not text[end:].strip():
                return record
        position = start + 1


def _records_from(folder: Path, backends: Sequence[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The demo records in ``folder``'s ``*.json`` files. A file that is not one (unreadable, not JSON, or JSON
    of something else, ``{}`` included) is skipped with a note on stderr that names it and says why."""
    if folder.is_file():
        raise UsageError(f"--from {str(folder)!r} is a file; give the directory that holds the JSON files")
    if not folder.is_dir():
        raise UsageError(f"--from {str(folder)!r}: no such directory")
    records: dict[str, Any] = dict.fromkeys(backends)
    notes: dict[str, str] = {}
    files = sorted(folder.glob("*.json"))
    for path in files:
        record, problem = _demo_record(path)
        if problem:
            print(f"compare: skipped {str(path)!r}: {problem}", file=sys.stderr)
        elif record["backend"] in records:
            records[record["backend"]] = record
    if not files:
        print(f"compare: no *.json files in {str(folder)!r}", file=sys.stderr)
    for backend, record in records.items():
        if record is None:
            notes[backend] = (f"not run: no results for it in {str(folder)!r}; run 'tox -e demo-{backend}' "
                              f"(or 'd2lconv demo --backend {backend} --seed 0 --json {folder / (backend + '.json')}')")
    return records, notes


def _demo_record(path: Path) -> tuple[dict[str, Any] | None, str]:
    """The record in ``path``, or None and why it is not the JSON of ``d2lconv demo --json``."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        return None, f"cannot read it ({error})"
    except json.JSONDecodeError as error:
        return None, f"not valid JSON ({error})"
    if not isinstance(record, dict) or record.get("backend") not in dc.BACKENDS or "learning" not in record:
        return None, "not the JSON of 'd2lconv demo --json' (no 'backend' and 'learning' results)"
    return record, ""


def _kernel_text(kernel: Any) -> str:
    values = np.asarray(kernel, dtype=float).ravel()
    return "[" + ", ".join(f"{value:+.4f}" for value in values) + "]"


def compare_table(records: dict[str, Any], notes: dict[str, str]) -> str:
    """The five backends' results as one plain-text table, with what the columns mean below it."""
    header = ["backend", "framework", "figure", "edges", "X.T", "kernel, seed 0", "loss", "kernel, zeros",
              "loss", "ms/step"]
    rows: list[list[str]] = []
    zeros_kernels = []
    for backend in records:
        record = records[backend]
        if record is None:
            rows.append([backend, notes.get(backend, "not run")])
            continue
        checks = book_checks(record)
        versions = record.get("versions") or {}
        runs = record.get("learning", {}).get("runs", {})
        seeded, zeros = runs.get("seed", {}), runs.get("zeros", {})
        if "kernel" in zeros:
            zeros_kernels.append(np.asarray(zeros["kernel"], dtype=float))
        seconds = [run.get("seconds_per_step") for run in (seeded, zeros) if run.get("seconds_per_step") is not None]
        rows.append([
            backend,
            " ".join(f"{module} {version}" for module, version in versions.items()) or "?",
            *("ok" if checks[name] else "WRONG" for name in ("figure", "edges", "transposed")),
            _kernel_text(seeded.get("kernel", [])), _loss_text(seeded.get("final_loss")),
            _kernel_text(zeros.get("kernel", [])), _loss_text(zeros.get("final_loss")),
            f"{1e3 * min(seconds):.3g}" if seconds else "?",
        ])
    full = [row for row in [header, *rows] if len(row) == len(header)]
    widths = [max(len(row[column]) for row in full) for column in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    ran = [backend for backend, record in records.items() if record is not None]
    notes_text = [
        f"Ran {len(ran)} of {len(records)} backends" + (f" ({', '.join(ran)})." if ran else "."),
        "figure: corr2d([[0,1,2],[3,4,5],[6,7,8]], [[0,1],[2,3]]) is [[19, 25], [37, 43]]. edges: every row of "
        "the 6x7 edge map is [0, 1, 0, 0, 0, -1, 0]. X.T: corr2d(X.T, K) is 8x5 zeros.",
        "kernel, seed 0: the (1, 2) kernel after the book's 10 epochs at lr 0.03 from each framework's own random "
        "start (seed 0), so these differ; the true kernel is [+1, -1].",
    ]
    if len(zeros_kernels) > 1:
        spread = max(float(np.abs(k - zeros_kernels[0]).max()) for k in zeros_kernels)
        notes_text.append(f"kernel, zeros: the same from init='zeros', one start for all, so these agree "
                          f"(largest difference between backends: {spread:.2g}).")
    else:
        notes_text.append("kernel, zeros: the same from init='zeros', one start for all backends.")
    notes_text.append("loss: the summed squared error at the last epoch. ms/step: median time of one training step.")
    lines.append("")
    lines += [textwrap.fill(text, width=110, subsequent_indent="  ") for text in notes_text]
    return "\n".join(lines)


def _loss_text(loss: Any) -> str:
    return "?" if not isinstance(loss, (int, float)) else f"{loss:.3g}"
