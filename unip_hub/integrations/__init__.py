"""Thin adapters of the one UNIP model to the tools people already use, registered in any import order.

- :mod:`unip_hub.integrations.timm`: ``timm.create_model("unip_vit_small_patch16_224.mae_large", ...)``.
- :mod:`unip_hub.integrations.transformers`: ``UnipConfig`` / ``UnipModel`` / ``UnipBackbone`` for the Auto classes
  and ``UperNetForSemanticSegmentation``.
- :mod:`unip_hub.integrations.smp`: ``smp.UPerNet(encoder_name="unip_vit_small", encoder_weights=None, ...)``.
- :mod:`unip_hub.integrations.torchvision` (also ``unip_hub.detection``): torchvision detection backbones.

``import unip_hub`` imports none of these libraries. It installs a post-import hook (``wrapt``) per library: the
moment timm, transformers or segmentation-models-pytorch is imported -- before or after ``unip_hub``, by the user
or by another library -- the matching adapter module is imported and registers UNIP's names. Importing an adapter
module by hand does the same at once. A registration that fails (an unsupported library version) never breaks
the user's import of that library: it is reported as a warning naming the adapter to import to see the error.
"""

from __future__ import annotations

import importlib
import importlib.util
import warnings

__all__ = ["ADAPTERS", "install_hooks"]

ADAPTERS: dict[str, str] = {
    "timm": "unip_hub.integrations.timm",
    "transformers": "unip_hub.integrations.transformers",
    "segmentation_models_pytorch": "unip_hub.integrations.smp",
}
"""Library (top-level module) -> the adapter module that registers UNIP with it when imported."""

_installed = False


def _register(library: str) -> None:
    adapter = ADAPTERS[library]
    try:
        importlib.import_module(adapter)
    except Exception as err:  # never break the user's `import <library>`
        warnings.warn(f"unip could not register its models with {library} ({type(err).__name__}: {err}); "
                      f"`import {adapter}` shows the full error", RuntimeWarning, stacklevel=2)


def install_hooks() -> None:
    """Registers UNIP with each library of :data:`ADAPTERS` when it is imported (at once for those already imported).

    Idempotent; called by ``import unip_hub``. Costs no import of any of the libraries.
    """
    global _installed
    if _installed:
        return
    import wrapt

    for library in ADAPTERS:
        wrapt.register_post_import_hook(lambda _module, library=library: _register(library), library)
    _installed = True
