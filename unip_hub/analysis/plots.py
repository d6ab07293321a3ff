"""Figures of attention patterns: the per-layer NMI / distance profile with its bands, and query attention maps.

matplotlib is imported when a function runs and used through its object API with the Agg canvas (no pyplot, no
global backend change). Files are written atomically (:func:`unip_hub.utils.atomic.atomic_path`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from unip_hub.analysis.layer_patterns import DEFAULT_TARGET_NMI, GLOBAL_MAX_NMI, LOCAL_MIN_NMI, AttentionProfile
from unip_hub.utils.atomic import atomic_path

_BANDS = (("global", 0.0, GLOBAL_MAX_NMI, "#d9e7f5"), ("hybrid", GLOBAL_MAX_NMI, LOCAL_MIN_NMI, "#fbe3c8"),
          ("local", LOCAL_MIN_NMI, 1.0, "#dcefd9"))


def _new_figure(width: float, height: float):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:
        raise RuntimeError("plots need matplotlib: pip install 'unip[plot]'") from e

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: str | os.PathLike) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, bbox_inches="tight")
    return Path(path)


def plot_profile(profile: AttentionProfile, path: str | os.PathLike, target: float = DEFAULT_TARGET_NMI,
                 selected: int | None = None) -> Path:
    """NMI per layer over the local / hybrid / global bands (top) and mean attention distance (bottom).

    Args:
        profile: From :func:`~unip_hub.analysis.layer_patterns.attention_profile`.
        path: PNG (or any matplotlib format) to write.
        target: Target NMI drawn as a dashed line.
        selected: 1-based layer to mark (e.g. :func:`select_distill_layer`'s choice).
    """
    layers = [r.layer for r in profile.layers]
    fig = _new_figure(max(6.0, 0.3 * len(layers) + 3), 6.0)
    ax, ax2 = fig.subplots(2, 1, sharex=True)
    top = max(0.3, max(profile.nmi) * 1.15)
    for name, lo, hi, colour in _BANDS:
        if lo < top:
            ax.axhspan(lo, min(hi, top), color=colour, zorder=0)
            ax.text(layers[-1] + 0.6, (lo + min(hi, top)) / 2, name, va="center", fontsize=8)
    ax.plot(layers, profile.nmi, "o-", color="#1f4e79", label="NMI")
    ax.axhline(target, ls="--", color="#a33", lw=1, label=f"target {target:g}")
    if selected is not None:
        ax.plot([selected], [profile.nmi[layers.index(selected)]], "*", ms=14, color="#a33",
                label=f"selected layer {selected}")
    ax.set_ylim(0, top)
    ax.set_ylabel("NMI")
    ax.set_title(f"{profile.model}: attention patterns ({profile.num_images} images)")
    ax.legend(loc="upper right", fontsize=8)
    ax2.plot(layers, profile.distance, "s-", color="#555")
    ax2.set_ylabel("mean attention distance (patches)")
    ax2.set_xlabel("layer")
    ax2.set_xticks(layers)
    return _save(fig, path)


def plot_query_attention(image: np.ndarray, maps: dict[int, torch.Tensor], queries: Sequence[tuple[float, float]],
                         path: str | os.PathLike, title: str = "") -> Path:
    """One image with the attention of each query point (columns) at each layer (rows).

    Args:
        image: (H, W) gray (or (H, W, 3)) array as displayed.
        maps: {layer: (len(queries), h, w)} head-averaged attention of one image (from ``query_attention``).
        queries: (row, col) fractions of the query points, marked with a cross.
        path: File to write.
        title: Figure title.
    """
    rows = sorted(maps)
    fig = _new_figure(2.2 * (len(queries) + 1), 2.2 * len(rows) + 0.5)
    axes = np.atleast_2d(fig.subplots(len(rows), len(queries) + 1, squeeze=False))
    height, width = image.shape[:2]
    for r, layer in enumerate(rows):
        axes[r, 0].imshow(image, cmap="gray")
        axes[r, 0].set_ylabel(f"layer {layer}")
        for q, (qy, qx) in enumerate(queries):
            ax = axes[r, q + 1]
            ax.imshow(image, cmap="gray")
            ax.imshow(maps[layer][q].numpy(), cmap="inferno", alpha=0.6, extent=(0, width, height, 0),
                      interpolation="nearest")
            ax.plot([qx * width], [qy * height], "x", color="cyan", ms=8, mew=2)
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
    if title:
        fig.suptitle(title)
    return _save(fig, path)
