"""Which backend is in force, and loading its adapter.

The choice is made, in order of precedence, by
1. ``with use_backend(name):`` - local to the current thread or asyncio task (a ``ContextVar``);
2. ``set_backend(name)`` - for the whole process;
3. the ``D2LCONV_BACKEND`` environment variable, read at first use, not at import;
4. the default, ``numpy``, which needs no framework.

Nothing here imports a framework: an adapter module (and with it its framework) is imported the first
time its backend is used.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import warnings
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from types import ModuleType

ENV_VAR = "D2LCONV_BACKEND"
DEFAULT_BACKEND = "numpy"
BACKENDS: tuple[str, ...] = ("numpy", "torch", "tensorflow", "jax", "mxnet", "dask")
ALIASES: dict[str, str] = {"pytorch": "torch", "tf": "tensorflow", "flax": "jax", "mx": "mxnet"}


class BackendNotInstalledError(ImportError):
    """A known backend whose framework cannot be imported in this environment."""


@dataclass(frozen=True)
class Framework:
    """What a backend needs installed, and how a user installs it."""

    title: str  # the framework's name as people write it
    modules: tuple[str, ...]  # top-level modules that must be importable
    extra: str | None  # the pip extra of d2lconv that installs it
    import_hint: str = ""  # what usually breaks its import ({numpy}: the version installed)
    numpy_below: tuple[int, int] | None = None  # the hint applies from this numpy on
    quiet: tuple[tuple[str, str], ...] = ()  # environment defaults that silence its start-up logging

    @property
    def install_command(self) -> str:
        return "pip install d2lconv" if self.extra is None else f"pip install 'd2lconv[{self.extra}]'"


FRAMEWORKS: dict[str, Framework] = {
    "numpy": Framework("NumPy", ("numpy",), None),
    "torch": Framework("PyTorch", ("torch",), "torch"),
    # TensorFlow reads its C++ log level once, at import: set it first, unless the user did.
    "tensorflow": Framework("TensorFlow", ("tensorflow",), "tensorflow", quiet=(("TF_CPP_MIN_LOG_LEVEL", "2"),)),
    "jax": Framework("JAX/Flax", ("jax", "flax"), "jax"),
    "mxnet": Framework(
        "MXNet", ("mxnet",), "mxnet",
        ". MXNet 1.9.1 (its last release) needs numpy<1.24 (this environment has numpy {numpy}), so give it an "
        "environment of its own", numpy_below=(1, 24),
    ),
    # Dask arrays of any size, each chunk computed by another backend (NumPy unless told otherwise).
    "dask": Framework("Dask", ("dask",), "dask"),
}

_process_choice: str | None = None
_adapters: dict[str, ModuleType] = {}  # loaded adapters by canonical name
_environment_names: dict[str, str] = {}  # D2LCONV_BACKEND values already read, by their canonical name
_block_choice: ContextVar[str | None] = ContextVar("d2lconv_backend", default=None)


def canonical_name(name: str) -> str:
    """Return the canonical backend name for ``name`` (any case, aliases allowed, blanks ignored)."""
    if not isinstance(name, str):
        raise TypeError(f"backend name must be a string, got {type(name).__name__} {name!r}")
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in BACKENDS:
        aliases = ", ".join(f"{a!r} for {c!r}" for a, c in ALIASES.items())
        raise ValueError(
            f"unknown backend {name!r}; valid names are {', '.join(map(repr, BACKENDS))} "
            f"(aliases: {aliases})"
        )
    return key


def _from_environment() -> str:
    value = os.environ.get(ENV_VAR, "")
    known = _environment_names.get(value)
    if known is not None:
        return known
    try:
        name = canonical_name(value) if value.strip() else DEFAULT_BACKEND
    except ValueError as error:
        raise ValueError(f"{ENV_VAR}: {error}") from None
    _environment_names[value] = name
    return name


def get_backend() -> str:
    """The canonical name of the backend in force here (block, then process, then environment)."""
    return _block_choice.get() or _process_choice or _from_environment()


def set_backend(name: str) -> None:
    """Use backend ``name`` for the whole process; fails at once if its framework is missing."""
    global _process_choice
    canonical = canonical_name(name)
    load_adapter(canonical)
    _process_choice = canonical


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[str]:
    """Use backend ``name`` inside a ``with`` block, for this thread or asyncio task only."""
    canonical = canonical_name(name)
    load_adapter(canonical)
    token = _block_choice.set(canonical)
    try:
        yield canonical
    finally:
        _block_choice.reset(token)


def is_installed(name: str) -> bool:
    """Whether the framework of backend ``name`` is importable, without importing it."""
    return all(importlib.util.find_spec(module) is not None for module in FRAMEWORKS[canonical_name(name)].modules)


def available_backends() -> list[str]:
    """The backends whose framework is installed here (no framework is imported to find out)."""
    return [name for name in BACKENDS if is_installed(name)]


def load_adapter(name: str) -> ModuleType:
    """Import the adapter of backend ``name`` (and so its framework), or say how to install it."""
    adapter = _adapters.get(name)
    if adapter is not None:
        return adapter
    name = canonical_name(name)
    framework = FRAMEWORKS[name]
    for variable, value in framework.quiet:
        os.environ.setdefault(variable, value)
    try:
        with warnings.catch_warnings(record=True) as caught:  # shown only once the import has worked
            for module in framework.modules:
                importlib.import_module(module)
    except ModuleNotFoundError as error:
        missing = (error.name or "").split(".")[0]
        if missing not in framework.modules:
            raise
        raise BackendNotInstalledError(
            f"the {name!r} backend needs {framework.title}, which is not installed "
            f"(no module named {missing!r}); install it with: {framework.install_command}"
        ) from error
    except Exception as error:  # installed but broken, e.g. MXNet 1.9.1 beside numpy >= 1.24
        import numpy

        numpy_version = tuple(int(part) for part in numpy.__version__.split(".")[:2] if part.isdigit())
        hint = framework.import_hint.format(numpy=numpy.__version__)
        if framework.numpy_below is not None and numpy_version < framework.numpy_below:
            hint = ""  # numpy is not the cause
        raise BackendNotInstalledError(
            f"{framework.title} is installed but fails to import ({type(error).__name__}: {_first_sentence(error)})"
            f"{hint}; reinstall it with: {framework.install_command}"
        ) from error
    for warning in caught:  # the import worked: its warnings are the framework's to give
        warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno, warning.file,
                             warning.line)
    adapter = _adapters[name] = importlib.import_module(f"d2lconv.backends.{name}")
    return adapter


def _first_sentence(error: BaseException) -> str:
    """The first line of an error's text, cut at its first sentence if long (NumPy's run to a paragraph)."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    head, dot, _ = text.partition(". ")
    return (head if dot and len(text) > 100 else text).rstrip(".")


def active_adapter() -> ModuleType:
    """The adapter module of the backend in force."""
    return load_adapter(get_backend())
