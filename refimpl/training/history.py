"""The logs of a run: per-epoch rows, spectra, flossing steps (:class:`History`), and :func:`read_log`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from refimpl.io import read_dict


EPOCH_FIELDS = ("epoch", "train_loss", "train_acc", "grad_norm", "test_loss", "test_acc", "grad_x0",
    "floss_steps", "epoch_time", "wall_time")  # fmt: skip
#: the gradient-dimensionality log, one row per logged spectrum of stage 0 (refimpl.dynamics.dimensionality)
DIM_FIELDS = ("epoch", "grad_pr", "grad_pr_time", "grad_pr_batch", "ky_dim", "n_slow")


class History:
    """Everything logged so far; written to ``log.h5`` and into every checkpoint."""

    def __init__(self):
        self.rows = {k: [] for k in EPOCH_FIELDS}
        self.rates = []
        self.spectrum = {"epoch": [], "stage": [], "exponents": [], "error": []}
        self.floss = {"epoch": [], "loss": [], "exponents": [], "grad_norm": [], "skipped": []}
        self.checks = {"epoch": [], "lambda1": [], "grad_x0": []}
        self.dimensionality = {k: [] for k in DIM_FIELDS}

    @property
    def n_rows(self) -> int:
        return len(self.rows["epoch"])

    def last(self, key):
        return self.rows[key][-1]

    def write(self, group, n_layers: int, k_spec: int, k_floss: int) -> None:
        g = group.create_group("epochs")
        for key in EPOCH_FIELDS:
            g.create_dataset(key, data=np.asarray(self.rows[key], dtype=np.int64 if key in ("epoch", "floss_steps") else float))
        g.create_dataset("rates", data=np.asarray(self.rates, float).reshape(-1, n_layers))
        s = group.create_group("spectrum")
        s.create_dataset("epoch", data=np.asarray(self.spectrum["epoch"], np.int64))
        s.create_dataset("stage", data=np.asarray(self.spectrum["stage"], np.int64))
        s.create_dataset("exponents", data=np.asarray(self.spectrum["exponents"], float).reshape(-1, k_spec))
        s.create_dataset("error", data=np.asarray(self.spectrum["error"], float).reshape(-1, k_spec))
        f = group.create_group("flossing")
        f.create_dataset("epoch", data=np.asarray(self.floss["epoch"], np.int64))
        f.create_dataset("loss", data=np.asarray(self.floss["loss"], float))
        f.create_dataset("exponents", data=np.asarray(self.floss["exponents"], float).reshape(-1, k_floss))
        f.create_dataset("grad_norm", data=np.asarray(self.floss["grad_norm"], float))
        f.create_dataset("skipped", data=np.asarray(self.floss["skipped"], bool))
        c = group.create_group("checks")
        c.create_dataset("epoch", data=np.asarray(self.checks["epoch"], np.int64))
        c.create_dataset("lambda1", data=np.asarray(self.checks["lambda1"], float))
        c.create_dataset("grad_x0", data=np.asarray(self.checks["grad_x0"], float))
        d = group.create_group("dimensionality")
        for key in DIM_FIELDS:
            d.create_dataset(key, data=np.asarray(self.dimensionality[key], np.int64 if key in ("epoch", "n_slow") else float))

    @classmethod
    def read(cls, group) -> "History":
        h = cls()
        for key in EPOCH_FIELDS:
            h.rows[key] = [x.item() for x in group["epochs"][key][()]]
        h.rates = [r for r in group["epochs/rates"][()]]
        for key in h.spectrum:
            h.spectrum[key] = [x.item() if np.ndim(x) == 0 else x for x in group["spectrum"][key][()]]
        for key in h.floss:
            h.floss[key] = [x.item() if np.ndim(x) == 0 else x for x in group["flossing"][key][()]]
        for key in h.checks:
            h.checks[key] = [x.item() for x in group["checks"][key][()]]
        if "dimensionality" in group:  # logs written before it existed have no such group
            for key in DIM_FIELDS:
                h.dimensionality[key] = [x.item() for x in group["dimensionality"][key][()]]
        return h

    def copy(self) -> "History":
        h = History()
        h.rows = {k: list(v) for k, v in self.rows.items()}
        h.rates = list(self.rates)
        h.spectrum = {k: list(v) for k, v in self.spectrum.items()}
        h.floss = {k: list(v) for k, v in self.floss.items()}
        h.checks = {k: list(v) for k, v in self.checks.items()}
        h.dimensionality = {k: list(v) for k, v in self.dimensionality.items()}
        return h


def read_log(path) -> dict:
    """A ``log.h5`` (or the ``log`` group of a checkpoint) as a flat dict of arrays."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"read_log: {path} is not a file (a log.h5 or checkpoint.h5 of refimpl train)")
    try:
        f = h5py.File(path, "r")
    except OSError:
        raise ValueError(f"read_log: {path} is not an HDF5 file (a log.h5 or checkpoint.h5 of refimpl train)") from None
    with f:
        g = f["log"] if "log" in f and "epochs" not in f else f
        if "epochs" not in g:
            raise ValueError(f"read_log: {path} holds no training log (no 'epochs' group)")
        return read_dict(g)
