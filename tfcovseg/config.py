"""Dataclass configs from YAML: strict keys, typed values, ``key.sub=value`` overrides.

The settings dataclasses live in ``tfcovseg.settings`` (frozen, defaults that reproduce the
papers, no TensorFlow); this module maps YAML onto them 1:1 and checks every value at load:
types, choices (``Literal``), ranges (``bounded`` fields) and each dataclass's own cross-field
rules (``__post_init__``). All problems are reported together in one ``ConfigError``, each with
its key path, the value found and what is allowed; an unknown key names the closest valid one.
"""

import dataclasses
import difflib
import types
import typing
from importlib import resources
from pathlib import Path

import yaml

from tfcovseg.errors import ConfigError

CONFIGS_PACKAGE = "tfcovseg.configs"  # the repository's configs/, shipped as such (setup.cfg)


def config_path(name_or_path) -> Path:
    """A config file by path, or by name (``demo``) from the configs shipped with the package."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    return named_config(name_or_path)


def named_config(name: str) -> Path:
    """The shipped config ``name``: the repository's ``configs/<name>.yaml``.

    Read through ``importlib.resources``, so it works from a checkout (editable install) and
    from an installed wheel alike; pip unpacks wheels, so the result is a file on disk.
    """
    configs = resources.files(CONFIGS_PACKAGE)
    named = configs / f"{name}.yaml"
    if named.is_file():
        return named
    known = sorted(f.name.removesuffix(".yaml") for f in configs.iterdir() if f.name.endswith(".yaml"))
    close = difflib.get_close_matches(str(name), known, n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    raise ConfigError(f"no such config file ({hint}named configs: {', '.join(known)})", name)


def read_yaml(path) -> dict:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as err:
        raise ConfigError(f"cannot read config: {err.strerror}", path) from None
    except yaml.YAMLError as err:
        raise ConfigError(f"not valid YAML: {err}", path) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("a config must be a mapping of keys to values", path)
    return data


def apply_overrides(data: dict, overrides, source="command line") -> dict:
    """Apply ``a.b.c=value`` strings (value parsed as YAML) to a nested dict.

    A number indexes a list: ``stages.0.phases.1.epochs=50``.
    """
    data = dict(data)
    for item in overrides or ():
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not of the form key.sub=value", source)
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
        raise ConfigError(
            f"override key {parent}.{part}: {parent} is a list of {len(node)} items, "
            f"index it with 0..{len(node) - 1}", source)
    return int(part)


def frozen_settings(cls):
    """``@dataclass(frozen=True)`` whose ``bounded`` fields are also checked on construction,
    so a Python caller gets the same ``ValueError`` a config file gets as a ``ConfigError``.
    A ``__post_init__`` of the class (cross-field rules) runs after the range checks."""
    own = cls.__dict__.get("__post_init__")

    def __post_init__(self):
        problems = []
        for field in dataclasses.fields(self):
            _check_range(field, getattr(self, field.name), field.name, problems)
        if problems:
            raise ValueError("; ".join(problems))
        if own is not None:
            own(self)

    cls.__post_init__ = __post_init__
    return dataclasses.dataclass(frozen=True)(cls)


def bounded(default=dataclasses.MISSING, *, low=None, high=None, low_open=False,
            high_open=False):
    """A number field (or a tuple of numbers) whose range ``from_dict`` checks at load.

    ``low``/``high`` are inclusive unless ``low_open``/``high_open``; ``None`` is unbounded.
    A ``None`` value (an optional field) is not checked.
    """
    allowed = Range(low, high, low_open, high_open)
    if isinstance(default, (list, tuple)):
        frozen = tuple(default)
        return dataclasses.field(default_factory=lambda: frozen, metadata={"range": allowed})
    return dataclasses.field(default=default, metadata={"range": allowed})


@dataclasses.dataclass(frozen=True)
class Range:
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def contains(self, value) -> bool:
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return self.high is None or not (value > self.high or (self.high_open and value == self.high))

    def __str__(self) -> str:
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        if self.low is None:
            return f"{'<' if self.high_open else '<='} {self.high:g}"
        return (f"{'(' if self.low_open else '['}{self.low:g}, {self.high:g}"
                f"{')' if self.high_open else ']'}")


def field_range(cls, name: str) -> Range:
    """The ``bounded`` range of field ``name`` of settings dataclass ``cls``."""
    return {f.name: f for f in dataclasses.fields(cls)}[name].metadata["range"]


def field_type(cls, name: str) -> type:
    """``int`` or ``float``: the number type of field ``name`` (of its items for a tuple, of
    the value for an optional one)."""
    hint = typing.get_type_hints(cls)[name]
    while typing.get_args(hint):
        hint = next(a for a in typing.get_args(hint) if a is not type(None) and a is not Ellipsis)
    return hint


def from_dict(cls, data, where: str = ""):
    """Build dataclass ``cls`` from a mapping, checking keys, types and ranges recursively.

    Every problem is collected; one ``ConfigError`` lists them all, each with its key path,
    the value found and what is allowed (an unknown key with the closest valid one).
    """
    problems = []
    built = _build(cls, data, where, problems)
    if problems:
        raise ConfigError("; ".join(problems))
    return built


def _build(cls, data, where, problems):
    """``cls(**data)`` converted field by field; ``None`` after appending to ``problems``."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        problems.append(f"{where} must be a mapping, got {data!r}")
        return None
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in sorted(set(data) - set(fields), key=str):
        close = difflib.get_close_matches(str(key), fields, n=1)
        hint = f" (did you mean {_key(where, close[0])}?)" if close else ""
        problems.append(f"unknown key {_key(where, key)}{hint}; allowed keys: {', '.join(sorted(fields))}")
    missing = [name for name, f in fields.items() if name not in data and _required(f)]
    problems.extend(f"{_key(where, name)} is required" for name in missing)
    hints = typing.get_type_hints(cls)
    count = len(problems)
    values = {}
    for name, value in data.items():
        if name in fields:
            values[name] = _convert(hints[name], value, _key(where, name), problems)
            _check_range(fields[name], values[name], _key(where, name), problems)
    if len(problems) > count or missing or set(data) - set(fields):
        return None
    try:
        return cls(**values)
    except (TypeError, ValueError) as err:
        problems.append(f"{where or cls.__name__}: {err}")
        return None


def _key(where: str, name) -> str:
    """The key path a user writes in an override: ``stages.0.batch_size``."""
    return f"{where}.{name}" if where else str(name)


def _required(field) -> bool:
    return field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING


def _check_range(field, value, where, problems) -> None:
    allowed = field.metadata.get("range")
    if allowed is None or value is None:
        return
    items = value if isinstance(value, (list, tuple)) else (value,)
    if not all(allowed.contains(item) for item in items):
        problems.append(f"{where} is {_plain(value)!r}; allowed: {allowed}"
                        f"{' for each item' if isinstance(value, (list, tuple)) else ''}")


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
    if path is not None:
        data = _deep_merge(data, read_yaml(path))
    data = apply_overrides(data, overrides)
    try:
        return from_dict(cls, data)
    except ConfigError as err:
        where = path if not overrides else f"{path or 'defaults'} with the command-line overrides"
        raise ConfigError(err.problem, where) from None


def _deep_merge(base: dict, extra: dict) -> dict:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _convert(hint, value, where, problems):
    """``value`` as type ``hint``; on a mismatch, a problem is appended and ``value`` returned."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, where, problems)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        for option in options:
            attempt = []
            converted = _convert(option, value, where, attempt)
            if not attempt:
                return converted
        if len(options) == 1:
            return _convert(options[0], value, where, problems)
        problems.append(f"{where} is {value!r}; allowed: {hint}")
        return value
    if origin is typing.Literal:
        if value not in args:
            problems.append(f"{where} is {value!r}; allowed values: {', '.join(repr(a) for a in args)}")
        return value
    if origin in (tuple, list):
        return _convert_sequence(origin, args, value, where, problems)
    if origin is dict:
        if not isinstance(value, dict):
            problems.append(f"{where} must be a mapping, got {value!r}")
            return value
        return dict(value)
    return _convert_scalar(hint, value, where, problems)


def _convert_sequence(origin, args, value, where, problems):
    if not isinstance(value, (list, tuple)):
        problems.append(f"{where} must be a list, got {value!r}")
        return value
    if origin is tuple and args and args[-1] is not Ellipsis:
        if len(value) != len(args):
            problems.append(f"{where} must have {len(args)} items, got {len(value)}: {value!r}")
            return value
        return tuple(_convert(a, v, _key(where, i), problems) for i, (a, v) in enumerate(zip(args, value)))
    item = args[0] if args else typing.Any
    converted = [_convert(item, v, _key(where, i), problems) for i, v in enumerate(value)]
    return tuple(converted) if origin is tuple else converted


SCALARS = {
    float: ("a number", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), float),
    int: ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool), int),
    bool: ("true or false", lambda v: isinstance(v, bool), bool),
    str: ("a string", lambda v: isinstance(v, (str, int, float)) and not isinstance(v, bool), str),
}


def _convert_scalar(hint, value, where, problems):
    if hint not in SCALARS:
        return value
    what, accepts, make = SCALARS[hint]
    if not accepts(value):
        problems.append(f"{where} must be {what}, got {value!r}")
        return value
    return make(value)


def _plain(value):
    return list(value) if isinstance(value, tuple) else value
