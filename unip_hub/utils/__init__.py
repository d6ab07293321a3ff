"""Small helpers shared by every layer that writes or lists files (no torch model code here); imported lazily."""

from __future__ import annotations

from unip_hub.utils.lazy import exported_names, lazy_attributes

_EXPORTS: dict[str, tuple[str, ...]] = {
    "unip_hub.utils.atomic": ("atomic_dir", "atomic_path", "save_torch_atomic", "write_text_atomic"),
    "unip_hub.utils.files": ("list_files",),
    "unip_hub.utils.lazy": ("lazy_attributes",),
}

__all__ = exported_names(_EXPORTS)

__getattr__, __dir__ = lazy_attributes(__name__, _EXPORTS)
