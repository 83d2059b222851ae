"""Dataclass configs from YAML: strict keys, typed values, ``key.sub=value`` overrides.

Each room defines its own dataclasses (with defaults that reproduce the paper); this module
maps YAML onto them 1:1. An unknown key is an error naming the key and the allowed ones.
"""

import dataclasses
import types
import typing
from pathlib import Path

import yaml

from tfcovseg.errors import TfcovsegError

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


def config_path(name_or_path) -> Path:
    """A config file by path, or by name from the repository's ``configs/`` (``demo``)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    named = CONFIG_DIR / f"{name_or_path}.yaml"
    if named.is_file():
        return named
    known = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
    raise TfcovsegError(f"no such config file (named configs: {', '.join(known)})", name_or_path)


def read_yaml(path) -> dict:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as err:
        raise TfcovsegError(f"cannot read config: {err.strerror}", path) from None
    except yaml.YAMLError as err:
        raise TfcovsegError(f"not valid YAML: {err}", path) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise TfcovsegError("a config must be a mapping of keys to values", path)
    return data


def apply_overrides(data: dict, overrides, source="command line") -> dict:
    """Apply ``a.b.c=value`` strings (value parsed as YAML) to a nested dict.

    A number indexes a list: ``stages.0.phases.1.epochs=50``.
    """
    data = dict(data)
    for item in overrides or ():
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise TfcovsegError(f"override {item!r} is not of the form key.sub=value", source)
        node = data
        parts = key.split(".")
        for depth, part in enumerate(parts):
            index = _override_index(node, part, ".".join(parts[:depth]), source)
            if depth == len(parts) - 1:
                node[index] = yaml.safe_load(raw)
                break
            child = node[index] if isinstance(node, list) else node.get(index)
            child = type(child)(child) if isinstance(child, (dict, list)) else {}
            node[index] = child
            node = child
    return data


def _override_index(node, part: str, parent: str, source):
    """``part`` as a key of a mapping, or as a valid index of a list."""
    if not isinstance(node, list):
        return part
    if not part.isdigit() or int(part) >= len(node):
        raise TfcovsegError(
            f"override key {parent}.{part}: {parent} is a list of {len(node)} items, "
            f"index it with 0..{len(node) - 1}", source)
    return int(part)


def from_dict(cls, data, where: str = "config"):
    """Build dataclass ``cls`` from a mapping, checking keys and value types recursively."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise TfcovsegError(f"{where} must be a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise TfcovsegError(
            f"unknown key {where}.{unknown[0]}; allowed keys: {', '.join(sorted(fields))}"
        )
    hints = typing.get_type_hints(cls)
    values = {name: _convert(hints[name], value, f"{where}.{name}") for name, value in data.items()}
    try:
        return cls(**values)
    except (TypeError, ValueError) as err:
        raise TfcovsegError(f"{where}: {err}") from None


def to_dict(config) -> dict:
    """A plain, YAML-safe dict of a dataclass config (tuples become lists)."""

    def plain(value):
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(dataclasses.asdict(config))


def load_config(cls, path=None, overrides=(), base: dict | None = None):
    """``cls`` from an optional YAML file, then ``overrides``; ``base`` is merged first."""
    data = dict(base or {})
    where = "config"
    if path is not None:
        data = _deep_merge(data, read_yaml(path))
        where = str(path)
    data = apply_overrides(data, overrides)
    try:
        return from_dict(cls, data, "config")
    except TfcovsegError as err:
        raise TfcovsegError(err.problem, where) from None


def _deep_merge(base: dict, extra: dict) -> dict:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _convert(hint, value, where):
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _convert(option, value, where)
            except TfcovsegError as err:
                errors.append(err.problem)
        raise TfcovsegError(errors[0] if len(errors) == 1 else f"{where}: {value!r} fits none of {hint}")
    if origin is typing.Literal:
        if value not in args:
            allowed = ", ".join(repr(a) for a in args)
            raise TfcovsegError(f"{where} is {value!r}; allowed values: {allowed}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise TfcovsegError(f"{where} must be a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise TfcovsegError(f"{where} must have {len(args)} items, got {len(value)}")
            return tuple(_convert(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
        item = args[0] if args else typing.Any
        converted = [_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(converted) if origin is tuple else converted
    if origin is dict:
        if not isinstance(value, dict):
            raise TfcovsegError(f"{where} must be a mapping, got {value!r}")
        return dict(value)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TfcovsegError(f"{where} must be a number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TfcovsegError(f"{where} must be an integer, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise TfcovsegError(f"{where} must be true or false, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise TfcovsegError(f"{where} must be a string, got {value!r}")
        return str(value)
    return value
