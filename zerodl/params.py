"""params.yaml -> typed, validated settings; one clear line per bad key.

The dataclasses below mirror params.yaml and are the only other place a
default lives. Every key is checked before any stage does work: unknown keys
(typos), wrong types and values out of range all raise ParamsError naming the
key, the value and what is allowed.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from .errors import ParamsError

SOURCES = ("mnist-5k", "mnist", "fashion-mnist", "idx")
OPTIMIZERS = ("sgd", "momentum", "adagrad", "rmsprop", "adam")
GRADIENTS = ("backprop", "numerical")
DTYPES = ("float32", "float64")
INITS = ("he", "xavier")


@dataclass(frozen=True)
class DataParams:
    source: str = "mnist-5k"
    dir: str | None = None
    test_fraction: float = 0.2


@dataclass(frozen=True)
class ModelParams:
    hidden_size: int = 50
    weight_init_std: float | str = 0.01


@dataclass(frozen=True)
class TrainParams:
    iters: int = 10000
    batch_size: int = 100
    learning_rate: float = 0.1
    optimizer: str = "sgd"
    gradient: str = "backprop"
    momentum: float = 0.9
    dtype: str = "float32"
    threads: int = 1


@dataclass(frozen=True)
class ReportParams:
    misclassified: int = 25


@dataclass(frozen=True)
class Params:
    seed: int = 0
    data: DataParams = field(default_factory=DataParams)
    model: ModelParams = field(default_factory=ModelParams)
    train: TrainParams = field(default_factory=TrainParams)
    report: ReportParams = field(default_factory=ReportParams)


# --- checks: each returns None if fine, else the text "expected ..." -------------

def _int(lo: int | None = None, hi: int | None = None) -> Callable[[Any], str | None]:
    def check(v):
        rng = _range_text(lo, hi)
        if isinstance(v, bool) or not isinstance(v, int):
            return f"expected an integer{rng}"
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            return f"expected an integer{rng}"
        return None
    return check


def _range_text(lo, hi) -> str:
    if lo is not None and hi is not None:
        return f" from {lo} to {hi}"
    if lo is not None:
        return f" >= {lo}"
    return ""


def _positive_float(v):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0 or v != v or v == float("inf"):
        return "expected a finite number > 0"
    return None


def _fraction(v):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < 1:
        return "expected a number between 0 and 1 (exclusive)"
    return None


def _momentum(v):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1:
        return "expected a number in [0, 1)"
    return None


def _choice(options):
    def check(v):
        if v not in options:
            return "expected one of " + " | ".join(options)
        return None
    return check


def _init(v):
    if isinstance(v, str):
        return None if v in INITS else "expected a number > 0, or he | xavier"
    if _positive_float(v):
        return "expected a number > 0, or he | xavier"
    return None


def _dir(v):
    if v is None or (isinstance(v, str) and v.strip()):
        return None
    return "expected a folder path or null"


CHECKS: dict[str, dict[str, Callable[[Any], str | None]]] = {
    "data": {"source": _choice(SOURCES), "dir": _dir, "test_fraction": _fraction},
    "model": {"hidden_size": _int(1, 100_000), "weight_init_std": _init},
    "train": {
        "iters": _int(1, 10_000_000),
        "batch_size": _int(1),
        "learning_rate": _positive_float,
        "optimizer": _choice(OPTIMIZERS),
        "gradient": _choice(GRADIENTS),
        "momentum": _momentum,
        "dtype": _choice(DTYPES),
        "threads": _int(1, 256),
    },
    "report": {"misclassified": _int(0, 400)},
}
SECTIONS = {"data": DataParams, "model": ModelParams, "train": TrainParams, "report": ReportParams}


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads 1e-3 and 1.0e3 as floats (YAML 1.2, as DVC reads them).

    PyYAML follows YAML 1.1, where an exponent needs a dot and a sign: it would
    load `learning_rate: 1e-3` as the string '1e-3'. And like DVC it refuses a
    key written twice, where PyYAML would silently keep the last one.
    """

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if isinstance(key, str) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key '{key}' is written twice (lines {seen[key]} and {line}); keep one",
                    key_node.start_mark)
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate params.yaml. Raises ParamsError (exit code 2) on any problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ParamsError(f"{path}: file not found (run from the repository root)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ParamsError(f"{path}: cannot read ({e})") from None
    try:
        raw = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ParamsError(f"{path}: not valid YAML{where}: {problem}") from None
    return parse_params(raw, str(path))


def parse_params(raw: Any, where: str = "params.yaml") -> Params:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ParamsError(f"{where}: expected a mapping of sections (seed, data, model, train, report), got {type(raw).__name__}")
    allowed_top = ["seed", *SECTIONS]
    for key in raw:
        if key not in allowed_top:
            raise ParamsError(f"{where}: unknown key '{key}'{_hint(key, allowed_top)} (allowed: {', '.join(allowed_top)})")
    seed = raw.get("seed", Params.seed)
    problem = _int(0, 2**32 - 1)(seed)
    if problem:
        raise ParamsError(f"{where}: seed = {_show(seed)}: {problem}")
    sections = {}
    for name, cls in SECTIONS.items():
        section = raw.get(name, {})
        if section is None:
            section = {}
        if not isinstance(section, dict):
            raise ParamsError(f"{where}: {name} = {_show(section)}: expected a mapping of keys")
        checks = CHECKS[name]
        for key, value in section.items():
            if key not in checks:
                raise ParamsError(f"{where}: unknown key '{name}.{key}'{_hint(key, list(checks))} (allowed: {', '.join(checks)})")
            problem = checks[key](value)
            if problem:
                raise ParamsError(f"{where}: {name}.{key} = {_show(value)}: {problem}")
        sections[name] = cls(**section)
    p = Params(seed=seed, **sections)
    if p.data.source == "idx" and p.data.dir is None:
        raise ParamsError(f"{where}: data.dir = null: expected a folder path when data.source is idx")
    return p


def _show(value) -> str:
    """A value as params.yaml spells it: null, true/false, 'text', numbers."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def _hint(key: str, options: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(str(key), options, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def check_batch_size(p: Params, n_train: int, where: str = "params.yaml") -> None:
    """The one range check that needs the data: a batch cannot exceed the training set."""
    if p.train.batch_size > n_train:
        raise ParamsError(
            f"{where}: train.batch_size = {p.train.batch_size}: expected at most the training set size ({n_train})"
        )


def as_dict(p: Params) -> dict:
    return dataclasses.asdict(p)
