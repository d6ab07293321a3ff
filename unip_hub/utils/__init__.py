"""Small helpers shared by every layer that writes or lists files (no torch model code here); imported lazily."""

from __future__ import annotations

from typing import TYPE_CHECKING

from unip_hub.utils.lazy import lazy_attributes

_EXPORTS: dict[str, tuple[str, ...]] = {
    "unip_hub.utils.atomic": (
        "atomic_dir", "atomic_path", "save_torch_atomic", "write_bytes_atomic", "write_text_atomic",
    ),
    "unip_hub.utils.files": ("list_files",),
    "unip_hub.utils.lazy": ("lazy_attributes",),
}

__all__ = ["atomic_dir", "atomic_path", "lazy_attributes", "list_files", "save_torch_atomic", "write_bytes_atomic",
           "write_text_atomic"]

if TYPE_CHECKING:
    from unip_hub.utils.atomic import atomic_dir, atomic_path, save_torch_atomic, write_bytes_atomic, write_text_atomic
    from unip_hub.utils.files import list_files

__getattr__, __dir__ = lazy_attributes(__name__, _EXPORTS)
