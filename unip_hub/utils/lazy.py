"""Lazy package attributes (PEP 562): a package names what it exports; each is imported on first access.

One implementation for every package that keeps its import cheap (``unip_hub``, ``unip_hub.hub``,
``unip_hub.runtime``, ``unip_hub.benchmark``).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["exported_names", "lazy_attributes"]


def exported_names(exports: Mapping[str, Iterable[str]], *extra: str) -> list[str]:
    """A lazy package's ``__all__``: every name of ``exports`` (and ``extra``), sorted; the one list of them."""
    return sorted({*extra, *(name for names in exports.values() for name in names)})


def lazy_attributes(
    module_name: str, exports: Mapping[str, Iterable[str]], aliases: Mapping[str, str] | None = None
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of a package whose names are imported when first used.

    Args:
        module_name: The package's ``__name__`` (it must be executing or imported).
        exports: Absolute name of a defining module -> the public names it gives the package.
        aliases: Public name -> absolute name of a module exposed as an attribute (e.g. ``unip_hub.detection``).

    Example:
        >>> lazy = {"unip_hub.runtime.dispatch": ("load_runtime", "RUNTIMES")}
        >>> __getattr__, __dir__ = lazy_attributes(__name__, lazy)
    """
    aliases = dict(aliases or {})
    where = {name: module for module, names in exports.items() for name in names}
    namespace = sys.modules[module_name].__dict__

    def __getattr__(name: str) -> Any:
        if name in where:
            value = getattr(importlib.import_module(where[name]), name)
        elif name in aliases:
            value = importlib.import_module(aliases[name])
        else:
            raise AttributeError(f"module {module_name!r} has no attribute {name!r}")
        namespace[name] = value  # later lookups are plain attribute reads
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *where, *aliases})

    return __getattr__, __dir__
