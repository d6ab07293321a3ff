"""What ``torch.hub.list`` shows for a local checkout (torch lists only GitHub repositories): the public callables
of its ``hubconf.py``."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def hub_entry_points(repo: Path) -> list[str]:
    """Public callables of ``repo/hubconf.py``, as torch.hub lists a repository's entry points."""
    spec = importlib.util.spec_from_file_location("hubconf_under_test", repo / "hubconf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return [name for name in dir(module) if callable(getattr(module, name)) and not name.startswith("_")]
