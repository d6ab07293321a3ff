"""Running ``unip segment`` beyond one process: Ray Data actor pools over archives of thermal frames
(:mod:`unip_hub.scale.ray`, ``pip install 'unip[ray]'``) and the same-run benchmark against the plain loop
(:mod:`unip_hub.scale.bench`). Nothing here imports Ray until a function runs."""

from __future__ import annotations

from unip_hub.utils.lazy import lazy_attributes

_LAZY: dict[str, tuple[str, ...]] = {
    "unip_hub.scale.ray": ("RayJob", "add_engine_arguments", "outputs_done", "segment_with_ray", "segment_command"),
    "unip_hub.scale.bench": ("compare_ray",),
}

__all__ = sorted(name for names in _LAZY.values() for name in names)

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
