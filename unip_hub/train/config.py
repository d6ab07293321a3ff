"""Run-config dataclasses as command-line options: one ``--option`` per field, help from the field's metadata.

Field metadata understood by :func:`add_dataclass_arguments`:

* ``help``: the help text; ``(default: X)`` is appended unless the text already mentions a default.
* ``choices``, ``metavar``, ``required``: passed to ``add_argument``.
* ``action``: ``"store_true"`` for a flag without a ``--no-`` form (booleans get ``--x`` / ``--no-x`` otherwise).
* ``cli``: ``False`` keeps the field off the command line (Python-only settings).

Types come from the annotations: ``int``, ``float``, ``str`` (``X | None`` as ``X``), ``bool`` (flags) and
``tuple[X, X]`` (``nargs=2``, converted back to a tuple by :func:`dataclass_from_args`).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from typing import Any

from unip_hub.constants import INPUT_SCALING

__all__ = ["InputOptions", "RunOptions", "add_dataclass_arguments", "cli_fields", "counts_pair", "dataclass_from_args",
           "option"]


def option(default: Any, text: str, **meta: Any) -> Any:
    """A dataclass field with its command-line help and argparse metadata (see the module docstring)."""
    return dataclasses.field(default=default, metadata={"help": text, **meta})


def counts_pair(value: Any) -> tuple[float, float] | None:
    """``(gain, offset)`` as two floats (or ``None``); a zero or non-finite gain is refused."""
    if value is None:
        return None
    gain, offset = (float(v) for v in value)
    if not (math.isfinite(gain) and math.isfinite(offset)) or gain == 0:
        raise ValueError(f"counts_to_celsius must be a finite non-zero GAIN and a finite OFFSET, got {value!r}")
    return gain, offset


@dataclasses.dataclass
class InputOptions:
    """How a run's images become the model's 8-bit gray input, for every task: saved in the run's checkpoints and
    applied again by ``unip eval`` / ``segment`` / ``detect``."""

    input_scaling: str = option(INPUT_SCALING, "how images become the model's 8-bit gray, saved in the checkpoint "
                                "and applied by unip eval / segment / detect: 'percentile LOW/HIGH' (default "
                                "percentile 0.5/99.5), 'window LOW..HIGH degC' (radiometric data: float TIFF/NPY in "
                                "degC or K, R-JPEG) or '8-bit' (8-bit images as they are)")
    counts_to_celsius: tuple[float, float] | None = option(
        None, "16-bit count images (TLinear): degC = GAIN * count + OFFSET (Boson: 0.01 -273.15), for a 'window "
        "LOW..HIGH degC' scaling; saved in the checkpoint beside the scaling (default: none)",
        metavar=("GAIN", "OFFSET"))

    def canonical_input(self) -> None:
        """Rewrites the scaling as its canonical text (compared on resume) and the calibration as two floats."""
        from unip_hub.data.scaling import InputScaling

        self.input_scaling = str(InputScaling.parse(self.input_scaling))
        self.counts_to_celsius = counts_pair(self.counts_to_celsius)


def _base_type(hint: Any) -> Any:
    """``X | None`` -> ``X``; other hints unchanged."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    return args[0] if union and len(args) == 1 else hint


def cli_fields(cls: type) -> list[tuple[dataclasses.Field, Any]]:
    """(field, base type) of each field of dataclass ``cls`` that has a command-line option."""
    hints = typing.get_type_hints(cls)
    return [(f, _base_type(hints[f.name])) for f in dataclasses.fields(cls) if f.metadata.get("cli", True)]


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else None


def _keywords(f: dataclasses.Field, typ: Any, suppress: bool) -> dict[str, Any]:
    meta, default = f.metadata, _default(f)
    text = meta.get("help", "")
    kw: dict[str, Any] = {"dest": f.name, "help": text if "default" in text else f"{text} (default: {default})"}
    kw["default"] = argparse.SUPPRESS if suppress else default
    if typ is bool:
        kw["action"] = meta.get("action", argparse.BooleanOptionalAction)
        if kw["action"] == "store_true":  # a plain flag: off unless given
            kw["help"] = text
        return kw
    if typing.get_origin(typ) is tuple:
        kw["nargs"], typ = len(typing.get_args(typ)), typing.get_args(typ)[0]
    kw["type"] = typ
    kw.update({k: meta[k] for k in ("choices", "metavar", "required") if k in meta})
    return kw


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls: type, *, suppress_defaults: bool = False
                            ) -> argparse.ArgumentParser:
    """Adds ``--field-name`` for every field of dataclass ``cls`` (see the module docstring).

    Args:
        parser: The parser to extend.
        cls: A dataclass.
        suppress_defaults: Leave options that are not given out of the namespace (so that they can be filled from
            elsewhere, e.g. a resumed run's saved settings) instead of setting the field defaults.

    Returns:
        ``parser``.
    """
    for f, typ in cli_fields(cls):
        parser.add_argument("--" + f.name.replace("_", "-"), **_keywords(f, typ, suppress_defaults))
    return parser


def dataclass_from_args(cls: type, args: argparse.Namespace | Mapping[str, Any],
                        base: Mapping[str, Any] | None = None) -> Any:
    """An instance of dataclass ``cls`` from parsed options over ``base`` (over the field defaults).

    Attributes of ``args`` that are not fields are ignored; lists given to tuple fields become tuples.
    """
    given = dict(args) if isinstance(args, Mapping) else vars(args)
    names = {f.name: typ for f, typ in cli_fields(cls)}
    values = {k: v for k, v in (base or {}).items() if k in {f.name for f in dataclasses.fields(cls)}}
    for name, typ in names.items():
        if name in given:
            value = given[name]
            values[name] = tuple(value) if typing.get_origin(typ) is tuple and value is not None else value
    return cls(**values)


@dataclasses.dataclass
class RunOptions(InputOptions):
    """The settings every task's training run has (optimizer peak, AMP, evaluation cadence, resuming, devices,
    logs); a task's config adds its own (model, data, schedule, defaults of its recipe)."""

    lr: float = option(1e-4, "peak learning rate (default 1e-4)")
    betas: tuple[float, float] = option((0.9, 0.999), "AdamW betas (default 0.9 0.999)", metavar=("B1", "B2"))
    clip_grad: float | None = option(None, "clip the gradient norm to this value (default: no clipping)")
    amp: bool = option(True, "mixed precision on CUDA (default on; ignored on CPU)")
    eval_interval: int | None = option(None, "evaluate and checkpoint every N iterations (default: a tenth of the run)")
    resume: str | None = option(None, "continue a run from its last.pth (settings come from the file); 'auto': "
                                "continue <out-dir>/last.pth if present, else start (re-run the same command line)")
    num_workers: int = option(2, "data-loading workers per process (default 2)")
    device: str = option("auto", "device (default auto)", choices=("auto", "cpu", "cuda"))
    log_interval: int = option(20, "log every N iterations (default 20)")
    tensorboard: bool = option(True, "TensorBoard events in <out-dir>/tb (default on)")
    progress: bool = option(True, "progress bars (default on)")

