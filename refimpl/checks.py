"""The value checkers, in one place: each raises ``ValueError`` naming the parameter as the user wrote it
(``section.key`` in a TOML file, the argument name in the API), with the allowed values or range.

This module imports nothing numerical (NumPy scalars are recognised through :mod:`numbers`), so that
the command-line parsers, which check their flags with it, stay immediate."""

from __future__ import annotations

import math
import numbers
from dataclasses import fields


def is_bool(v) -> bool:
    """``True``/``False`` or a NumPy bool (which is not a :class:`numbers.Integral`)."""
    return isinstance(v, bool) or (type(v).__module__ == "numpy" and type(v).__name__ in ("bool", "bool_"))


def is_int(v) -> bool:
    # bool is an int subclass, but T=True is a bug, not a length
    return isinstance(v, numbers.Integral) and not is_bool(v)


def is_num(v) -> bool:
    return isinstance(v, numbers.Real) and not is_bool(v)


def check_int(key, v, lo=0, hi=None, allow_none=False):
    """``v`` as an ``int`` in ``[lo, hi]`` (``None`` passes through with ``allow_none``)."""
    if v is None and allow_none:
        return None
    if not is_int(v) or v < lo or (hi is not None and v > hi):
        rng = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        none = " or None" if allow_none else ""
        raise ValueError(f"{key} must be an integer {rng}{none}, got {v!r}")
    return int(v)


def check_float(key, v, lo=None, hi=None, lo_open=False, hi_open=False, allow_inf=False, allow_none=False):
    """``v`` as a finite ``float`` in the range given (open ends with ``lo_open``/``hi_open``)."""
    if v is None and allow_none:
        return None
    none = " or None" if allow_none else ""
    if not is_num(v) or math.isnan(v) or (math.isinf(v) and not allow_inf):
        what = "a number" if allow_inf else "a finite number"
        raise ValueError(f"{key} must be {what}{_range(lo, hi, lo_open, hi_open, ' ')}{none}, got {v!r}")
    bad = (lo is not None and (v < lo or (lo_open and v == lo))) or (hi is not None and (v > hi or (hi_open and v == hi)))
    if bad:
        raise ValueError(f"{key} must be{_range(lo, hi, lo_open, hi_open, ' ')}{none}, got {v!r}")
    return float(v)


def check_positive(key, v, allow_zero=False, allow_none=False):
    """A finite number ``> 0`` (``>= 0`` with ``allow_zero``)."""
    return check_float(key, v, lo=0.0, lo_open=not allow_zero, allow_none=allow_none)


def _range(lo, hi, lo_open, hi_open, sep="") -> str:
    if lo is None and hi is None:
        return ""
    if lo is not None and hi is not None:
        return f"{sep}in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    if lo is not None:
        return f"{sep}{'>' if lo_open else '>='} {lo:g}"
    return f"{sep}{'<' if hi_open else '<='} {hi:g}"


def coerce_floats(obj) -> None:
    """Store numbers of float-valued fields as float (so that 10 and 10.0 compare equal)."""
    for f in fields(obj):
        v = getattr(obj, f.name)
        if isinstance(f.default, float) and is_num(v):
            object.__setattr__(obj, f.name, float(v))


def check_choice(key, v, allowed):
    """``v`` if it is one of ``allowed``; else an error with the closest allowed value."""
    if isinstance(v, (list, dict)) or v not in allowed:
        import difflib

        hint = difflib.get_close_matches(str(v), [str(a) for a in allowed], n=1)
        extra = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise ValueError(f"{key} must be one of {list(allowed)}, got {v!r}{extra}")
    return v


def check_bool(key, v):
    if not is_bool(v):
        raise ValueError(f"{key} must be true or false, got {v!r}")
    return bool(v)


def check_names(key, v, allowed):
    """A non-empty list of distinct names from ``allowed``."""
    if isinstance(v, str) or not isinstance(v, (list, tuple)) or not v:
        raise ValueError(f"{key} must be a non-empty list of names from {list(allowed)}, got {v!r}")
    for p in v:
        check_choice(f"{key} entry", p, allowed)
    if len(set(v)) != len(v):
        raise ValueError(f"{key} lists a name twice: {list(v)}")
    return tuple(v)


def check_numbers(key, value):
    """A real number, or (``tau_mem``, ``tau_syn``) a sequence of them: not a string or a bool, which
    NumPy would turn into numbers without a word."""
    import numpy as np

    items = value if isinstance(value, (list, tuple, np.ndarray)) else [value]
    for v in np.ravel(np.asarray(items, dtype=object)):
        if isinstance(v, (str, bytes)) or not is_num(v):
            raise ValueError(f"{key} must be a number, got {value!r}")


def check_positive_values(key, value, allow_zero=False):
    """A number or a sequence of numbers, each finite and ``> 0`` (``>= 0`` with ``allow_zero``)."""
    import numpy as np

    check_numbers(key, value)
    arr = np.asarray(value, dtype=float)
    if arr.size == 0 or not np.all(np.isfinite(arr)):
        raise ValueError(f"{key} must be finite, got {value!r}")
    if np.any(arr < 0) or (not allow_zero and np.any(arr == 0)):
        raise ValueError(f"{key} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")
