"""The value checkers, in one place: each raises ``ValueError`` naming the parameter as the user wrote it
(``section.key`` in a TOML file, the argument name in the API), with the allowed values or range."""
from __future__ import annotations

import math
from dataclasses import fields

import numpy as np


def is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def is_num(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def check_int(key, v, lo=0, hi=None):
    if not is_int(v) or v < lo or (hi is not None and v > hi):
        rng = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ValueError(f"{key} must be an integer {rng}, got {v!r}")


def check_float(key, v, lo=None, hi=None, lo_open=False, hi_open=False, allow_inf=False):
    if not is_num(v) or math.isnan(v) or (math.isinf(v) and not allow_inf):
        raise ValueError(f"{key} must be a finite number, got {v!r}")
    bad = ((lo is not None and (v < lo or (lo_open and v == lo)))
           or (hi is not None and (v > hi or (hi_open and v == hi))))
    if bad:
        lb = "" if lo is None else ("(" if lo_open else "[") + f"{lo:g}"
        hb = "" if hi is None else f"{hi:g}" + (")" if hi_open else "]")
        if lo is not None and hi is not None:
            rng = f"in {lb}, {hb}"
        elif lo is not None:
            rng = f"{'>' if lo_open else '>='} {lo:g}"
        else:
            rng = f"{'<' if hi_open else '<='} {hi:g}"
        raise ValueError(f"{key} must be {rng}, got {v!r}")


def coerce_floats(obj) -> None:
    """Store numbers of float-valued fields as float (so that 10 and 10.0 compare equal)."""
    for f in fields(obj):
        v = getattr(obj, f.name)
        if isinstance(f.default, float) and is_num(v):
            object.__setattr__(obj, f.name, float(v))


def check_choice(key, v, allowed):
    if v not in allowed:
        import difflib
        hint = difflib.get_close_matches(str(v), [str(a) for a in allowed], n=1)
        extra = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise ValueError(f"{key} must be one of {list(allowed)}, got {v!r}{extra}")


def check_bool(key, v):
    if not isinstance(v, (bool, np.bool_)):
        raise ValueError(f"{key} must be true or false, got {v!r}")


def check_names(key, v, allowed):
    if isinstance(v, str) or not isinstance(v, (list, tuple)) or not v:
        raise ValueError(f"{key} must be a non-empty list of names from {list(allowed)}, got {v!r}")
    for p in v:
        check_choice(f"{key} entry", p, allowed)
    if len(set(v)) != len(v):
        raise ValueError(f"{key} lists a name twice: {list(v)}")


