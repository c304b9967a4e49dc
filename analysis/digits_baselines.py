"""Issue 18, point 2: how hard is a spoken-digits set? Linear classifiers (multinomial logistic
regression, L2) on spike counts per channel (no timing) and on counts per channel and time bin, the class
balance and the durations (docs/digits.md). Works on any file in the SHD layout, the real SHD included.

    python analysis/digits_baselines.py digits/train.h5 digits/test.h5 [--bins 10] [--group 10] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before NumPy loads OpenBLAS

import numpy as np  # noqa: E402


def features(path, n_bins: int, group: int, t_max: float | None = None):
    """``(counts (n, C), binned (n, C·n_bins), labels, durations)``: spike counts of channel groups of
    ``group`` units, and the same per time bin of ``t_max / n_bins`` (``t_max``: the longest sample)."""
    import h5py

    with h5py.File(path, "r") as f:
        times, units, labels = f["spikes/times"][()], f["spikes/units"][()], f["labels"][()].astype(int)
    n_units = int(max(int(u.max()) for u in units if u.size)) + 1
    C = -(-n_units // group)
    dur = np.array([float(t.max()) if t.size else 0.0 for t in times])
    t_max = float(dur.max()) if t_max is None else t_max
    counts = np.zeros((len(labels), C))
    binned = np.zeros((len(labels), n_bins, C))
    for i, (t, u) in enumerate(zip(times, units)):
        c = u.astype(int) // group
        np.add.at(counts[i], c, 1.0)
        b = np.minimum((np.asarray(t, float) / t_max * n_bins).astype(int), n_bins - 1)
        np.add.at(binned[i], (b, c), 1.0)
    return counts, binned.reshape(len(labels), -1), labels, dur, t_max


def logistic_regression(X, y, n_classes: int, l2: float = 1e-3, seed: int = 0):
    """Weights of a multinomial logistic regression on standardized features (L-BFGS, L2 penalty)."""
    from scipy.optimize import minimize

    n, d = X.shape
    Y = np.eye(n_classes)[y]

    def f(w):
        W = w.reshape(d + 1, n_classes)
        Z = X @ W[:-1] + W[-1]
        Z -= Z.max(axis=1, keepdims=True)
        P = np.exp(Z)
        P /= P.sum(axis=1, keepdims=True)
        loss = -np.mean(np.sum(Y * np.log(np.maximum(P, 1e-300)), axis=1)) + 0.5 * l2 * np.sum(W[:-1] ** 2)
        G = np.vstack([X.T @ (P - Y) / n + l2 * W[:-1], (P - Y).mean(axis=0)])
        return loss, G.ravel()

    w0 = np.random.default_rng(seed).normal(0.0, 1e-3, (d + 1) * n_classes)
    return minimize(f, w0, jac=True, method="L-BFGS-B", options={"maxiter": 2000}).x.reshape(d + 1, n_classes)


def accuracy(W, X, y) -> float:
    return float(np.mean(np.argmax(X @ W[:-1] + W[-1], axis=1) == y))


def baselines(train_path, test_path, n_bins: int = 10, group: int = 10, l2: float = 1e-3) -> dict:
    c_tr, b_tr, y_tr, d_tr, t_max = features(train_path, n_bins, group)
    c_te, b_te, y_te, d_te, _ = features(test_path, n_bins, group, t_max)
    n_classes = int(max(y_tr.max(), y_te.max())) + 1
    out = {"n_train": int(y_tr.size), "n_test": int(y_te.size), "classes": n_classes,
        "class_counts_train": np.bincount(y_tr, minlength=n_classes).tolist(),
        "duration_s": {"train": np.percentile(d_tr, [0, 5, 50, 95, 100]).tolist(),
            "test": np.percentile(d_te, [0, 5, 50, 95, 100]).tolist()},
        "chance": float(np.bincount(y_te).max() / y_te.size)}  # fmt: skip
    for name, (Xtr, Xte) in (("counts", (c_tr, c_te)), ("time_binned", (b_tr, b_te))):
        mu, sd = Xtr.mean(axis=0), Xtr.std(axis=0) + 1e-9
        W = logistic_regression((Xtr - mu) / sd, y_tr, n_classes, l2)
        out[name] = {"features": int(Xtr.shape[1]), "train_acc": accuracy(W, (Xtr - mu) / sd, y_tr),
            "test_acc": accuracy(W, (Xte - mu) / sd, y_te)}  # fmt: skip
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("train")
    p.add_argument("test")
    p.add_argument("--bins", type=int, default=10, help="time bins of the timing baseline")
    p.add_argument("--group", type=int, default=10, help="units pooled per channel (700 units / 10 = 70)")
    p.add_argument("--l2", type=float, default=1e-3, help="L2 penalty")
    p.add_argument("--out", default=None, help="write the numbers as JSON")
    a = p.parse_args(argv)
    r = baselines(a.train, a.test, a.bins, a.group, a.l2)
    print(f"{r['n_train']} training, {r['n_test']} test samples, {r['classes']} classes; chance {r['chance']:.3f}")
    print(f"durations (s, 0/5/50/95/100 %): train {np.round(r['duration_s']['train'], 2).tolist()}, "
        f"test {np.round(r['duration_s']['test'], 2).tolist()}")  # fmt: skip
    for name in ("counts", "time_binned"):
        print(f"{name:>12}: {r[name]['features']} features, train accuracy {r[name]['train_acc']:.3f}, "
            f"test accuracy {r[name]['test_acc']:.3f}")  # fmt: skip
    if a.out:
        Path(a.out).write_text(json.dumps(r, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
