"""The one place where private names of dependencies are used, each with the versions it is tested against.

timm keeps ``feature_take_indices`` (index normalisation of ``forward_intermediates``) and ``FeatureGetterNet``
(the ``features_only`` wrapper for models with ``forward_intermediates``) in ``timm.models._features``;
segmentation-models-pytorch keeps ``EncoderMixin`` in ``encoders._base``. No public alias exists in the versions
we support, so they are imported here, checked against the tested range, and re-exported. ``tests/test_compat.py``
pins the behaviour we rely on. Nothing here is imported at ``import unip_hub`` time except through its users.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

__all__ = [
    "SMP_TESTED",
    "TIMM_TESTED",
    "check_version",
    "feature_take_indices",
    "smp_encoder_mixin",
    "timm_feature_getter_net",
]

TIMM_TESTED = ("1.0.15", "1.1")
"""timm versions whose private names below are tested: lowest included, highest excluded (pyproject agrees)."""
SMP_TESTED = ("0.5", "0.7")
"""segmentation-models-pytorch versions whose ``EncoderMixin`` is tested: lowest included, highest excluded."""


def _parse(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split("+")[0].split("."):
        digits = "".join(c for c in piece if c.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def check_version(module: str, tested: tuple[str, str]) -> str:
    """Returns ``module.__version__``; raises ImportError naming the tested range when it lies outside it."""
    version = importlib.import_module(module).__version__
    low, high = _parse(tested[0]), _parse(tested[1])
    if not low <= _parse(version) < high:
        raise ImportError(f"unip uses private names of {module} tested with versions >={tested[0]},<{tested[1]}; "
                          f"{version} is installed. Install a tested version (pip install '{module}>={tested[0]},"
                          f"<{tested[1]}') or report the version at the unip issue tracker.")
    return version


def feature_take_indices(num_features: int, indices: Any = None, as_set: bool = False) -> tuple[list[int], int]:
    """timm's normalisation of ``indices`` (int = last n, or a sequence, negatives allowed) for ``num_features``.

    Returns:
        The absolute indices and the largest one.
    """
    return _timm_features().feature_take_indices(num_features, indices, as_set=as_set)


def timm_feature_getter_net() -> type:
    """timm's ``FeatureGetterNet``: ``features_only`` through a model's ``forward_intermediates``."""
    return _timm_features().FeatureGetterNet


def smp_encoder_mixin() -> type:
    """segmentation-models-pytorch's ``EncoderMixin`` (the encoder protocol its decoders expect)."""
    check_version("segmentation_models_pytorch", SMP_TESTED)
    return importlib.import_module("segmentation_models_pytorch.encoders._base").EncoderMixin


def _timm_features() -> Any:
    # torch.compile / torch.export trace this on every forward_intermediates call: once checked (or while
    # compiling: the check belongs to eager use), the module comes from sys.modules without import machinery
    if not _timm_checked and not _compiling():
        _check_timm()
    features = sys.modules.get("timm.models._features")
    return features if features is not None else importlib.import_module("timm.models._features")


_timm_checked = False


def _check_timm() -> None:
    global _timm_checked
    check_version("timm", TIMM_TESTED)
    _timm_checked = True


def _compiling() -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and torch.compiler.is_compiling()
