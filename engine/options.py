"""Option tables: one row per setting drives its flag, its LP_* env var, --help and the README table.

Stdlib only (plus engine.errors), so a program that is not the engine (the bridge) can build its settings without
importing the engine's renderers. Precedence: command-line flag > environment variable > default. Several tables
(a program's own and those of the features it serves) parse from one argv with ``load_tables``: one --help lists
them all, and each table fills its own settings dataclass.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, TypeVar

from engine.errors import ConfigError


@dataclass(frozen=True)
class Option:
    """One setting: its dataclass field, flag, env var, type, default and help."""

    field: str
    flag: str
    env: str
    kind: Callable[[str], Any]
    default: Any
    help: str
    choices: tuple[str, ...] | None = None


def parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"not a boolean: {text!r}")


def defaults(options: Sequence[Option]) -> dict[str, Any]:
    return {opt.field: opt.default for opt in options}


def check_fields(cls: type, options: Sequence[Option]) -> None:
    """A settings dataclass and its option table name the same fields with the same defaults, or this raises."""
    have = {f.name: f.default for f in fields(cls)}
    want = defaults(options)
    if have != want:
        diff = sorted(set(have.items()) ^ set(want.items()), key=str)
        raise ConfigError(f"{cls.__name__} and its option table differ: {diff}")


T = TypeVar("T")


def build_parser(options: Sequence[Option], prog: str, description: str) -> argparse.ArgumentParser:
    """An argparse parser whose --help shows every flag with its env var and default."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    for opt in options:
        extra: dict[str, Any] = {}
        if opt.choices:
            extra["choices"] = opt.choices
        metavar = "{" + ",".join(opt.choices) + "}" if opt.choices else opt.field.upper()
        parser.add_argument(opt.flag, dest=opt.field, type=opt.kind, default=None, metavar=metavar,
                            help=f"{opt.help} [env {opt.env}, default {opt.default}]", **extra)
    return parser


def load_tables(tables: Sequence[tuple[type, Sequence[Option]]], argv: Sequence[str] | None,
                env: Mapping[str, str], prog: str, description: str) -> list[Any]:
    """One settings object per ``(dataclass, options)`` table, all parsed from one argv (one --help).

    A bad env value exits like a bad flag. Every option must name a field of its dataclass, and no two tables may
    share a field or flag: an option with nowhere to go, or two owners, is an error, never silently dropped."""
    merged: list[Option] = []
    for cls, options in tables:
        check_fields(cls, options)
        merged.extend(options)
    for attr in ("field", "flag", "env"):
        names = [getattr(o, attr) for o in merged]
        if len(names) != len(set(names)):
            raise ConfigError(f"two options share a {attr}: {sorted({n for n in names if names.count(n) > 1})}")
    parser = build_parser(merged, prog, description)
    args = parser.parse_args(argv)
    out = []
    for cls, options in tables:
        values: dict[str, Any] = {}
        for opt in options:
            value = getattr(args, opt.field)
            if value is None and opt.env in env:
                try:
                    value = opt.kind(env[opt.env])
                except ValueError as exc:
                    parser.error(f"{opt.env}={env[opt.env]!r}: {exc}")
                if opt.choices and value not in opt.choices:
                    parser.error(f"{opt.env}={env[opt.env]!r}: choose from {', '.join(opt.choices)}")
            if value is not None:
                values[opt.field] = value
        out.append(cls(**values))
    return out


def load(cls: type[T], options: Sequence[Option], argv: Sequence[str] | None, env: Mapping[str, str],
         prog: str, description: str) -> T:
    """Settings from flags, then env vars, then defaults (one table)."""
    return load_tables([(cls, options)], argv, env, prog, description)[0]  # type: ignore[no-any-return]


def markdown_table(options: Sequence[Option]) -> str:
    rows = ["| flag | env | default | meaning |", "|---|---|---|---|"]
    for opt in options:
        choices = f" ({' / '.join(opt.choices)})" if opt.choices else ""
        rows.append(f"| `{opt.flag}` | `{opt.env}` | `{opt.default}` | {opt.help}{choices} |")
    return "\n".join(rows)
