"""``unip app``: a Gradio web app for people who do not program (``pip install 'unip[app]'``).

:mod:`unip_hub.app.actions` holds what the app does as plain functions, :mod:`unip_hub.app.model_choice` the model
choice and :mod:`unip_hub.app.page` the page. ``app.py`` at the repository root serves it as a Hugging Face Space.
Nothing here imports Gradio or torch until a function runs.
"""

from __future__ import annotations

from unip_hub.utils.lazy import lazy_attributes

_LAZY: dict[str, tuple[str, ...]] = {
    "unip_hub.app.actions": ("Analysis", "AppOptions", "analyse", "file_values"),
    "unip_hub.app.page": ("build_app", "launch"),
    "unip_hub.app.model_choice": ("demo_checkpoint", "load_choice", "model_choices"),
}

__all__ = sorted(name for names in _LAZY.values() for name in names)

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
