"""Thin adapters of the one UNIP model to the tools people already use.

- :mod:`unip_hub.integrations.timm`: ``timm.create_model("unip_vit_small_patch16_224.mae_large", ...)``; registered
  when :mod:`unip_hub` is imported (timm is a core dependency).
- :mod:`unip_hub.integrations.transformers`: ``UnipConfig`` / ``UnipModel`` / ``UnipBackbone`` for the Auto classes
  and ``UperNetForSemanticSegmentation``.
- :mod:`unip_hub.integrations.smp`: ``smp.UPerNet(encoder_name="unip_vit_small", encoder_weights=None, ...)``.
- :mod:`unip_hub.integrations.detection` (also :mod:`unip_hub.detection`): torchvision detection backbones.

transformers and segmentation-models-pytorch are heavy optional dependencies: importing :mod:`unip_hub` registers
UNIP with them only if they are *already* imported; otherwise import the adapter module explicitly
(``import unip_hub.integrations.transformers``), which imports the library and registers.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

# optional library (top-level module) -> adapter module registering UNIP with it
_LAZY = {
    "transformers": "unip_hub.integrations.transformers",
    "segmentation_models_pytorch": "unip_hub.integrations.smp",
}


def register_all(force: bool = False) -> list[str]:
    """Registers UNIP with timm, and with transformers / SMP if they are imported (or installed, with ``force``).

    Returns:
        The adapter modules imported.
    """
    done = [importlib.import_module("unip_hub.integrations.timm").__name__]
    for library, adapter in _LAZY.items():
        if library in sys.modules or (force and importlib.util.find_spec(library) is not None):
            done.append(importlib.import_module(adapter).__name__)
    return done
