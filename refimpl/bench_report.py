"""The report of ``refimpl bench``: its targets (issue 16), the table and the JSON file (docs/performance.md).

The rows are :class:`refimpl.bench.Row` records; this module reads their fields and computes nothing but the
targets' verdicts.
"""

from __future__ import annotations

import json
from dataclasses import asdict

from refimpl.io import atomic_text


#: the targets of issue 16: refimpl at least this many times faster than each peer, and spectrum and flossing
#: at N >= TARGET_PEAK_FROM at least TARGET_PEAK of the dgemm rate measured in the same run
TARGET_RATIO = {"pytorch": 10.0, "jax": 2.0}
TARGET_PEAK, TARGET_PEAK_FROM = 0.5, 256


def targets(rows: list, peak: float) -> list:
    """Every target that applies to a case: ``(case label, target, measured, met)``."""
    out = []
    for r in rows:
        for peer, ratio in (("pytorch", r.ratio), ("jax", r.jax_ratio)):
            if ratio == ratio:  # the peer ran
                want = TARGET_RATIO[peer]
                who = f"{peer} (checkpointing)" if r.case.checkpoint else peer
                out.append((r.case.label, f"{want:g}x faster than {who}", f"{ratio:.2f}x", bool(ratio >= want)))
        if r.case.kind != "bptt" and r.case.N >= TARGET_PEAK_FROM:
            frac = r.fraction_of(peak)
            out.append((r.case.label, f">= {TARGET_PEAK:.0%} of the dgemm rate", f"{frac:.1%}", bool(frac >= TARGET_PEAK)))
        if r.one_thread_s == r.one_thread_s:
            gain = r.one_thread_s / r.refimpl_s
            out.append((r.case.label, "no slower than 1 thread", f"{gain:.2f}x", bool(gain >= 1.0)))
    return out


def format_targets(rows: list, peak: float) -> str:
    found = targets(rows, peak)
    lines = [f"{'case':<38} {'target':<40} {'measured':>9}  result"]
    lines += [f"{c:<38} {t:<40} {m:>9}  {'met' if ok else 'MISSED'}" for c, t, m, ok in found]
    met = sum(ok for *_, ok in found)
    lines.append(f"targets met: {met} of {len(found)}")
    return "\n".join(lines)


def format_table(rows: list, peak: float) -> str:
    jx = any(r.jax_s == r.jax_s for r in rows)  # a JAX column only when the JAX peer ran
    head = (
        f"{'case':<38} {'refimpl s':>10} {'pytorch s':>10} {'ratio':>7} "
        + (f"{'jax s':>9} {'jax ratio':>9} " if jx else "")
        + f"{'GFLOP/s':>8} {'of peak':>7} {'pt GF/s':>8} {'ref MB':>8} {'pt MB':>9} {'need MB':>8} {'ref/need':>8}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        gf = r.flops / r.refimpl_s / 1e9
        gft = r.flops / r.torch_s / 1e9
        need = r.required_bytes
        lines.append(
            f"{r.case.label:<38} {r.refimpl_s:10.4f} {r.torch_s:10.4f} {r.ratio:7.1f} "
            + (f"{r.jax_s:9.4f} {r.jax_ratio:9.1f} " if jx else "")
            + f"{gf:8.2f} {r.fraction_of(peak):7.1%} {gft:8.2f} {r.refimpl_peak_bytes / 1e6:8.1f} "
            f"{r.torch_peak_bytes / 1e6:9.1f} {need / 1e6:8.1f} {r.refimpl_peak_bytes / need:8.2f}"
        )
    return "\n".join(lines)


def write_json(path, info: dict, startup: dict, rows: list, peak: float) -> None:
    """Every number of a bench run (``--out``), written atomically."""
    data = {
        "info": info,
        "startup_seconds": startup,
        "rows": [
            {
                **asdict(r.case),
                "label": r.case.label,
                "refimpl_s": r.refimpl_s,
                "torch_s": r.torch_s,
                "ratio": r.ratio,
                "ratio_of_medians": r.torch_s / r.refimpl_s,
                "refimpl_runs": r.refimpl_runs,
                "torch_runs": r.torch_runs,
                "torch_T": r.torch_T,
                "torch_method": r.torch_method,
                "rel_diff": r.rel_diff,
                "flops": r.flops,
                "refimpl_gflops": r.flops / r.refimpl_s / 1e9,
                "fraction_of_dgemm": r.fraction_of(peak),
                "dgemm_gflops_rounds": r.dgemm_gflops,
                "fraction_of_start_dgemm": r.flops / r.refimpl_s / 1e9 / peak,
                "refimpl_peak_bytes": r.refimpl_peak_bytes,
                "torch_peak_bytes": r.torch_peak_bytes,
                "required_bytes": r.required_bytes,
                "jax_s": r.jax_s,
                "jax_ratio": r.jax_ratio,
                "jax_ratio_of_medians": r.jax_s / r.refimpl_s,
                "jax_runs": r.jax_runs,
                "jax_compile_s": r.jax_compile_s,
                "jax_rel_diff": r.jax_rel_diff,
                "one_thread_s": r.one_thread_s,
                "drift": r.drift,
                "torch_storing_s": r.torch_storing_s,
                "jax_storing_s": r.jax_storing_s,
            }
            for r in rows
        ],
        "targets": [{"case": c, "target": t, "measured": m, "met": ok} for c, t, m, ok in targets(rows, peak)],
    }
    atomic_text(path, json.dumps(data, indent=1, default=float))
