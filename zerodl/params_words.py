"""params.yaml's problems in words: `key = value: expected <what the type allows>`.

The words are read off the same types and bounds that pydantic checks (zerodl.params),
so a message cannot say one range while the check enforces another. A value is shown
as params.yaml spells it, and cut short, whatever its size.
"""
from __future__ import annotations

from typing import Annotated, Literal, Union, get_args, get_origin

from pydantic import ValidationError


def fields(cls) -> dict:
    return getattr(cls, "__pydantic_fields__", {})


def explain(e: ValidationError, raw: dict, root) -> str:
    """The file's first problem, top to bottom, as `key = value: expected ...`; `root` is the
    dataclass of the whole file."""
    err = min(e.errors(include_url=False), key=lambda x: position(raw, x["loc"]))
    names, cls = [], root
    for part in err["loc"]:  # the loc's field names; past them: an unknown key or a union branch
        if part not in fields(cls):
            break
        info = fields(cls)[part]
        names.append(part)
        cls = info.annotation
    if err["type"] in ("unexpected_keyword_argument", "invalid_key"):
        key = err["input"] if err["type"] == "invalid_key" else err["loc"][len(names)]  # loc says 1 for true
        keys = list(fields(cls))
        return (f"unknown key '{cut('.'.join([*names, str(key)]))}'{hint(key, keys)} "
                f"(allowed: {', '.join(keys)})")
    expected = "a mapping of keys" if fields(cls) else info.description or allowed(info.annotation, info.metadata)
    return f"{'.'.join(names)} = {show(err['input'])}: expected {expected}"


def position(raw: dict, loc: tuple) -> list[int]:
    """Where a loc's keys stand in the file, so the first problem of the file is the one shown."""
    pos, node = [], raw
    for part in loc:
        if not isinstance(node, dict) or part not in node:
            break
        pos.append(list(node).index(part))
        node = node[part]
    return pos


_OPS = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}


def allowed(tp, meta=()) -> str:
    """What a type and its bounds allow, in words: 'an integer from 1 to 256', 'one of a | b'."""
    if get_origin(tp) is Annotated:
        tp, *more = get_args(tp)
        return allowed(tp, [*meta, *(m for a in more for m in getattr(a, "metadata", [a]))])
    args = get_args(tp)
    if get_origin(tp) is Literal:
        return "one of " + " | ".join(args)
    if get_origin(tp) is Union:
        options = [a for a in args if a is not type(None)]
        null = " or null" * (len(options) < len(args))
        if {get_args(a)[0] if get_origin(a) is Annotated else a for a in options} == {int, float}:  # Number
            finite = any(getattr(m, "allow_inf_nan", True) is False for m in meta)
            return ("a finite number" if finite else "a number") + bounds(meta) + null
        return ", or ".join(allowed(a, meta).removeprefix("one of ") for a in options) + null
    return "an integer" + bounds(meta) if tp is int else f"a {tp.__name__}"


def bounds(meta) -> str:
    """' from 1 to 256', ' >= 1', ' between 0 and 1 (exclusive)', ' in [0, 1)'."""
    b = {op: getattr(m, op) for m in meta for op in _OPS if hasattr(m, op)}
    lo = next((op for op in ("gt", "ge") if op in b), None)
    hi = next((op for op in ("lt", "le") if op in b), None)
    if not (lo and hi):
        return "".join(f" {_OPS[op]} {b[op]}" for op in (lo, hi) if op)
    if (lo, hi) == ("ge", "le"):
        return f" from {b[lo]} to {b[hi]}"
    if (lo, hi) == ("gt", "lt"):
        return f" between {b[lo]} and {b[hi]} (exclusive)"
    return f" in {'[' if lo == 'ge' else '('}{b[lo]}, {b[hi]}{']' if hi == 'le' else ')'}"


SHOWN = 60  # at most this many characters of a value (or a key) in a message


def show(value) -> str:
    """A value as params.yaml spells it: null, true/false, 'text', numbers, [lists], {mappings}.

    Cut at SHOWN characters, and walked only as far as it is shown: a list of
    a billion items costs what its first few do.
    """
    text = ""
    for token in tokens(value):
        text += token
        if len(text) > SHOWN:
            break
    return cut(text)


def tokens(value):
    if isinstance(value, dict):
        yield "{"
        for i, (k, v) in enumerate(value.items()):
            yield ", " * (i > 0)
            yield from tokens(k)
            yield ": "
            yield from tokens(v)
        yield "}"
    elif isinstance(value, (list, tuple, set, frozenset)):
        yield "["
        for i, v in enumerate(value):
            yield ", " * (i > 0)
            yield from tokens(v)
        yield "]"
    elif value is None or isinstance(value, bool):
        yield {None: "null", True: "true", False: "false"}[value]
    else:
        yield repr(value[:SHOWN + 1] if isinstance(value, (str, bytes)) else value)


def cut(text: str) -> str:
    return text if len(text) <= SHOWN else text[:SHOWN - 1] + "…"


def hint(key, options: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(str(key), options, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
