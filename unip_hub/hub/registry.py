"""The registry of released UNIP weights: metadata kept apart from the architecture (timm ``PretrainedCfg`` style).

The data lives in ``weights/registry.json`` at the top of the source tree, shipped in the wheel as
``unip_hub/hub/registry.json``. Names follow timm: ``arch.tag``, e.g. ``unip_vit_small.mae_large``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from enum import Enum
from functools import cache
from pathlib import Path

from unip_hub.constants import VIT_SIZES


class Weights(Enum):
    """Released pre-training runs, named by teacher (dinov2's ``Weights`` enum)."""

    MAE_LARGE = "mae_large"
    IBOT_LARGE = "ibot_large"


@dataclass(frozen=True)
class WeightsEntry:
    """One released checkpoint: where it is, how it was made and how to feed it."""

    arch: str
    tag: str
    hf_repo: str
    filename: str
    revision: str
    sha256: str | None
    teacher: str
    teacher_layer: int
    teacher_depth: int
    last_heads: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    input_size: int
    license: str
    paper_miou_finetune: float
    paper_miou_linear_probe: float
    approx_size_mb: int | None = None

    @property
    def name(self) -> str:
        """``arch.tag``, e.g. ``unip_vit_small.mae_large``."""
        return f"{self.arch}.{self.tag}"

    @property
    def hub_id(self) -> str:
        """``repo`` or ``repo@revision`` (timm's pinning form) of the Hugging Face repository holding the file."""
        return self.hf_repo + ("" if self.revision == "main" else f"@{self.revision}")

    @property
    def url(self) -> str:
        return f"https://huggingface.co/{self.hf_repo}/resolve/{self.revision}/{self.filename}"

    def to_dict(self) -> dict:
        return {"name": self.name, **asdict(self)}


def _registry_file() -> Path:
    here = Path(__file__).resolve().parent
    for candidate in (here / "registry.json", here.parents[1] / "weights" / "registry.json"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError("the UNIP weights registry (registry.json) is missing from this installation; "
                            "reinstall the `unip` package")


@cache
def _entries() -> tuple[WeightsEntry, ...]:
    doc = json.loads(_registry_file().read_text())
    out = []
    for raw in doc["weights"]:
        raw = {**raw, "mean": tuple(raw["mean"]), "std": tuple(raw["std"])}
        out.append(WeightsEntry(**raw))
    return tuple(out)


def list_entries(arch: str | None = None) -> list[WeightsEntry]:
    """The released checkpoints (:class:`WeightsEntry`), in registry order, optionally of one architecture."""
    return [e for e in _entries() if arch is None or e.arch == arch]


def list_models() -> list[str]:
    """Names of the backbone architectures (with or without released weights)."""
    return list(VIT_SIZES)


def default_weights(arch: str) -> Weights | None:
    """What the pretrained entry points of ``arch`` load by default: the MAE-L-distilled weights when released,
    else the first released run, else ``None`` (no weights were released for ``arch``)."""
    tags = {e.tag for e in list_entries(arch)}
    return next((w for w in Weights if w.value in tags), None)  # Weights lists MAE_LARGE first


def list_weights(arch: str | None = None) -> list[str]:
    """Names ``arch.tag`` of the released weights, optionally for one architecture."""
    return [e.name for e in list_entries(arch)]


def get_weights_entry(arch: str, tag: str | Weights) -> WeightsEntry:
    """Looks up a released checkpoint; ``tag`` is ``"mae_large"``, a :class:`Weights` member or ``"arch.tag"``."""
    tag = tag.value if isinstance(tag, Weights) else str(tag)
    if "." in tag:
        named_arch, tag = tag.split(".", 1)
        if named_arch != arch:
            raise ValueError(f"weights {named_arch}.{tag} belong to {named_arch}, not {arch}")
    for e in list_entries(arch):
        if e.tag == tag:
            return e
    have = list_weights(arch)
    if not have:
        raise ValueError(f"no released weights for {arch} (UNIP-L was not released); available: {list_weights()}")
    raise ValueError(f"unknown weights {tag!r} for {arch}; available: {have}")


def find_entry_by_filename(filename: str) -> WeightsEntry | None:
    """The registry entry whose file name is ``filename`` (used to recognise a downloaded official file)."""
    return next((e for e in list_entries() if e.filename == Path(filename).name), None)


def describe_name(name: str) -> dict:
    """``unip info NAME``: an architecture's shape and released weights, or a released checkpoint's entry + URL."""
    if name in VIT_SIZES:
        spec = VIT_SIZES[name]
        return {"arch": name, "embed_dim": spec.embed_dim, "depth": spec.depth, "num_heads": spec.num_heads,
                "weights": list_weights(name)}
    arch, _, tag = name.partition(".")
    if not tag:
        raise ValueError(f"unknown name {name!r}: give an architecture ({list_models()}), arch.tag or a file")
    entry = get_weights_entry(arch, tag)
    return entry.to_dict() | {"url": entry.url}
