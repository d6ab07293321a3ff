"""Strict loading with a readable report of missing, unexpected and mis-shaped keys."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from unip_hub.checkpoints.read import CheckpointError


@dataclass
class LoadReport:
    """What a load did: keys left at initialisation on purpose (``allowed_missing``) are listed, never hidden."""

    loaded: int
    allowed_missing: list[str] = field(default_factory=list)


def _preview(keys: list[str], k: int = 12) -> str:
    more = f" ... and {len(keys) - k} more" if len(keys) > k else ""
    return ", ".join(keys[:k]) + more


def load_state_dict_strict(
    model: nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    source: str = "checkpoint",
    allow_missing: Iterable[str] = (),
) -> LoadReport:
    """Loads ``state_dict`` into ``model``, failing loudly on any mismatch.

    Args:
        model: The module to fill.
        state_dict: Already converted to the model's names.
        source: Where the weights come from, for messages.
        allow_missing: Regular expressions of keys that may stay at initialisation (e.g. layer scale added for
            fine-tuning); every other missing key, every unexpected key and every shape mismatch is an error.

    Raises:
        CheckpointError: naming the keys that do not fit.
    """
    own = model.state_dict()
    patterns = [re.compile(p) for p in allow_missing]
    missing = [k for k in own if k not in state_dict]
    allowed = [k for k in missing if any(p.fullmatch(k) for p in patterns)]
    missing = [k for k in missing if k not in allowed]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [f"{k}: file {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}"
              for k, v in own.items() if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys: {_preview(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys: {_preview(unexpected)}")
    if shapes:
        problems.append(f"{len(shapes)} shape mismatches: {_preview(shapes, 6)}")
    if problems:
        raise CheckpointError(f"{source} does not fit {type(model).__name__}: " + "; ".join(problems)
                              + ". Check that the architecture (size, in_chans, last_heads) matches the file.")
    model.load_state_dict(state_dict, strict=False)
    return LoadReport(loaded=len(state_dict), allowed_missing=allowed)
