"""Where an ONNX Runtime graph spends its time: kernel time per operator type, from ONNX Runtime's own profiler.

>>> from unip_hub.runtime.op_profile import op_profile
>>> ops = op_profile("model.onnx", x, runs=5)        # x: float32 (B, C_in, H, W)
>>> ops[0]                                            # the costliest operator type first
OpTime(op='Gemm', ms_per_run=132.9, share=0.604, nodes=48)

``unip benchmark --ort-profile`` runs this for every ONNX Runtime variant of a case (after its timed rounds, on a
separate session: profiling slows a session down, so the timed figures never come from a profiled one).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["OpTime", "format_ops", "op_profile"]


@dataclass(frozen=True)
class OpTime:
    """One operator type of a graph: kernel time per run (ms), its share of all kernel time, nodes per run."""

    op: str
    ms_per_run: float
    share: float
    nodes: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _kernel_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The per-node kernel events of every run after the first (the first run is ONNX Runtime's warm-up)."""
    runs = sorted((e["ts"], e["ts"] + e["dur"]) for e in events if e.get("name") == "model_run")
    if len(runs) < 2:
        raise ValueError(f"the profile holds {len(runs)} model run(s); at least 2 are needed (1 warm-up)")
    start = runs[0][1]
    return [e for e in events if e.get("cat") == "Node" and str(e.get("name", "")).endswith("_kernel_time")
            and e["ts"] >= start]


def op_profile(graph: str | os.PathLike, x: Any, runs: int = 5, threads: int | None = None) -> list[OpTime]:
    """Kernel time per operator type of ``graph`` on input ``x``, averaged over ``runs`` runs after one warm-up.

    Args:
        graph: An ONNX file (as built by :func:`unip_hub.runtime.load_runtime` or ``unip export``).
        x: Its input, a float32 array or tensor (B, C_in, H, W).
        runs: Profiled runs (after one untimed warm-up run).
        threads: Intra-op threads (default: torch's, as the runtime sessions use).

    Returns:
        One :class:`OpTime` per operator type, costliest first; shares sum to 1.

    Raises:
        FileNotFoundError: ``graph`` does not exist.
        ValueError: ``runs`` < 1, or the profile has no kernel events.
    """
    import onnxruntime as ort

    from unip_hub.runtime.sessions import session_options

    graph = Path(graph)
    if not graph.is_file():
        raise FileNotFoundError(f"ONNX graph {graph} not found")
    if runs < 1:
        raise ValueError(f"runs must be >= 1, got {runs}")
    array = np.ascontiguousarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x, dtype=np.float32)
    with tempfile.TemporaryDirectory(prefix="unip-ort-profile-") as tmp:
        so = session_options(threads)
        so.enable_profiling = True
        so.profile_file_prefix = str(Path(tmp) / "profile")
        session = ort.InferenceSession(str(graph), so, providers=["CPUExecutionProvider"])
        feed = {session.get_inputs()[0].name: array}
        for _ in range(runs + 1):
            session.run(None, feed)
        with open(session.end_profiling()) as f:
            events = json.load(f)
    kernels = _kernel_events(events)
    time_us: Counter[str] = Counter()
    nodes: Counter[str] = Counter()
    for e in kernels:
        op = e.get("args", {}).get("op_name", "?")
        time_us[op] += e["dur"]
        nodes[op] += 1
    total = sum(time_us.values())
    if total <= 0:
        raise ValueError(f"the ONNX Runtime profile of {graph} has no kernel events")
    return [OpTime(op, us / runs / 1e3, us / total, nodes[op] // runs) for op, us in time_us.most_common()]


def format_ops(ops: list[OpTime], top: int = 6) -> str:
    """``Gemm 60% (133 ms), MultiHeadAttention 30% (67 ms), ...``: the ``top`` costliest operator types."""
    shown = ", ".join(f"{o.op} {100 * o.share:.0f}% ({o.ms_per_run:.3g} ms)" for o in ops[:top])
    rest = sum(o.share for o in ops[top:])
    return shown + (f", other {100 * rest:.0f}%" if rest > 0.005 else "")
