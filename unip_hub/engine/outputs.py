"""The output core every task shares: which files to read, under which names, and all-or-none writing per input.

A task's command (``unip segment``, ``unip detect``) lists its inputs with :func:`list_inputs`, then hands
:func:`run_files` its predictor and one function that turns a prepared input into a plan of files (kind -> (path,
writer)); :func:`run_files` reads every input once through the predictor's raw door, writes each plan with
:func:`write_all_or_none` and returns one record per input: the written paths, or the one-line ``error`` that kept
an unreadable input from getting any file.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from unip_hub.constants import INPUT_EXTENSIONS
from unip_hub.utils.files import list_files

__all__ = ["Plan", "PlanFn", "Writer", "list_inputs", "run_files", "write_all_or_none"]

Writer = Callable[[Path], Any]
Plan = dict[str, tuple[Path, Writer]]
PlanFn = Callable[[Any, str], tuple[Plan, dict[str, Any]]]
"""``plan_for(prepared, name) -> (plan, extra record fields)``: a task's model call and outputs for one input."""


def list_inputs(paths: Iterable[str | os.PathLike]) -> tuple[list[Path], list[str]]:
    """Image files under ``paths`` (files, or folders searched recursively) and their unique output names."""
    found: list[tuple[Path, Path]] = []  # (file, path relative to what the user named)
    for p in map(Path, paths):
        if p.is_dir():
            found += [(f, f.relative_to(p)) for f in list_files(p, INPUT_EXTENSIONS)]
        elif p.is_file():
            found.append((p, Path(p.name)))
        else:
            raise FileNotFoundError(f"input {p} does not exist")
    if not found:
        raise ValueError(f"no images ({', '.join(INPUT_EXTENSIONS)}) found in {[str(p) for p in paths]}")
    stems = [rel.with_suffix("").as_posix() for _, rel in found]
    clash = {s for s in stems if stems.count(s) > 1}
    names = [rel.as_posix() if s in clash else s for s, (_, rel) in zip(stems, found)]  # a.png + a.npy -> keep suffix
    if len(set(names)) != len(names):
        raise ValueError("two inputs would write the same output file; pass them in separate runs")
    return [f for f, _ in found], names


def write_all_or_none(plan: Plan) -> dict[str, str]:
    """Runs every ``writer(path)`` of ``plan`` (kind -> (path, writer)); if one fails, the files already written
    are removed again, so an input gets all its outputs or none."""
    done: dict[str, Path] = {}
    try:
        for kind, (path, writer) in plan.items():
            writer(path)
            done[kind] = path
    except BaseException:
        for path in done.values():
            path.unlink(missing_ok=True)
        raise
    return {kind: str(path) for kind, path in done.items()}


def run_files(predictor: Any, inputs: Sequence[str | os.PathLike], plan_for: PlanFn, *, progress: bool = True,
              desc: str = "predict", names: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Reads every image under ``inputs`` once (``predictor.set_image``) and writes ``plan_for``'s files for it.

    Args:
        predictor: A :class:`~unip_hub.engine.predictor.BasePredictor`.
        inputs: Files and folders (searched recursively); with ``names``, the files themselves.
        plan_for: ``(prepared, name) -> (plan, extra)``: runs the model and says what to write (see :data:`PlanFn`).
        progress: Show a progress bar.
        desc: The progress bar's label.
        names: Output names of ``inputs`` when the caller listed them already (:func:`list_inputs`).

    Returns:
        One record per input: ``input``, ``size`` (H, W), the written path of each kind and ``extra``; or
        ``input`` and ``error`` (a one-line message naming the file) when it could not be read, and then nothing
        is written for it.
    """
    from tqdm.auto import tqdm

    files, names = (list(map(Path, inputs)), list(names)) if names is not None else list_inputs(inputs)
    records = []
    for path, name in tqdm(list(zip(files, names)), desc=desc, unit="img", disable=not progress):
        try:
            prepared = predictor.set_image(path)
        except (ValueError, OSError) as error:
            records.append({"input": str(path), "error": str(error)})
            continue
        plan, extra = plan_for(prepared, name)
        records.append({"input": str(path), "size": list(prepared.size), **write_all_or_none(plan), **extra})
    return records
