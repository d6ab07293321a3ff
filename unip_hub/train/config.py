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
import types
import typing
from collections.abc import Mapping
from typing import Any

__all__ = ["add_dataclass_arguments", "cli_fields", "dataclass_from_args"]


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
