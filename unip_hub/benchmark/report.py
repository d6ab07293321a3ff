"""Plain-text and Markdown tables of a benchmark report (the dict :func:`run_benchmark` returns / writes as JSON)."""

from __future__ import annotations

from typing import Any

_COLUMNS = ("case", "variant", "params M", "GFLOPs", "GFLOP/s", "% peak", "img/s", "latency ms", "peak MB",
            "ours speed-up", "ours mem", "vs timm")


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _percent(fraction: float | None) -> float | None:
    return None if fraction is None else 100 * fraction


def table_rows(report: dict[str, Any]) -> list[list[str]]:
    """One row per (case, variant); ``ours speed-up`` / ``ours mem`` compare ours with that variant, ``vs timm`` is
    that variant's speed relative to timm fp32 eager (> 1: faster than timm)."""
    rows = []
    for r in report["results"]:
        for name, v in r["variants"].items():
            rows.append([r["name"], name, _fmt(r["params_m"], ".1f"), _fmt(v["gflops"], ".2f"),
                         _fmt(v["achieved_gflops_per_s"], ".1f"), _fmt(_percent(v["fraction_of_peak"]), ".0f"),
                         _fmt(v["throughput_img_per_s"], ".2f"), _fmt(v["latency_ms"], ".1f"),
                         _fmt(v["peak_memory_mb"], ".0f"), _fmt(v.get("ours_speedup"), ".2f"),
                         _fmt(v.get("ours_memory_ratio"), ".2f"), _fmt(v.get("speedup_vs_timm"), ".2f")])
    return rows


def _checks(report: dict[str, Any]) -> list[str]:
    lines = []
    for r in report["results"]:
        if r["checks"]:
            lines.append(f"  {r['name']}: " + ", ".join(f"{k}={v:.3g}" for k, v in r["checks"].items()))
    return lines


def _op_lines(report: dict[str, Any]) -> list[str]:
    from unip_hub.runtime.op_profile import OpTime, format_ops

    lines = []
    for r in report["results"]:
        for name, v in r["variants"].items():
            if v.get("ort_ops"):
                lines.append(f"  {r['name']} {name}: " + format_ops([OpTime(**o) for o in v["ort_ops"]]))
    return ["ONNX Runtime kernel time per operator type (--ort-profile):", *lines] if lines else []


def format_table(report: dict[str, Any]) -> str:
    """The report as an aligned text table, the machine line, and the output checks."""
    rows = [list(_COLUMNS), *table_rows(report)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    lines = ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    m = report["machine"]
    peak = report.get("matmul_peak_gflops_per_s")
    head = (f"{m.get('gpu') or m.get('cpu_model')} | {m['device']} {m['dtype']} | torch {m['torch']} | "
            f"{m['torch_threads']} threads | matmul peak {_fmt(peak, '.1f')} GFLOP/s | load "
            f"{m.get('load_average_start', ['?'])[0]} -> {m.get('load_average_end', ['?'])[0]}")
    out = [head, *lines, "checks (ours vs baselines):", *_checks(report), *_op_lines(report)]
    if report.get("accuracy"):
        from unip_hub.benchmark.accuracy import format_accuracy

        out.append(format_accuracy(report["accuracy"]))
    return "\n".join(out)


def format_markdown(report: dict[str, Any]) -> str:
    """The same table in Markdown (for docs/performance.md)."""
    rows = table_rows(report)
    out = ["| " + " | ".join(_COLUMNS) + " |", "|" + "---|" * len(_COLUMNS)]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(out)
