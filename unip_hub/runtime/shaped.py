""":class:`ShapedRuntime`: ONNX Runtime fp32 with a static-shape graph per input shape that repeats.

A graph exported at one fixed input shape lets ONNX Runtime fold every shape computation (the position-table
resize, the pooling matrices, reshapes) into constants and plan its memory once. Inputs whose shape repeats (slide
windows, all 512 x 512; video frames; benchmark rounds) run such a graph; a shape met for the first time runs the
dynamic-shape graph, so one-off sizes never wait for an export.

- ``build_after`` (default 2): a shape gets its static session at its second call, or at its first when its graph
  is already in the cache folder (built before, by this or another process);
- at most ``capacity`` (default 4) static sessions are kept, least recently used first out (their graphs stay
  cached on disk, so a shape that comes back reloads without exporting);
- a shape whose static build fails runs the dynamic graph from then on (the reason is kept in ``failures``).
"""

from __future__ import annotations

import warnings
from collections import Counter, OrderedDict
from collections.abc import Callable
from typing import Any

import torch

from unip_hub.runtime.sessions import OrtRuntime

Shape = tuple[int, int, int]  # (batch, H, W) of the input
StaticBuilder = Callable[[Shape, bool], OrtRuntime | None]  # (shape, only if cached) -> session or None

__all__ = ["ShapedRuntime"]


class ShapedRuntime:
    """Runs (B, C_in, H, W) inputs on a static-shape fp32 session of their shape when it repeats, else on ``dynamic``.

    Args:
        dynamic: The dynamic-shape session (any shape).
        build: ``build(shape, only_cached)`` -> the static session of ``shape`` (exported and cached when missing);
            with ``only_cached``, ``None`` unless the graph is already cached.
        capacity: Most static sessions kept at once (LRU).
        build_after: Calls of a shape before its static session is built (1: at once).
    """

    def __init__(self, dynamic: OrtRuntime, build: StaticBuilder, capacity: int = 4, build_after: int = 2) -> None:
        if capacity < 1 or build_after < 1:
            raise ValueError(f"capacity and build_after must be >= 1, got {capacity}, {build_after}")
        self.dynamic = dynamic
        self.info = dynamic.info
        self.device = dynamic.device
        self.capacity = capacity
        self.build_after = build_after
        self._build = build
        self.sessions: OrderedDict[Shape, OrtRuntime] = OrderedDict()
        self.calls: Counter[Shape] = Counter()
        self.failures: dict[Shape, str] = {}

    def _add(self, shape: Shape, session: OrtRuntime) -> OrtRuntime:
        self.sessions[shape] = session
        while len(self.sessions) > self.capacity:
            self.sessions.popitem(last=False)  # least recently used
        return session

    def session_for(self, shape: Shape) -> OrtRuntime:
        """The session an input of ``shape`` (batch, H, W) runs on now (building the static one when it is due)."""
        if shape in self.sessions:
            self.sessions.move_to_end(shape)
            return self.sessions[shape]
        if shape in self.failures:
            return self.dynamic
        self.calls[shape] += 1
        try:
            if self.calls[shape] >= self.build_after:
                return self._add(shape, self._build(shape, False))
            cached = self._build(shape, True)
        except Exception as error:  # any failed export / session: the dynamic graph still works
            self.failures[shape] = f"{type(error).__name__}: {error}"
            warnings.warn(f"static-shape graph for {shape} failed ({self.failures[shape]}); running the "
                          "dynamic-shape graph for it", RuntimeWarning, stacklevel=3)
            return self.dynamic
        return self._add(shape, cached) if cached is not None else self.dynamic

    def prepare(self, shape: Shape) -> OrtRuntime:
        """Builds (or loads) the static session of ``shape`` (batch, H, W) now, for inputs known to come."""
        shape = tuple(int(v) for v in shape)  # type: ignore[assignment]
        self.calls[shape] = max(self.calls[shape], self.build_after - 1)
        return self.session_for(shape)

    def run(self, x: Any) -> Any:
        """float32 (B, C_in, H, W) array -> output array."""
        b, _, h, w = x.shape
        return self.session_for((int(b), int(h), int(w))).run(x)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        return self.session_for((int(b), int(h), int(w)))(x)
