"""Running ``unip segment`` beyond one process: Ray Data actor pools over archives of thermal frames
(:mod:`unip_hub.scale.ray`, ``pip install 'unip[ray]'``); measured against the plain loop by
:mod:`unip_hub.benchmark.ray`. Nothing here imports Ray until a function runs."""

from __future__ import annotations

from unip_hub.utils.lazy import exported_names, lazy_attributes

_LAZY: dict[str, tuple[str, ...]] = {
    "unip_hub.scale.ray": ("RayJob", "add_engine_arguments", "outputs_done", "segment_with_ray", "segment_command"),
}

__all__ = exported_names(_LAZY)

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
