"""The ``d2lconv`` command line: ``d2lconv demo`` runs the chapter on a backend and prints what the book prints."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import d2lconv as dc

EPILOG = """examples:
  d2lconv demo                     the chapter on the default backend (numpy, or $D2LCONV_BACKEND)
  d2lconv demo --backend torch     the chapter on PyTorch
"""


class UsageError(Exception):
    """Bad usage: reported on one line with exit status 2."""


def run_demo(args: argparse.Namespace) -> None:
    """The chapter, section by section, on the chosen backend."""
    book = dc.book
    print(f"d2lconv demo on the {dc.get_backend()!r} backend\n")
    X, K = book.figure_input(), book.figure_kernel()
    print("The cross-correlation of the figure, corr2d(X, K):")
    print(repr(dc.corr2d(X, K, method="loop")), end="\n\n")
    X = book.edge_image()
    print("The edge image X (6x8, the middle four columns black):")
    print(repr(X), end="\n\n")
    K = book.edge_kernel()
    Y = dc.corr2d(X, K)
    print("Edges, Y = corr2d(X, K) with K = [[1, -1]] (1 for white to black, -1 for black to white):")
    print(repr(Y), end="\n\n")
    print("The transposed image, corr2d(X.T, K): K only detects vertical edges")
    print(repr(dc.corr2d(dc.transpose(X), K)), end="\n\n")
    print(f"Learning a {book.KERNEL_SIZE} kernel back from X and Y "
          f"(lr {book.LEARNING_RATE}, the framework's own layer):")
    result = dc.train_kernel(X, Y, book.KERNEL_SIZE, lr=book.LEARNING_RATE, epochs=book.EPOCHS, seed=args.seed,
                             verbose=True)
    print(f"\nThe learned kernel: {result.kernel.round(4).tolist()} (K is [[1.0, -1.0]])")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="d2lconv", description="The 'Convolutions for Images' chapter of d2l.ai on five backends.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser("demo", help="run the chapter on one backend and print the book's results")
    demo.add_argument("--backend", help=f"one of {', '.join(dc.BACKENDS)} (default: $D2LCONV_BACKEND or numpy)")
    demo.add_argument("--seed", type=int, default=None, help="seed the kernel's random start (the book does not)")
    demo.set_defaults(run=run_demo)
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
        else:
            dc.get_backend()  # a bad D2LCONV_BACKEND is a usage error too
        args.run(args)
    except UsageError as error:
        return _fail(args, error, 2)
    except dc.BackendNotInstalledError as error:
        return _fail(args, error, 2)
    except ValueError as error:
        return _fail(args, error, 2 if "D2LCONV_BACKEND" in str(error) else 1)
    except (dc.TrainingDivergedError, TypeError, RuntimeError, OSError) as error:
        return _fail(args, error, 1)
    return 0


def _fail(args: argparse.Namespace, error: BaseException, status: int) -> int:
    if args.debug:
        raise error
    print(f"d2lconv: error: {error}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
