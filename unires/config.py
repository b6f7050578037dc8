"""Typed configs loaded from YAML: dataclasses, nested dataclasses for sections.

Every value is checked when the config is loaded, not when it is first used: unknown keys and
values outside a ``choice`` field's choices are a one-line ``ConfigError`` naming the file and
the key."""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A config that cannot be used; the message is one line naming the file and the key."""


def choice(default: str, choices: tuple[str, ...]) -> Any:
    """A dataclass field that takes one of ``choices``: ``from_dict`` / ``load_yaml`` reject
    any other value at load time, naming the file, the key and the allowed values.

    Raises:
        ValueError: ``default`` is not one of ``choices`` (a programming error).
    """
    if default not in choices:
        raise ValueError(f"default {default!r} is not one of {choices}")
    return dataclasses.field(default=default, metadata={"choices": tuple(choices)})


def from_dict(cls: type[T], data: dict[str, Any], where: str = "") -> T:
    """Build dataclass ``cls`` from a mapping, nested dataclasses from nested mappings.

    ``where`` names the source (a file) in messages. Typos fail loudly.

    Raises:
        ConfigError: an unknown key, or a value outside a ``choice`` field's choices
            (``"train.yaml: optim.schedule: 'cosin' is not one of linear, cosine, ..."``).
        TypeError: ``cls`` is not a dataclass.
    """
    return _from_dict(cls, data, where or cls.__name__, "")


def _from_dict(cls: type[T], data: dict[str, Any], source: str, prefix: str) -> T:
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls} is not a dataclass")
    data = dict(data or {})
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        at = f"{prefix}: " if prefix else ""
        raise ConfigError(f"{source}: {at}unknown key(s) {', '.join(unknown)}")
    kwargs = {}
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else name
        kwargs[name] = _coerce(hints[name], value, source, key)
        choices = fields[name].metadata.get("choices")
        if choices is not None and kwargs[name] not in choices:
            raise ConfigError(
                f"{source}: {key}: {kwargs[name]!r} is not one of {', '.join(choices)}"
            )
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, source: str, key: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp) and isinstance(value, dict):
        return _from_dict(tp, value, source, key)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        if len(args) == 1:
            return _coerce(args[0], value, source, key)
        return value
    if origin is tuple and isinstance(value, list | tuple):
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, source, key) for v in value)
        return tuple(_coerce(a, v, source, key) for a, v in zip(args, value, strict=True))
    if origin is list and isinstance(value, list | tuple):
        (arg,) = typing.get_args(tp) or (Any,)
        return [_coerce(arg, v, source, key) for v in value]
    if tp is float and isinstance(value, int | float):
        return float(value)
    if tp is Path and isinstance(value, str):
        return Path(value)
    return value


def load_yaml(cls: type[T], path: str | Path) -> T:
    """Dataclass ``cls`` from a YAML file (``from_dict``; an empty file gives the defaults).

    Raises:
        ConfigError: as ``from_dict``, naming ``path``.
        OSError: the file cannot be read. ``yaml.YAMLError``: it is not YAML.
    """
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    return from_dict(cls, data, where=str(path))


def to_dict(obj: Any) -> dict[str, Any]:
    """A dataclass as plain YAML/JSON data (paths as strings, tuples as lists)."""

    def conv(v: Any) -> Any:
        if isinstance(v, Path):
            return str(v)
        if isinstance(v, tuple | list):
            return [conv(x) for x in v]
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        return v

    return {k: conv(v) for k, v in dataclasses.asdict(obj).items()}
