"""YAML into validated pydantic models, with errors that name the file, the line and the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)
Loc = tuple[str | int, ...]


class ConfigError(ValueError):
    """A configuration that cannot be used. The message names file, line and key."""


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that records where every mapping key and sequence item starts."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.lines: dict[Loc, int] = {}


def _walk(loader: _LineLoader, node: yaml.Node, loc: Loc) -> Any:
    loader.lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if key in out:
                raise ConfigError(f"line {key_node.start_mark.line + 1}: key {_fmt((*loc, key))!r} repeated")
            loader.lines[(*loc, key)] = key_node.start_mark.line + 1
            out[key] = _walk(loader, value_node, (*loc, key))
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_walk(loader, item, (*loc, i)) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def _fmt(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def parse_yaml(text: str, source: str = "<string>") -> tuple[Any, dict[Loc, int]]:
    loader = _LineLoader(text)
    try:
        node = loader.get_single_node()
        data = {} if node is None else _walk(loader, node, ())
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        raise ConfigError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    finally:
        loader.dispose()
    return data, loader.lines


def _line_for(lines: dict[Loc, int], loc: Loc) -> int | None:
    # A missing key has no line of its own: report its nearest present parent.
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def validation_message(exc: ValidationError, lines: dict[Loc, int], source: str) -> str:
    problems = []
    for err in exc.errors():
        # pydantic puts union member names and validator tags in loc; keep only real keys.
        loc = tuple(
            p for p in err["loc"] if isinstance(p, int) or not str(p).startswith(("function-", "tagged"))
        )
        line = _line_for(lines, loc)
        where = f"{source}:{line}" if line else source
        problems.append(f"{where}: {_fmt(loc)}: {err['msg']}")
    return "\n".join(problems)


def load_model(path: str | Path, model: type[M]) -> M:
    """Read `path` as YAML and validate it as `model`; raises ConfigError naming file, line and key."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    return parse_model(text, model, str(path))


def parse_model(text: str, model: type[M], source: str = "<string>") -> M:
    data, lines = parse_yaml(text, source)
    if not isinstance(data, dict):
        raise ConfigError(f"{source}:1: the top level must be a mapping, not {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(validation_message(exc, lines, source)) from None
