"""One matplotlib figure per run: images and kernels as heat maps, and the loss curve on a log axis.

Signed maps (edge responses, kernels) use a diverging colour map centred on zero (white is 0, red
positive, blue negative, the scale symmetric); plain images are gray. The scale of a signed map is set by
the bulk of its values (:func:`robust_limit`), not by its few most extreme pixels, which on a real photo
would leave everything else white; the colour bar's arrows say that values beyond it are clipped. Uses
matplotlib's object API with the Agg canvas (no pyplot, no window, no global state), so it works on a
machine without a display.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from d2lconv.images import ImageError, atomic_output, require

SIGNED_CMAP = "RdBu_r"
COLUMNS = 3


@dataclass(frozen=True)
class Panel:
    """One heat map: ``values`` with a ``title``; kernels get their numbers written in the cells."""

    title: str
    values: np.ndarray
    signed: bool | None = None  # None: signed if any value is negative
    kernel: bool = False
    limit: float | None = None  # for signed maps: the scale runs from -limit to +limit (default: robust_limit)
    gray: bool = False  # a signed image in gray (0 mid-grey), e.g. a centred photograph


ROBUST_PERCENTILE = 99.0


def robust_limit(values: np.ndarray, percentile: float = ROBUST_PERCENTILE) -> float:
    """The ``percentile``-th percentile of ``|values|``: a symmetric colour scale that a handful of extreme
    pixels cannot stretch. Falls back to the largest magnitude when most values are 0, and to 1 for all 0."""
    magnitudes = np.abs(np.asarray(values, dtype=np.float64))
    magnitudes = magnitudes[np.isfinite(magnitudes)]
    if magnitudes.size == 0:
        return 1.0
    return float(np.percentile(magnitudes, percentile)) or float(magnitudes.max()) or 1.0


def _figure_class() -> type:
    require("matplotlib", "--plot")
    from matplotlib.figure import Figure

    return Figure


def plot_format(path: str | os.PathLike[str]) -> str:
    """The matplotlib format for ``path``'s extension, or an :class:`ImageError` listing the choices."""
    Figure = _figure_class()
    suffix = Path(path).suffix.lower().lstrip(".")
    supported = Figure().canvas.get_supported_filetypes()
    if suffix not in supported:
        shown = "." + suffix if suffix else "(none)"
        raise ImageError(f"cannot write plot {str(path)!r}: unknown extension {shown!r}; use one of "
                         f"{', '.join('.' + name for name in sorted(supported))}")
    return suffix


def save_figure(path: str | os.PathLike[str], panels: Sequence[Panel], *,
                losses: Mapping[str, Sequence[float]] | None = None, title: str = "") -> None:
    """Draw ``panels`` (and the ``losses`` curves, one per label) in rows of three and save to ``path``."""
    Figure = _figure_class()
    fmt = plot_format(path)
    count = len(panels) + (1 if losses else 0)
    columns = min(COLUMNS, count)
    rows = math.ceil(count / columns)
    figure = Figure(figsize=(3.9 * columns, 3.4 * rows + (0.4 if title else 0)), layout="constrained", dpi=100)
    if title:
        figure.suptitle(title, fontsize=12)
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for ax, panel in zip(axes, panels):
        _heat_map(figure, ax, panel)
    if losses:
        _loss_curve(axes[len(panels)], losses)
    for ax in axes[count:]:
        ax.set_axis_off()
    with atomic_output(path) as temporary:
        figure.savefig(temporary, format=fmt, bbox_inches="tight", pad_inches=0.15)
        if fmt == "png":
            _drop_alpha(temporary)


def _drop_alpha(path: Path) -> None:
    """Agg writes RGBA; the figure is opaque, so RGB says the same in about 10% fewer bytes."""
    try:
        from PIL import Image
    except ModuleNotFoundError:
        return
    with Image.open(path) as picture:
        rgb = picture.convert("RGB")
    rgb.save(path, format="PNG", optimize=True)


def _heat_map(figure, ax, panel: Panel) -> None:
    values = np.asarray(panel.values, dtype=np.float64)
    signed = panel.signed if panel.signed is not None else bool((values < 0).any())
    extend = "neither"
    if signed:
        largest = float(np.abs(values).max(initial=0.0))
        limit = panel.limit or ((largest or 1.0) if panel.kernel or panel.gray else robust_limit(values))
        extend = "both" if largest > limit * (1 + 1e-9) else "neither"
        cmap = "gray" if panel.gray else SIGNED_CMAP
        image = ax.imshow(values, cmap=cmap, vmin=-limit, vmax=limit, interpolation="nearest")
    else:
        top = float(values.max(initial=0.0))
        high = panel.limit or (top or 1.0 if panel.kernel else max(1.0, top))  # images: 0 black, 1 white
        image = ax.imshow(values, cmap="Reds" if panel.kernel else "gray", vmin=0.0, vmax=high,
                          interpolation="nearest")
    rows, cols = values.shape
    ax.set_title(f"{panel.title}\n{rows}x{cols}", fontsize=10)
    colorbar = figure.colorbar(image, ax=ax, shrink=0.8 if rows >= cols else 0.5, aspect=15, extend=extend)
    colorbar.ax.tick_params(labelsize=8)
    if panel.kernel:
        ax.set_xticks(range(cols))
        ax.set_yticks(range(rows))
        ax.tick_params(labelsize=8)
        if values.size <= 49:
            limit = float(np.abs(values).max(initial=0.0)) or 1.0
            size = 9 if max(rows, cols) <= 3 else 7
            for (i, j), value in np.ndenumerate(values):
                colour = "white" if abs(value) > 0.6 * (panel.limit or limit) else "black"
                ax.text(j, i, _number(value), ha="center", va="center", fontsize=size, color=colour)
    else:
        ax.set_xticks([])
        ax.set_yticks([])


def _number(value: float) -> str:
    text = f"{value:.2f}"
    return "0.00" if text == "-0.00" else text


def _loss_curve(ax, losses: Mapping[str, Sequence[float]]) -> None:
    for label, values in losses.items():
        values = np.asarray(values, dtype=np.float64)
        epochs = np.arange(1, len(values) + 1)
        shown = np.where(values > 0, values, np.nan)  # a log axis cannot show an exact 0
        ax.plot(epochs, shown, marker="o" if len(values) <= 20 else None, markersize=3, label=label)
    ax.set_yscale("log")
    ax.set_xlabel("epoch", fontsize=9)
    ax.set_ylabel("loss (sum of squares)", fontsize=9)
    ax.set_title("loss", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.tick_params(labelsize=8)
    if len(losses) > 1 or any(losses):
        ax.legend(fontsize=8)
