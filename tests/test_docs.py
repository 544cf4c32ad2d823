"""What the README shows is what d2lconv prints: its printouts and messages, checked against real runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import d2lconv as dc
from d2lconv import cli

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def demo_printout() -> list[str]:
    """The lines of the README's printout of ``d2lconv demo`` (the first fenced block after the command)."""
    start = README.index("prints the chapter on NumPy")
    block = README[README.index("```\n", start) + 4:]
    return block[:block.index("```")].splitlines()


def test_the_readme_demo_printout_is_what_demo_prints(capsys):
    """The header line was missing, and the learned kernel lost its trailing zeros (-1.055 for -1.0550)."""
    assert cli.main(["demo", "--seed", "0"]) == 0
    printed = capsys.readouterr().out.splitlines()
    shown = demo_printout()
    assert printed[0] == shown[0].replace("'numpy'", repr(dc.get_backend()))
    kernel = re.compile(r"The learned kernel: \[\[(-?\d+\.\d{4}), (-?\d+\.\d{4})\]\] \(K is \[\[1\.0, -1\.0\]\]\)$")
    assert kernel.match(shown[-1]) and kernel.match(printed[-1]), (shown[-1], printed[-1])
    if dc.get_backend() == "numpy":  # the README shows NumPy's run with --seed 0: every line it shows, in order
        rest = iter(printed)
        for line in shown:
            if line.strip() != "...":
                assert any(line == other for other in rest), f"not printed (in this order): {line!r}"


def test_the_readme_divergence_example_is_what_every_backend_raises():
    """The README's message (loss 18.3 -> 1652) was not what any backend printed for its call."""
    row = next(line for line in README.splitlines() if line.startswith("| learning rate too large"))
    call, message = re.findall(r"`([^`]+)`", row)[0], re.findall(r"`(TrainingDivergedError: [^`]+)`", row)[0]
    assert call == 'train_kernel(X, corr2d(X, [[1.0, 0.0]]), lr=0.1, init="zeros")'
    X = dc.book.edge_image()
    with pytest.raises(dc.TrainingDivergedError) as caught:
        dc.train_kernel(X, dc.corr2d(X, [[1.0, 0.0]]), lr=0.1, init="zeros")
    assert f"TrainingDivergedError: {caught.value}" == message


def test_the_readme_training_data_error_is_what_train_kernel_raises():
    import numpy as np

    row = next(line for line in README.splitlines() if line.startswith("| NaN or inf in the training data"))
    message = re.findall(r"`ValueError: ([^`]+)`", row)[0]
    X = dc.book.edge_image()
    Y = dc.to_numpy(dc.corr2d(X, dc.book.edge_kernel())).copy()
    Y[2, 3] = np.nan
    with pytest.raises(ValueError) as caught:
        dc.train_kernel(X, Y)
    assert str(caught.value) == message


def test_only_learn_has_max_size():
    """The README said IMAGE is shrunk to --max-size, but edges has no such option."""
    edges = cli.build_parser()._subparsers._group_actions[0].choices["edges"]
    learn = cli.build_parser()._subparsers._group_actions[0].choices["learn"]
    assert "--max-size" not in edges.format_help() and "--max-size" in learn.format_help()
    assert "`learn` shrinks it to `--max-size`" in README.replace("\n", " ")
