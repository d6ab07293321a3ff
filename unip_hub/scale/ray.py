"""``unip segment --engine ray``: the outputs of ``unip segment`` for archives, from a pool of Ray actors.

The inputs are listed once on the driver (:func:`unip_hub.engine.outputs.list_inputs`, so every input keeps the
output name a plain run gives it) and become a Ray dataset of ``(path, name)`` rows, one block per input. A pool of
actors (``map_batches`` with :class:`_SegmentActor`) each loads the checkpoint once into a
:class:`~unip_hub.inference.Predictor` (one GPU per actor when the cluster has GPUs) and writes each input's files
as :func:`unip_hub.inference.outputs.segment_files` does (the shared per-input loop
:func:`unip_hub.engine.outputs.run_files` with :func:`~unip_hub.inference.outputs.output_plan`): the same files,
names and tables as ``unip segment``, written all-or-none per input. Inputs whose outputs all exist are skipped
(:func:`outputs_done`), so a killed run continues where it stopped.

Locally (no ``ray_address``) Ray starts with ``num_workers`` CPUs and no dashboard; with ``ray_address`` it joins a
running cluster, whose nodes must have ``unip`` installed and see the input and output folders (a shared file
system). ``pip install 'unip[ray]'``.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["RayJob", "add_engine_arguments", "outputs_done", "segment_command", "segment_with_ray"]

ENGINES = ("local", "ray")


def outputs_done(out_dir: str | os.PathLike, name: str, settings: Any,
                 radiometric: Callable[[], bool] | None = None) -> bool:
    """Whether ``unip segment`` already wrote every output of the input named ``name`` under ``out_dir``.

    Args:
        out_dir: The output folder.
        name: The input's output name (:func:`~unip_hub.engine.outputs.list_inputs`).
        settings: The run's :class:`~unip_hub.inference.outputs.SegmentSettings`.
        radiometric: Called only when the pictures exist but the temperature table does not: whether the input
            holds temperatures (then ``thermal/`` and ``stats/`` are missing); ``None`` counts the input as
            radiometric (not done), the safe answer when the frame cannot be read here.
    """
    out = Path(out_dir)
    if not all((out / kind / f"{name}.png").is_file() for kind in settings.kinds):
        return False
    if not settings.thermal:
        return True
    table = [out / "thermal" / f"{name}.png", out / "stats" / f"{name}.json", out / "stats" / f"{name}.csv"]
    if all(p.is_file() for p in table):
        return True
    return radiometric is not None and not radiometric()


def _done_record(out_dir: Path, path: str, name: str, settings: Any) -> dict[str, Any]:
    """The record of a skipped input: the paths it already has."""
    record: dict[str, Any] = {"input": path, "skipped": True}
    for kind in settings.kinds:
        record[kind] = str(out_dir / kind / f"{name}.png")
    stats = out_dir / "stats" / f"{name}.json"
    if settings.thermal and stats.is_file():
        record["thermal"] = str(out_dir / "thermal" / f"{name}.png")
        record["stats_json"], record["stats_csv"] = str(stats), str(stats.with_suffix(".csv"))
    return record


@dataclass
class RayJob:
    """What each actor needs to segment: the checkpoint and the settings of ``unip segment``.

    Attributes:
        model_path: Segmenter checkpoint (ours or mmseg), readable from every node.
        out_dir: Output folder, writable from every node.
        settings: :class:`~unip_hub.inference.outputs.SegmentSettings` (its progress bar is turned off in actors).
        load: Keywords of :func:`unip_hub.load_segmenter` (``arch``, ``num_classes``, ``head``, ``neck``).
        predictor_options: Keywords of :class:`~unip_hub.inference.Predictor` (``scaling``, ``calibration``).
        options: :class:`~unip_hub.models.slide.InferenceOptions` fields (``mode``, ``crop_size``, ...).
    """

    model_path: str
    out_dir: str
    settings: Any = None
    load: dict[str, Any] = field(default_factory=dict)
    predictor_options: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)


class _SegmentActor:
    """One pool member: the predictor, built once; ``__call__`` segments a batch of ``(path, name)`` rows."""

    def __init__(self, job: RayJob, device: str) -> None:
        import dataclasses

        import torch

        from unip_hub.hub.segmenters import load_segmenter
        from unip_hub.inference.predictor import Predictor

        self.job = job
        self.settings = dataclasses.replace(job.settings, progress=False)
        load = {k: v for k, v in job.load.items() if v is not None}
        self.model = load_segmenter(job.model_path, **load, aux=False).to(torch.device(device)).eval()
        self.predictor = Predictor(self.model, **job.predictor_options)

    def _radiometric(self, path: str) -> Callable[[], bool]:
        def holds_temperatures() -> bool:
            try:
                return self.predictor.read_frame(path).celsius is not None
            except (ValueError, OSError):
                return True  # unreadable: not done; segment_files records its error
        return holds_temperatures

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[str]]:
        """Each row through :func:`~unip_hub.inference.outputs.segment_files` (the same files, names and tables as
        ``unip segment``), unless its outputs exist."""
        from unip_hub.inference.outputs import segment_files

        out = Path(self.job.out_dir)
        records = []
        for path, name in zip(batch["path"], batch["name"]):
            path, name = str(path), str(name)
            if outputs_done(out, name, self.settings, self._radiometric(path)):
                records.append(_done_record(out, path, name, self.settings))
                continue
            records += segment_files(self.model, [path], out, self.settings, self.predictor, names=[name],
                                     **self.job.options)
        return {"record": [json.dumps(r) for r in records]}


def _start_ray(ray_address: str | None, num_workers: int) -> bool:
    """Connects to ``ray_address`` or starts a local Ray with ``num_workers`` CPUs, unless Ray is already up;
    returns whether this call started it (and so should shut it down)."""
    try:
        import ray
    except ImportError as error:
        raise RuntimeError("--engine ray needs Ray Data: pip install 'unip[ray]'") from error
    if ray.is_initialized():
        return False
    if ray_address:
        ray.init(address=ray_address, log_to_driver=False)
    else:
        ray.init(num_cpus=num_workers, include_dashboard=False, log_to_driver=False, configure_logging=False)
    return True


def segment_with_ray(model_path: str | os.PathLike, inputs: Sequence[str | os.PathLike], out_dir: str | os.PathLike,
                     settings: Any = None, num_workers: int = 2, ray_address: str | None = None, *,
                     load: dict[str, Any] | None = None, predictor_options: dict[str, Any] | None = None,
                     gpus: bool | None = None, **options: Any) -> list[dict[str, Any]]:
    """``unip segment`` on a pool of ``num_workers`` Ray actors (see the module docstring).

    Args:
        model_path: Segmenter checkpoint (``.pth`` / ``.safetensors`` / HF folder, or mmseg).
        inputs: Image files and folders (searched recursively); videos go through the plain engine.
        out_dir: Output folder: the layout of :func:`unip_hub.inference.outputs.segment_files`.
        settings: :class:`~unip_hub.inference.outputs.SegmentSettings` (default: all outputs).
        num_workers: Actors in the pool (each holds one copy of the model).
        ray_address: A running cluster (``"auto"``, ``"ray://head:10001"``); a local Ray by default.
        load: Keywords of :func:`unip_hub.load_segmenter` for files that do not say them.
        predictor_options: Keywords of :class:`~unip_hub.inference.Predictor` (``scaling``, ``calibration``).
        gpus: One GPU per actor (CUDA); default: when the cluster has GPUs.
        **options: :class:`~unip_hub.models.slide.InferenceOptions` fields (``mode``, ``crop_size``, ...).

    Returns:
        One record per input in input order, as :func:`~unip_hub.inference.outputs.segment_files` gives them;
        inputs whose outputs already existed get ``"skipped": True`` and the paths they have.
    """
    from unip_hub.engine.outputs import list_inputs
    from unip_hub.inference.outputs import SegmentSettings

    if num_workers < 1:
        raise ValueError(f"num_workers must be >= 1, got {num_workers}")
    settings = settings or SegmentSettings()
    files, names = list_inputs(inputs)
    out = Path(out_dir)
    done: dict[str, dict[str, Any]] = {}
    todo = []
    for f, n in zip(files, names):  # each input's outputs looked at once
        if outputs_done(out, n, settings):
            done[str(f)] = _done_record(out, str(f), n, settings)
        else:
            todo.append((str(f), n))
    if todo:
        job = RayJob(str(model_path), str(out), settings, dict(load or {}), dict(predictor_options or {}),
                     dict(options))
        for record in _run_pool(job, todo, num_workers, ray_address, gpus):
            done[record["input"]] = record
    return [done[str(f)] for f in files]


def _run_pool(job: RayJob, todo: list[tuple[str, str]], num_workers: int, ray_address: str | None,
              gpus: bool | None) -> list[dict[str, Any]]:
    """The Ray part of :func:`segment_with_ray`: a dataset of ``todo`` rows through the actor pool."""
    started = _start_ray(ray_address, num_workers)
    import ray
    import ray.data

    try:
        if gpus is None:
            gpus = ray.cluster_resources().get("GPU", 0) > 0
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = bool(job.settings.progress)
        rows = [{"path": path, "name": name} for path, name in todo]
        dataset = ray.data.from_items(rows, override_num_blocks=len(rows))  # one block per input: even spread
        results = dataset.map_batches(
            _SegmentActor, fn_constructor_kwargs={"job": job, "device": "cuda" if gpus else "cpu"},
            batch_size=1, compute=ray.data.ActorPoolStrategy(size=num_workers), num_cpus=0 if gpus else 1,
            num_gpus=1 if gpus else 0, batch_format="numpy")
        return [json.loads(row["record"]) for row in results.take_all()]
    finally:
        if started:
            ray.shutdown()


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds ``--engine {local,ray}``, ``--num-workers`` and ``--ray-address`` (``unip segment``)."""
    g = parser.add_argument_group("engine (archives: pip install 'unip[ray]')")
    g.add_argument("--engine", choices=ENGINES, default="local",
                   help="local: this process; ray: a pool of Ray actors, one model each (default local)")
    g.add_argument("--num-workers", type=int, default=2, help="--engine ray: actors in the pool (default 2)")
    g.add_argument("--ray-address", default=None, metavar="ADDRESS",
                   help="--engine ray: a running Ray cluster ('auto', 'ray://HEAD:10001'); default: a local Ray "
                        "with --num-workers CPUs")


def segment_command(args: argparse.Namespace, settings: Any, predictor_options: dict[str, Any],
                    options: dict[str, Any]) -> tuple[Any, list[dict[str, Any]]]:
    """``unip segment --engine ray``: :func:`segment_with_ray` from the parsed options of ``unip segment``.

    The checkpoint is loaded once here first (on the CPU), so a bad file fails before Ray starts; that model
    only describes the run (``unip segment``'s summary line). ``--device cuda`` gives each actor one GPU.

    Returns:
        The model as loaded here and the records, like :func:`unip_hub.inference.outputs.segment_paths`.

    Raises:
        ValueError: Options the Ray engine does not take (videos, folders read as videos, another runtime).
    """
    from unip_hub.hub.segmenters import load_segmenter
    from unip_hub.inference.video import is_video

    videos = [str(p) for p in args.inputs if is_video(p)]
    if videos or args.video:
        raise ValueError(f"--engine ray segments image files; run videos ({', '.join(videos) or '--video'}) with "
                         "the local engine")
    if (args.runtime, args.precision) != ("torch", "fp32"):
        raise ValueError("--engine ray runs torch fp32; drop --runtime / --precision or use the local engine")
    load = {"arch": args.arch, "num_classes": args.num_classes, "head": args.head, "neck": args.neck}
    model = load_segmenter(args.model, **{k: v for k, v in load.items() if v is not None}, aux=False)
    records = segment_with_ray(args.model, args.inputs, args.out, settings, args.num_workers, args.ray_address,
                               load=load, predictor_options=predictor_options,
                               gpus=str(args.device).startswith("cuda"), **options)
    return model, records
