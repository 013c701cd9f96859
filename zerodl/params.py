"""params.yaml -> typed, validated settings; one clear line per bad key.

The dataclasses below mirror params.yaml and are the only other place a
default lives. Their types and bounds are the checks (pydantic runs them):
unknown keys (typos), wrong types and values out of range all raise
ParamsError naming the key, the value and what is allowed, in words read off
the same type and bounds (zerodl.params_words). A new key is one line here and its comment in
params.yaml.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import field
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

import yaml
from pydantic import ConfigDict, Field, Strict, TypeAdapter, ValidationError
from pydantic.dataclasses import dataclass

from .params_words import cut, explain, fields, show
from .errors import ParamsError
from .io import path_kind

# Strict: YAML's true is not an integer and a quoted '5' is not a number.
Int = Annotated[int, Strict()]
# Not a float: an integer stays one (learning_rate: 1 is stored as 1, not 1.0). With no
# upper bound, give it allow_inf_nan=False (and its words say "finite").
Number = Union[Annotated[int, Strict()], Annotated[float, Strict()]]
Folder = Annotated[str, Strict(), Field(pattern=r"\S")]

# Frozen: settings are read once. extra="forbid": a key not declared here is an error, not ignored.
_section = dataclass(frozen=True, config=ConfigDict(extra="forbid"))


@_section
class DataParams:
    source: Literal["mnist-5k", "mnist", "fashion-mnist", "idx"] = "mnist-5k"
    dir: Optional[Folder] = Field(None, description="a folder path or null")
    test_fraction: Number = Field(0.2, gt=0, lt=1)


@_section
class ModelParams:
    hidden_size: Int = Field(50, ge=1, le=100_000)
    weight_init_std: Union[Annotated[Number, Field(gt=0, allow_inf_nan=False)], Literal["he", "xavier"]] = 0.01
    activation: Literal["relu", "sigmoid"] = "relu"
    dropout: Number = Field(0.0, ge=0, lt=1)


@_section
class TrainParams:
    iters: Optional[Int] = Field(10000, ge=1, le=10_000_000)  # or epochs: exactly one of the two is set
    epochs: Optional[Int] = Field(None, ge=1, le=100_000)
    batch_size: Int = Field(100, ge=1)
    learning_rate: Number = Field(0.1, gt=0, allow_inf_nan=False)
    optimizer: Literal["sgd", "momentum", "adagrad", "rmsprop", "adam"] = "sgd"
    gradient: Literal["backprop", "numerical"] = "backprop"
    momentum: Number = Field(0.9, ge=0, lt=1)
    weight_decay: Number = Field(0.0, ge=0, allow_inf_nan=False)
    dtype: Literal["float32", "float64"] = "float32"
    threads: Int = Field(1, ge=1, le=256)


@_section
class ReportParams:
    misclassified: Int = Field(25, ge=0, le=400)


@_section
class Params:
    seed: Int = Field(0, ge=0, le=2**32 - 1)
    data: DataParams = field(default_factory=DataParams)
    model: ModelParams = field(default_factory=ModelParams)
    train: TrainParams = field(default_factory=TrainParams)
    report: ReportParams = field(default_factory=ReportParams)


_VALIDATE = TypeAdapter(Params).validate_python

_MAX_BYTES = 1 << 20  # params.yaml holds a few dozen settings; reading stops here
_MAX_DEPTH = 10  # the file, a section, a value: anything much deeper is not params


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads 1e-3 and 1.0e3 as floats (YAML 1.2, as DVC reads them).

    PyYAML follows YAML 1.1, where an exponent needs a dot and a sign: it would
    load `learning_rate: 1e-3` as the string '1e-3'. And like DVC it refuses a
    key written twice, where PyYAML would silently keep the last one.
    It refuses aliases (*name) too: nine of them nested make a 400-byte file
    that stands for a billion values (DVC expands them all), and values nested
    deeper than _MAX_DEPTH, so that loading costs no more than the file's size.
    """

    def __init__(self, stream):
        super().__init__(stream)
        self._path: list = []  # the keys down to the node being composed (None for list items, keys)

    def compose_node(self, parent, index):
        self._path.append(index.value if isinstance(index, yaml.ScalarNode) else None)
        try:
            event = self.peek_event()
            alias = isinstance(event, yaml.AliasEvent)
            if alias or len(self._path) > _MAX_DEPTH:
                key, at = cut(".".join(k for k in self._path if k) or "a key"), f"line {event.start_mark.line + 1}"
                raise _Refused(f"{key} = *{cut(event.anchor)}: expected a value written out, not a YAML alias ({at})"
                               if alias else f"{key}: lists or mappings nested too deep ({at}); expected a plain value")
            return super().compose_node(parent, index)
        finally:
            self._path.pop()

    def construct_object(self, node, deep=False):
        try:
            return super().construct_object(node, deep=deep)
        except ValueError as e:  # an integer of 5000 digits, a date 2024-13-01
            raise yaml.constructor.ConstructorError(None, None, str(e).split(";")[0], node.start_mark) from None

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if isinstance(key, str) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key '{cut(key)}' is written twice (lines {seen[key]} and {line}); keep one",
                    key_node.start_mark)
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


class _Refused(Exception):
    """YAML that parses, but that params.yaml does not take."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate params.yaml. Raises ParamsError (exit code 2) on any problem."""
    path = Path(path)
    kind = path_kind(path)
    if kind not in ("a file", "nothing"):  # a named pipe would wait for a writer, /dev/null pass as empty
        raise ParamsError(f"{path}: is {kind}, not a params file (expected YAML like params.yaml)")
    try:
        with open(path, "rb") as f:
            data = f.read(_MAX_BYTES + 1)
        if len(data) > _MAX_BYTES:
            raise ParamsError(f"{path}: more than {_MAX_BYTES >> 20} MiB; expected a small file of settings")
        text = data.decode("utf-8")
    except FileNotFoundError:
        raise ParamsError(f"{path}: file not found (run from the repository root)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ParamsError(f"{path}: cannot read ({e})") from None
    try:
        raw = yaml.load(text, Loader=_Loader)
    except _Refused as e:
        raise ParamsError(f"{path}: {e}") from None
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
        raise ParamsError(f"{where}: expected a mapping of sections ({', '.join(fields(Params))}), "
                          f"got {type(raw).__name__}")
    # An empty section (`train:` with nothing under it) means its defaults; seed is the one plain value.
    raw = {k: {} if v is None and k != "seed" else v for k, v in raw.items()}
    try:
        p = _VALIDATE(raw)
    except ValidationError as e:
        raise ParamsError(f"{where}: {explain(e, raw, Params)}") from None
    if p.data.source == "idx" and p.data.dir is None:
        raise ParamsError(f"{where}: data.dir = null: expected a folder path when data.source is idx")
    if (p.train.iters is None) == (p.train.epochs is None):
        both = ("both are set; to count in epochs, set train.iters: null" if p.train.iters is not None
                else "both are null")
        raise ParamsError(f"{where}: train.iters = {show(p.train.iters)}, train.epochs = {show(p.train.epochs)}: "
                          f"expected exactly one of them, the other null ({both})")
    return p


def iterations(p: Params, n_train: int) -> int:
    """train.iters, or train.epochs in iterations: an epoch is n_train // batch_size of them."""
    if p.train.iters is not None:
        return p.train.iters
    return p.train.epochs * max(n_train // p.train.batch_size, 1)


def check_batch_size(p: Params, n_train: int, where: str = "params.yaml") -> None:
    """The one range check that needs the data: a batch cannot exceed the training set."""
    if p.train.batch_size > n_train:
        raise ParamsError(
            f"{where}: train.batch_size = {p.train.batch_size}: expected at most the training set size ({n_train})"
        )


def as_dict(p: Params) -> dict:
    return dataclasses.asdict(p)
