"""Read a notebook's ``parameters`` cell and check values against it, before anything runs.

One home for both command lines: ``python -m drrdn_lib.run_notebook`` and the batch
runner (``drrdn_lib.batch``). Papermill itself only warns about an unknown name and
passes any value, so a typo (``epochz``) or a wrong type (``epochs: four``) would
otherwise surface, if at all, deep inside a long run.

The rules, by the type of the default in the ``parameters`` cell:

- a name not in the cell is refused, with the closest declared names suggested;
- ``None`` is accepted for every parameter (these notebooks use ``None`` for "the
  protocol's value"), and a parameter whose default is ``None`` or an expression
  (``8 / 255``) accepts any value;
- ``bool`` needs a bool; ``int`` an int (not a bool); ``float`` an int or a float;
  ``str`` a string; ``dict`` a mapping;
- ``list`` (or tuple) needs a list. A single value for a list parameter is an error, not
  a one-element list: ``-p methods pgd_at,trades`` would otherwise silently become
  ``["pgd_at,trades"]``. Give a YAML list: ``-p methods '[pgd_at, trades]'``.
"""
from __future__ import annotations

import ast
import difflib
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

__all__ = ["ParameterError", "Declared", "declared_parameters", "check_parameters",
           "parameters_from_file", "chosen_seeds"]

_ANY = object()  # the default is an expression: any value is accepted
_TYPES = (bool, int, float, str, list, dict)  # bool before int: a bool is an int


class ParameterError(ValueError):
    """A parameter that the notebook does not declare, or a value of the wrong type."""


@dataclass(frozen=True)
class Declared:
    """One line of a ``parameters`` cell: its name, default source text and parsed default."""

    name: str
    source: str  # the default as written, e.g. "[\"pgd_at\", \"trades\"]"
    default: object  # the parsed default, or _ANY when it is not a literal

    def kind(self) -> type | None:
        """The type a value must have (None: anything goes)."""
        if self.default is _ANY or self.default is None:
            return None
        if isinstance(self.default, tuple):
            return list
        return next((t for t in _TYPES if isinstance(self.default, t)), None)


def _parse_default(source: str):
    """The default's value if it is a Python literal, else ``_ANY``."""
    try:
        return ast.literal_eval(source)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return _ANY


def declared_parameters(notebook: str | os.PathLike) -> dict[str, Declared]:
    """The ``parameters`` cell of ``notebook``: name -> :class:`Declared` (empty without one).

    Cached by (path, modification time), so an edited notebook is read again.
    """
    path = Path(notebook).resolve()
    if not path.is_file():
        raise ParameterError(f"no notebook at {path}; check the path.")
    return _declared(str(path), path.stat().st_mtime_ns)


@lru_cache(maxsize=64)
def _declared(path: str, mtime_ns: int) -> dict[str, Declared]:
    import papermill

    found = papermill.inspect_notebook(path)
    return {name: Declared(name, str(info["default"]), _parse_default(str(info["default"])))
            for name, info in found.items()}


def _type_error(declared: Declared, value, where: str) -> ParameterError:
    kind = declared.kind()
    hint = {list: f"give a YAML list, e.g. [{value!r}] (quoted on a command line: "
                  f"-p {declared.name} '[{value}]')",
            str: "give a string (quote it in YAML: '...')",
            bool: "give true or false",
            int: "give a whole number",
            float: "give a number",
            dict: "give a YAML mapping, e.g. {key: value}"}[kind]
    return ParameterError(
        f"{where}: parameter {declared.name!r} must be {kind.__name__} like its default "
        f"({declared.source}), got {type(value).__name__} {value!r}; {hint}, or null for None.")


def _matches(kind: type | None, value) -> bool:
    """Whether ``value`` fits a parameter of type ``kind`` (None always does)."""
    if kind is None or value is None:
        return True
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is list:
        return isinstance(value, (list, tuple))
    return isinstance(value, kind)


def check_parameters(notebook: str | os.PathLike, values: dict, where: str = "") -> None:
    """Raise :class:`ParameterError` for every name ``notebook`` does not declare and every value
    whose type does not match its default (rules in the module docstring); all problems
    are listed in one message. ``where`` prefixes the message (e.g. the grid entry)."""
    declared = declared_parameters(notebook)
    where = where or Path(notebook).name
    problems = []
    for name, value in values.items():
        if name not in declared:
            close = difflib.get_close_matches(name, list(declared), n=3, cutoff=0.6)
            guess = f"did you mean {' or '.join(close)}? " if close else ""
            problems.append(f"{where}: {name!r} is not a parameter of {Path(notebook).name}; "
                            f"{guess}its parameters: {', '.join(sorted(declared)) or 'none'}.")
        elif not _matches(declared[name].kind(), value):
            problems.append(str(_type_error(declared[name], value, where)))
    if problems:
        raise ParameterError("\n".join(problems))


def parameters_from_file(notebook: str | os.PathLike, path: str | os.PathLike) -> dict:
    """``notebook``'s declared defaults overridden by the YAML parameter file at ``path``,
    checked as papermill would run them (:func:`check_parameters`)."""
    import yaml

    values = yaml.safe_load(Path(path).read_text()) or {}
    check_parameters(notebook, values, where=str(path))
    return {**{k: d.default for k, d in declared_parameters(notebook).items()}, **values}


def chosen_seeds(given: str | None, seeds: list, where: str = "the parameter file") -> list[int]:
    """The seeds a script's ``--seeds 1,2`` picks from a parameter file's ``seeds`` (all of
    them for None); a seed the file does not list raises :class:`SystemExit` naming them."""
    if given is None:
        return list(seeds)
    try:
        picked = [int(s) for s in given.split(",")]
    except ValueError:
        raise SystemExit(f"--seeds {given!r}: give whole numbers separated by commas, e.g. 1,2") from None
    unknown = [s for s in picked if s not in seeds]
    if unknown:
        raise SystemExit(f"--seeds {unknown} not in {where}'s seeds {list(seeds)}")
    return picked
