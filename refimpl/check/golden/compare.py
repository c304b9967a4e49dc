"""Comparing a candidate with the reference quantity by quantity (``refimpl validate``; docs/golden.md)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from refimpl.check.golden.cases import CASE_NAMES
from refimpl.check.golden.events import EVENT_CASE_NAMES, EXACT_KEYS, expected_exact_paths, is_exact
from refimpl.check.golden.files import GoldenFile, one_line, read_golden
from refimpl.check.golden.schema import SCHEMA, FormatError, config_from_dict

# ---------------------------------------------------------------------------
# comparison
# ---------------------------------------------------------------------------

#: quantity kind → (rtol, atol) for ``|c - r| <= atol + rtol |r|``; see docs/golden.md
TOLERANCES = {
    "copy": (0.0, 0.0),  # params, inputs, targets, jacobian/steps: bit for bit
    "q0": (0.0, 1e-15),  # lyapunov/Q0: LAPACK's QR; the BLAS kernel moves its last bits
    "state": (1e-10, 1e-12),  # forward/layer<l>/V, I, x
    "spikes": (1e-10, 1e-12),  # forward/layer<l>/S (0/1 in surrogate mode: any flip fails)
    "readout": (1e-10, 1e-12),  # forward/readout/y
    "loss": (1e-10, 1e-12),
    "grad": (1e-8, 1e-10),
    "jacobian": (1e-10, 1e-12),
    "spectrum": (1e-8, 1e-10),
    "flossing_loss": (1e-8, 1e-12),
    "flossing_grad": (1e-7, 1e-9),
    # event-based cases (format version 2): spike times in ms, the spectrum in 1/s
    "spike_units": (0.0, 0.0),
    "spike_times": (0.0, 1e-9),
    "exact_state": (1e-9, 1e-11),
    "exact_loss": (1e-9, 1e-12),
    "exact_grad": (1e-7, 1e-10),
    "exact_spectrum": (1e-8, 1e-8),
}
COPIES = ("inputs", "targets", "jacobian/steps", "lyapunov/Q0", "events/times", "events/units", "samples/times",
    "readout/W_out")  # fmt: skip
#: the event-based quantities whose length is the number of spikes: a different count is a mismatch
SPIKE_LISTS = ("exact/spikes/times", "exact/spikes/units")
#: the order of the quantities in a case (docs/golden-format.md's table)
ORDER = ("params/", "inputs", "targets", "forward/", "loss", "grad/", "jacobian/steps", "jacobian/D",
    "lyapunov/Q0", "lyapunov/spectrum", "flossing/loss", "flossing/grad/", "events/", "samples/times", "readout/",
    "exact/spikes/times", "exact/spikes/units", "exact/samples/V", "exact/loss", "exact/grad/", "exact/spectrum")  # fmt: skip


def _order_key(path: str):
    for i, prefix in enumerate(ORDER):
        if path == prefix or (prefix.endswith("/") and path.startswith(prefix)):
            sub = 0
            if prefix == "forward/":  # layer by layer, V I S (x), then the readout
                sub = 99 if path.startswith("forward/readout") else 0
                return (i, sub, path.split("/")[1], "VISx".find(path[-1]))
            return (i, sub, path, 0)
    return (len(ORDER), 0, path, 0)


def kind_of(path: str) -> str:
    """The tolerance class of a golden path."""
    if path == "lyapunov/Q0":
        return "q0"
    if path.startswith("params/") or path in COPIES:
        return "copy"
    if path.startswith("exact/grad/"):
        return "exact_grad"
    if path.startswith("exact/"):
        return {"exact/spikes/units": "spike_units", "exact/spikes/times": "spike_times", "exact/samples/V": "exact_state",
            "exact/loss": "exact_loss", "exact/spectrum": "exact_spectrum"}.get(path, "other")  # fmt: skip
    if path.startswith("forward/readout/"):
        return "readout"
    if path.startswith("forward/"):
        return "spikes" if path.endswith("/S") else "state"
    if path.startswith("flossing/grad/"):
        return "flossing_grad"
    return {"loss": "loss", "jacobian/D": "jacobian", "lyapunov/spectrum": "spectrum",
        "flossing/loss": "flossing_loss"}.get(path, "grad" if path.startswith("grad/") else "other")  # fmt: skip


@dataclass
class Row:
    case: str
    quantity: str
    kind: str
    max_abs: float
    max_rel: float
    rtol: float
    atol: float
    ok: bool
    note: str = ""


@dataclass
class Report:
    reference: GoldenFile
    candidate: GoldenFile
    rows: list = field(default_factory=list)
    missing: dict = field(default_factory=dict)  # case -> [paths] (or ["(whole case)"])
    extra: dict = field(default_factory=dict)  # case -> [paths the reference does not have]
    strict: bool = False  # every quantity of the reference must be in the candidate (else exit 1)

    @property
    def mismatches(self) -> list:
        return [r for r in self.rows if not r.ok]

    @property
    def n_reference(self) -> int:
        """Datasets of the reference (every quantity that could be compared)."""
        return sum(len(d) for d in self.reference.cases.values())

    @property
    def n_compared(self) -> int:
        """Datasets of the reference that the candidate has."""
        return sum(sum(p in self.candidate.cases.get(n, {}) for p in d) for n, d in self.reference.cases.items())

    @property
    def exit_code(self) -> int:
        return 1 if self.mismatches or (self.strict and self.n_compared < self.n_reference) else 0


def _errors(c: np.ndarray, r: np.ndarray):
    """Elementwise ``|c - r|`` (0 where equal, inf where NaN) and the max relative error over ``r != 0``."""
    c = np.atleast_1d(c).astype(np.float64)
    r = np.atleast_1d(r).astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(c - r)
    diff[c == r] = 0.0
    diff[np.isnan(diff)] = np.inf
    nz = r != 0
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = float(np.max(diff[nz] / np.abs(r[nz]))) if np.any(nz) else float("nan")
    return diff, rel


def _spike_note(case, path, c, r, ref_data, config) -> str:
    """Where spikes differ, with the reference margin ``V - θ`` at the first flip."""
    flips = np.argwhere(c != r)
    if flips.size == 0:
        return ""
    t, b, n = (int(x) for x in flips[0])
    cvals = c[tuple(flips.T)]
    not01 = int(np.sum((cvals != 0) & (cvals != 1)))
    if not01:
        return (
            f"{len(flips)} entries differ, {not01} of them neither 0 nor 1 (spikes must be 0/1 in "
            f"surrogate mode), first at t={t} b={b} neuron={n}"
        )
    msg = f"{len(flips)} spike(s) flipped, first at t={t} b={b} neuron={n}"
    vpath = path[:-1] + "V"
    if vpath in ref_data and config is not None and "theta" in config:
        margin = float(ref_data[vpath][t, b, n]) - float(config["theta"])
        msg += f" (reference V-θ there = {margin:.3g})"
    return msg + "; everything downstream differs too"


def _first_divergence(case_rows: list, cand: dict, ref: dict) -> str:
    """The earliest time step at which a forward state of the case disagrees."""
    first = None
    for r in case_rows:
        if r.ok or r.kind not in ("state", "spikes"):
            continue
        c, rv = cand[r.quantity], ref[r.quantity]
        diff, _ = _errors(c, rv)
        tol = r.atol + r.rtol * np.abs(rv)
        bad = np.argwhere(diff > tol)
        if bad.size:
            t = int(bad[:, 0].min())
            if first is None or t < first[0]:
                first = (t, r.quantity)
    if first is None:
        return ""
    return f"forward states first disagree at t={first[0]} ({first[1]})"


def _compress(paths: list, rdata: dict) -> list:
    """Missing paths, a group written as ``group/*`` when all of it is missing."""
    out, seen = [], set()
    for p in paths:
        parts = p.split("/")
        group = None
        for depth in range(1, len(parts)):
            prefix = "/".join(parts[:depth]) + "/"
            if all(q in paths for q in rdata if q.startswith(prefix)):
                group = prefix + "*"
                break
        item = group or p
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out


def _config_diff(ref_cfg: dict, cand_cfg: dict) -> list:
    """GOLDEN keys (and refimpl's lyapunov.seed) whose values differ; extra keys are allowed."""
    diffs = []
    for key, kind in (EXACT_KEYS if is_exact(ref_cfg) else SCHEMA).items():
        subkeys = [(key, k2) for k2 in kind] if isinstance(kind, dict) else [(key,)]
        if key == "lyapunov":
            subkeys.append(("lyapunov", "seed"))
        for sk in subkeys:
            rv, cv = ref_cfg, cand_cfg
            for part in sk:
                rv = rv.get(part, "(missing)") if isinstance(rv, dict) else "(missing)"
                cv = cv.get(part, "(missing)") if isinstance(cv, dict) else "(missing)"
            if sk == ("lyapunov", "seed") and cv == "(missing)":
                continue  # refimpl's own key: other implementations need not copy it
            if isinstance(rv, (int, float)) and isinstance(cv, (int, float)) and not isinstance(cv, bool):
                same = float(rv) == float(cv)
            elif isinstance(rv, list) and isinstance(cv, list):
                same = len(rv) == len(cv) and all(
                    (float(a) == float(b)) if isinstance(a, (int, float)) and isinstance(b, (int, float)) else a == b
                    for a, b in zip(rv, cv)
                )
            else:
                same = rv == cv
            if not same:
                diffs.append(f"{'.'.join(sk)}={cv!r} (reference {rv!r})")
    return diffs


def expected_paths(config) -> list:
    """Every dataset docs/golden-format.md requires of a case with this config (the damaged-reference check)."""
    from refimpl.dynamics.flossing import flossed_keys
    from refimpl.model.network import param_shapes

    if is_exact(config):
        return expected_exact_paths(config)
    cfg, _, _, fcfg = config_from_dict(config)
    keys = list(param_shapes(cfg))
    out = [f"params/{k}" for k in keys] + ["inputs", "targets"]
    for l in range(cfg.n_layers):
        out += [f"forward/layer{l + 1}/{q}" for q in (("V", "I", "S") if cfg.cell == "clif" else ("x",))]
    out += ["forward/readout/y", "loss"] + [f"grad/{k}" for k in keys]
    out += ["jacobian/steps", "jacobian/D", "lyapunov/Q0", "lyapunov/spectrum", "flossing/loss"]
    return out + [f"flossing/grad/{k}" for k in flossed_keys(cfg, fcfg)]


def check_reference(ref: GoldenFile) -> None:
    """``FormatError`` (exit 2) if the reference lacks a case's config or a quantity its config requires."""
    for name, data in ref.cases.items():
        if ref.configs[name] is None:
            raise FormatError(f"reference {ref.path} is damaged: case {name!r} has no config attribute")
        try:
            need = expected_paths(ref.configs[name])
        except ValueError as exc:
            raise FormatError(f"reference {ref.path} is damaged: case {name!r} has an invalid config ({one_line(exc)})") from None
        lost = [q for q in need if q not in data]
        if lost:
            shown = ", ".join(lost[:4]) + (f" (and {len(lost) - 4} more)" if len(lost) > 4 else "")
            raise FormatError(f"reference {ref.path} is damaged: case {name!r} lacks {shown}")


def compare(reference, candidate, rtol: float | None = None, atol: float | None = None, strict: bool = False) -> Report:
    """Compare every quantity present in ``candidate`` with ``reference`` (paths or :class:`GoldenFile`).

    ``rtol``/``atol``, when given, replace the per-kind defaults of
    :data:`TOLERANCES` for every computed quantity (copies of the inputs are
    always compared bit for bit). Raises :class:`FormatError` if the
    candidate is not in the format (unknown case, wrong shape, a dataset where
    the reference has a group or the other way round).
    """
    ref = reference if isinstance(reference, GoldenFile) else read_golden(reference, "reference")
    check_reference(ref)
    cand = candidate if isinstance(candidate, GoldenFile) else read_golden(candidate, "candidate")
    unknown = [n for n in cand.cases if n not in ref.cases]
    if unknown:
        raise FormatError(f"candidate {cand.path}: unknown case(s) {unknown}; the reference has {sorted(ref.cases)}")
    # layout and shapes first: a file not in the format gets exit 2 before any comparison
    for name, data in cand.cases.items():
        rdata = ref.cases[name]
        for path, arr in data.items():
            if path in ref.groups[name]:
                raise FormatError(f"candidate {cand.path}: {name}/{path} is a dataset, the format has a group there")
            if path in rdata and arr.shape != rdata[path].shape and path not in SPIKE_LISTS:
                raise FormatError(f"candidate {cand.path}: {name}/{path} has shape {arr.shape}, expected {rdata[path].shape}")
        for gpath in cand.groups[name]:
            if gpath in rdata:
                raise FormatError(f"candidate {cand.path}: {name}/{gpath} is a group, the format has a dataset there")
    rep = Report(ref, cand, strict=strict)
    order = {n: i for i, n in enumerate(CASE_NAMES + EVENT_CASE_NAMES)}
    for name in sorted(ref.cases, key=lambda n: (order.get(n, len(order)), n)):
        if name not in cand.cases:
            rep.missing[name] = ["(whole case)"]
            continue
        rdata, cdata = ref.cases[name], cand.cases[name]
        ref_cfg, cand_cfg = ref.configs[name], cand.configs[name]
        missing = _compress([p for p in sorted(rdata, key=_order_key) if p not in cdata], rdata)
        if cand_cfg is None:
            missing.insert(0, "attr config")
        if missing:
            rep.missing[name] = missing
        extra = [p for p in cdata if p not in rdata]
        if extra:
            rep.extra[name] = extra
        case_rows = []
        if cand_cfg is not None and ref_cfg is not None:
            diffs = _config_diff(ref_cfg, cand_cfg)
            case_rows.append(
                Row(
                    name,
                    "attr config",
                    "config",
                    0.0 if not diffs else float("nan"),
                    float("nan"),
                    0.0,
                    0.0,
                    not diffs,
                    "" if not diffs else "differs: " + ", ".join(diffs),
                )
            )
        copies = []
        for path in sorted(rdata, key=_order_key):
            if path not in cdata:
                continue
            rv, cv = rdata[path], cdata[path]
            kind = kind_of(path)
            if path in SPIKE_LISTS and cv.shape != rv.shape:  # another number of spikes: a result, not a format error
                case_rows.append(Row(name, path, kind, math.inf, math.inf, *TOLERANCES[kind], False,
                    f"{cv.size} spikes, the reference has {rv.size}"))  # fmt: skip
                continue
            rt, at = TOLERANCES.get(kind, (1e-10, 1e-12))
            if kind not in ("copy", "q0"):  # --rtol/--atol loosen computed quantities only
                rt = rt if rtol is None else rtol
                at = at if atol is None else atol
            diff, rel = _errors(cv, rv)
            ok = bool(np.all(diff <= at + rt * np.abs(np.atleast_1d(rv).astype(np.float64))))
            row = Row(name, path, kind, float(diff.max()) if diff.size else 0.0, rel, rt, at, ok)
            if kind == "copy":
                copies.append(row)
                continue
            if not ok and kind == "spikes" and not (ref_cfg or {}).get("smooth", False):
                row.note = _spike_note(name, path, cv, rv, rdata, ref_cfg)
            case_rows.append(row)
        if copies:
            bad = [r.quantity for r in copies if not r.ok]
            rels = [r.max_rel for r in copies if np.isfinite(r.max_rel)]
            case_rows.insert(
                1 if case_rows and case_rows[0].kind == "config" else 0,
                Row(
                    name,
                    f"copied inputs ({len(copies)})",
                    "copy",
                    max(r.max_abs for r in copies),
                    max(rels) if rels else float("nan"),
                    0.0,
                    0.0,
                    not bad,
                    "" if not bad else "differ from the reference, so the candidate computed on other data: " + ", ".join(bad),
                ),
            )
        first = _first_divergence(case_rows, cdata, rdata)
        if first:
            for r in case_rows:
                if not r.ok and r.kind in ("state", "spikes") and not r.note:
                    r.note = first
                    break
        rep.rows.extend(case_rows)
    return rep


def _fmt(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.1e}"


def _tol(r: Row) -> str:
    if r.kind == "config":
        return "equal"
    if r.kind == "copy":
        return "exact"
    return f"rtol {r.rtol:.0e} atol {r.atol:.0e}"


def format_report(rep: Report, only_mismatches: bool = False) -> str:
    """The table of ``refimpl validate`` and its summary."""
    lines = [f"reference: {rep.reference.path} ({rep.reference.generator})",
        f"candidate: {rep.candidate.path} ({rep.candidate.generator})"]  # fmt: skip
    w = max([len(r.case) for r in rep.rows] + [4])
    q = max([len(r.quantity) for r in rep.rows] + [8])
    head = f"{'case':<{w}}  {'quantity':<{q}}  {'max abs err':>11}  {'max rel err':>11}  {'tolerance':<21}  status"
    lines.append(head)
    lines.append("-" * len(head))
    for r in rep.rows:
        if only_mismatches and r.ok:
            continue
        line = (
            f"{r.case:<{w}}  {r.quantity:<{q}}  {_fmt(r.max_abs):>11}  {_fmt(r.max_rel):>11}  "
            f"{_tol(r):<21}  {'ok' if r.ok else 'MISMATCH'}"
        )
        if r.note:
            line += f"  ({r.note})"
        lines.append(line)
    # worst per kind
    lines.append("")
    lines.append("worst error per quantity kind:")
    kinds = {}
    for r in rep.rows:
        kinds.setdefault(r.kind, []).append(r)
    for kind, rows in kinds.items():
        worst = max(rows, key=lambda r: r.max_abs if np.isfinite(r.max_abs) else np.inf)
        worst_rel = max((r.max_rel for r in rows if np.isfinite(r.max_rel)), default=float("nan"))
        bad = sum(not r.ok for r in rows)
        lines.append(
            f"  {kind:<14} {len(rows):4d} compared  max abs {_fmt(worst.max_abs):>8}  "
            f"max rel {_fmt(worst_rel):>8}  ({worst.case}/{worst.quantity})" + (f"  {bad} MISMATCH" if bad else "")
        )
    if rep.missing:
        lines.append("")
        lines.append("missing from the candidate (not compared):")
        for name, paths in rep.missing.items():
            lines.append(f"  {name}: {', '.join(paths)}")
    if rep.extra:
        lines.append("")
        lines.append("in the candidate but not in the reference (ignored):")
        for name, paths in rep.extra.items():
            lines.append(f"  {name}: {', '.join(paths)}")
    n_bad = len(rep.mismatches)
    n_missing = sum(len(v) for v in rep.missing.values())
    lines.append("")
    lines.append(
        f"{len(rep.rows)} quantities compared in {len({r.case for r in rep.rows})} case(s): "
        f"{len(rep.rows) - n_bad} ok, {n_bad} MISMATCH; {n_missing} missing"
        + (f" ({sum(v == ['(whole case)'] for v in rep.missing.values())} whole cases)" if rep.missing else "")
    )
    lines.append(
        f"{rep.n_compared} of the reference's {rep.n_reference} datasets were in the candidate "
        f"({len(rep.reference.cases) - sum(v == ['(whole case)'] for v in rep.missing.values())} "
        f"of {len(rep.reference.cases)} cases)"
    )
    incomplete = rep.n_compared < rep.n_reference
    if n_bad:
        lines.append("result: MISMATCH (exit 1)")
    elif rep.strict and incomplete:
        lines.append("result: INCOMPLETE: --strict needs every quantity of the reference (exit 1)")
    elif not rep.rows:
        lines.append("result: nothing to compare (exit 0)")
    else:
        lines.append(
            "result: all present quantities agree (exit 0)" + ("; pass --strict to require all of them" if incomplete else "")
        )
    return "\n".join(lines)
