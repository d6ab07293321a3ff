"""Small helpers shared by every layer that writes or lists files (no torch model code here)."""

from unip_hub.utils.atomic import atomic_dir, atomic_path, save_torch_atomic, write_bytes_atomic, write_text_atomic
from unip_hub.utils.files import list_files

__all__ = ["atomic_dir", "atomic_path", "list_files", "save_torch_atomic", "write_bytes_atomic", "write_text_atomic"]
