"""Data sets read from files: the Spiking Heidelberg Digits (SHD).

SHD (Cramer, Stradmann, Schemmel & Zenke 2020) is spoken digits (0–9 in
English and German, 20 classes) turned into the spikes of 700 model
auditory-nerve fibres. Each file is HDF5 with the layout

    spikes/times   ragged float arrays (h5py vlen), one per sample: spike times in SECONDS
    spikes/units   ragged integer arrays, one per sample: the fibre (unit) of each spike, 0 … 699
    labels         integer class per sample, 0 … 19
    extra/…        optional metadata, e.g. extra/speaker (per sample), extra/keys (class names)

refimpl never downloads anything. Get ``shd_train.h5.gz`` and
``shd_test.h5.gz`` from https://zenkelab.org/datasets/ yourself, unpack them
(``gunzip``) and pass their paths (the preset looks in ``data/shd_train.h5``
and ``data/shd_test.h5``, relative to the working directory).

Binning (the model's ``dt`` is in ms, the file's times in s): a spike at ``t``
seconds falls into step ``k = ⌊t·1000/dt + 10⁻⁹⌋`` (computed in float64 from
the stored value). A spike exactly on a bin edge ``t = k·dt`` ms therefore
belongs to the bin that starts there, and the 10⁻⁹ (in bins) keeps decimal
edges such as 0.003 s = 3 ms from slipping into the bin before through
rounding. Spikes with ``k ≥ T`` are dropped. Channel ``c = unit //
channel_factor`` (``ceil(n_units/channel_factor)`` channels). With
``binary=True`` (default) a (step, channel) with any spike holds 1.0, else
the spike count; the network's input is then ``u`` of shape ``(T, B, n_ch)``
as for every task (docs/model.md §1.2). The first step ``t = 0`` of the network
reads bin 0, i.e. the spikes in ``[0, dt)`` ms.

Errors are ``ValueError`` naming the file and the dataset or parameter:
missing file (with where to get it), unreadable file, missing datasets,
wrong dtypes, ragged length mismatches, units or labels out of range,
negative or non-finite times.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from refimpl.checks import check_int, check_positive
from refimpl.tasks.generators import CLASS_LOSSES, TaskBatch

__all__ = ["SHD_URL", "SHD_DEFAULTS", "SpikeData", "read_shd", "bin_spikes", "load_shd", "write_shd_like",
    "check_shd_options", "shd_probe", "shd_sets"]  # fmt: skip

SHD_URL = "https://zenkelab.org/datasets/"
EDGE_TOL = 1e-9  # in bins: see the module docstring

#: the [task] keys of the training task ``shd`` and their defaults (docs/training.md)
SHD_DEFAULTS = {
    "train_path": "data/shd_train.h5",
    "test_path": "data/shd_test.h5",  # "" : split train_path (test_fraction)
    "test_fraction": 0.2,
    "T": 100,
    "n_units": 700,
    "channel_factor": 1,
    "n_classes": 20,
    "max_samples": 0,  # 0: all training samples
    "test_max_samples": 0,  # 0: all test samples
    "binary": True,
    "loss": "ce_max",
}


def _missing_message(path: Path) -> str:
    return (
        f"SHD file {str(path)!r} does not exist. refimpl never downloads data: get shd_train.h5.gz and "
        f"shd_test.h5.gz from {SHD_URL}, unpack them (gunzip) and pass their paths "
        "(task.train_path / task.test_path, or load_shd(path)); the shd preset looks for "
        "data/shd_train.h5 and data/shd_test.h5 in the working directory"
    )


# ---------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------


@dataclass
class SpikeData:
    """The samples read from one SHD-like file (see :func:`read_shd`)."""

    times: list  # per sample, float64 seconds
    units: list  # per sample, int64
    labels: np.ndarray  # int64 (B,)
    indices: np.ndarray  # the samples' indices in the file
    extra: dict = field(default_factory=dict)
    path: str = ""

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, idx) -> "SpikeData":
        idx = np.asarray(idx, dtype=np.int64)
        n = len(self.labels)
        extra = {k: (v[idx] if isinstance(v, np.ndarray) and v.ndim >= 1 and v.shape[0] == n else v) for k,
            v in self.extra.items()}  # fmt: skip
        return SpikeData([self.times[i] for i in idx], [self.units[i] for i in idx], self.labels[idx],
            self.indices[idx], extra, self.path)  # fmt: skip


def _vlen_base(ds):
    import h5py

    return h5py.check_vlen_dtype(ds.dtype)


def read_shd(path, *, max_samples=None, seed: int = 0, n_units: int = 700, n_classes: int = 20, indices=None) -> SpikeData:
    """Read and check an SHD-like HDF5 file (layout in the module docstring).

    ``max_samples`` (None: all) keeps a random subset of that many samples,
    drawn with ``default_rng(seed)`` and kept in file order; ``indices``
    (sorted, unique) reads exactly those samples instead. ``n_units`` and
    ``n_classes`` are the ranges units and labels must lie in. Every dataset
    under ``extra/`` is returned in ``extra`` (those with one entry per
    sample are subset like the samples).
    """
    import h5py

    if not isinstance(path, (str, Path)) or str(path) == "":
        raise ValueError(f"path must be a non-empty file path, got {path!r}")
    max_samples = check_int("max_samples", max_samples, 1, allow_none=True)
    seed = check_int("seed", seed, 0)
    n_units = check_int("n_units", n_units, 1)
    n_classes = check_int("n_classes", n_classes, 1)
    path = Path(path)
    if not path.is_file():
        raise ValueError(_missing_message(path))
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise ValueError(f"cannot read {str(path)!r} as an HDF5 file: {exc}") from None
    where = str(path)
    with f:
        for name in ("spikes/times", "spikes/units", "labels"):
            if name not in f or not isinstance(f[name], h5py.Dataset):
                raise ValueError(f"{where}: dataset {name!r} is missing (an SHD file has spikes/times, spikes/units and labels)")
        dt_, du, dl = f["spikes/times"], f["spikes/units"], f["labels"]
        bt, bu = _vlen_base(dt_), _vlen_base(du)
        if dt_.ndim != 1 or bt is None or np.dtype(bt).kind != "f":
            raise ValueError(
                f"{where}: dataset 'spikes/times' must be a 1-d ragged (vlen) dataset of floats "
                f"(seconds), got dtype {dt_.dtype} shape {dt_.shape}"
            )
        if du.ndim != 1 or bu is None or np.dtype(bu).kind not in "iu":
            raise ValueError(
                f"{where}: dataset 'spikes/units' must be a 1-d ragged (vlen) dataset of integers, "
                f"got dtype {du.dtype} shape {du.shape}"
            )
        if dl.ndim != 1 or dl.dtype.kind not in "iu":
            raise ValueError(f"{where}: dataset 'labels' must be a 1-d integer dataset, got dtype {dl.dtype} shape {dl.shape}")
        n = dl.shape[0]
        if dt_.shape[0] != n or du.shape[0] != n:
            raise ValueError(
                f"{where}: ragged length mismatch: spikes/times has {dt_.shape[0]} samples, "
                f"spikes/units {du.shape[0]}, labels {n}"
            )
        if n == 0:
            raise ValueError(f"{where}: the file holds no samples")
        if indices is not None:
            idx = np.asarray(indices, dtype=np.int64)
            if idx.ndim != 1 or idx.size == 0 or np.any(np.diff(idx) <= 0) or idx[0] < 0 or idx[-1] >= n:
                raise ValueError(f"indices must be sorted unique sample indices in [0, {n}), got {indices!r}")
        elif max_samples is not None and max_samples < n:
            idx = np.sort(np.random.default_rng(seed).choice(n, size=max_samples, replace=False))
        else:
            idx = np.arange(n)
        whole = idx.size == n
        # h5py reads a sorted index list of a vlen dataset without loading the rest
        raw_t = dt_[()] if whole else dt_[idx]
        raw_u = du[()] if whole else du[idx]
        labels = (dl[()] if whole else dl[idx]).astype(np.int64)
        extra = {}
        if "extra" in f and isinstance(f["extra"], h5py.Group):

            def visit(name, obj):
                if isinstance(obj, h5py.Dataset):
                    v = obj[()]
                    if isinstance(v, np.ndarray) and v.ndim >= 1 and v.shape[0] == n and not whole:
                        v = v[idx]
                    extra[name] = v

            f["extra"].visititems(visit)
    times, units = [], []
    for j, (t, u) in enumerate(zip(raw_t, raw_u)):
        i = int(idx[j])
        t = np.asarray(t, dtype=np.float64)
        u = np.asarray(u)
        if t.shape != u.shape:
            raise ValueError(f"{where}: ragged length mismatch in sample {i}: {t.size} spike times but {u.size} units")
        if t.size and (not np.all(np.isfinite(t)) or t.min() < 0):
            raise ValueError(f"{where}: spikes/times of sample {i} must be finite and >= 0 (seconds)")
        if u.size and (u.min() < 0 or u.max() >= n_units):
            raise ValueError(
                f"{where}: spikes/units of sample {i} must lie in [0, n_units = {n_units}), got values in [{u.min()}, {u.max()}]"
            )
        times.append(t)
        units.append(u.astype(np.int64))
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(
            f"{where}: labels must lie in [0, n_classes = {n_classes}), got values in [{labels.min()}, {labels.max()}]"
        )
    return SpikeData(times, units, labels, idx, extra, where)


# ---------------------------------------------------------------------------
# binning
# ---------------------------------------------------------------------------


def bin_spikes(times, units, *, dt: float, T: int, n_units: int = 700, channel_factor: int = 1,
        binary: bool = True, max_time=None, dtype=np.float64) -> np.ndarray:  # fmt: skip
    """Spike trains → input raster ``(T, B, ceil(n_units/channel_factor))`` (rules in the module docstring).

    ``times`` (seconds) and ``units`` are sequences of one array per sample;
    ``dt`` is in ms; ``max_time`` (seconds, optional) drops spikes after it.
    ``dtype`` is the dtype of the result (float64 by default, as network
    inputs; the trainer keeps large data sets as uint8/uint16 and converts
    each batch).
    """
    dt = check_positive("dt", dt)
    T = check_int("T", T, 1)
    n_units = check_int("n_units", n_units, 1)
    channel_factor = check_int("channel_factor", channel_factor, 1)
    max_time = check_positive("max_time", max_time, allow_none=True)
    if not isinstance(binary, (bool, np.bool_)):
        raise ValueError(f"binary must be True or False, got {binary!r}")
    if len(times) != len(units):
        raise ValueError(f"times and units must hold one array per sample each, got {len(times)} and {len(units)}")
    n_ch = -(-n_units // channel_factor)
    dtype = np.dtype(dtype)
    out = np.zeros((T, len(times), n_ch), dtype=dtype)
    cap = 1 if binary else (np.iinfo(dtype).max if dtype.kind in "iu" else None)
    for b, (t, u) in enumerate(zip(times, units)):
        t = np.asarray(t, dtype=np.float64)
        u = np.asarray(u)
        if t.shape != u.shape or t.ndim != 1:
            raise ValueError(
                f"sample {b}: times and units must be 1-d arrays of the same length, got shapes {t.shape} and {u.shape}"
            )
        if u.size and (u.min() < 0 or u.max() >= n_units):
            raise ValueError(f"sample {b}: units must lie in [0, n_units = {n_units})")
        if t.size and (not np.all(np.isfinite(t)) or t.min() < 0):
            raise ValueError(f"sample {b}: times must be finite and >= 0 (seconds)")
        keep = np.ones(t.shape, dtype=bool) if max_time is None else t <= max_time
        k = np.floor(t * 1000.0 / dt + EDGE_TOL)
        keep &= k < T
        k = k[keep].astype(np.int64)
        c = u[keep].astype(np.int64) // channel_factor
        counts = np.bincount(k * n_ch + c, minlength=T * n_ch).reshape(T, n_ch)
        if cap is not None:
            if not binary and counts.max(initial=0) > cap:
                raise ValueError(f"sample {b}: a bin holds {counts.max()} spikes, more than dtype {dtype} holds")
            counts = np.minimum(counts, cap)
        out[:, b, :] = counts
    return out


def load_shd(path, *, dt: float, T: int, n_units: int = 700, channel_factor: int = 1, binary: bool = True,
        max_time=None, max_samples=None, seed: int = 0, n_classes: int = 20, loss: str = "ce_max") -> TaskBatch:  # fmt: skip
    """An SHD-like file as a :class:`refimpl.tasks.TaskBatch`: inputs ``(T, B, n_ch)`` float64, int64 labels.

    :func:`read_shd` (checks, ``max_samples``/``seed`` subset) followed by
    :func:`bin_spikes`; ``loss`` is a class loss (``ce_max`` default), ``t0 = 0``.
    """
    if loss not in CLASS_LOSSES:
        raise ValueError(f"loss must be one of {list(CLASS_LOSSES)}, got {loss!r}")
    dt = check_positive("dt", dt)
    T = check_int("T", T, 1)
    channel_factor = check_int("channel_factor", channel_factor, 1)
    data = read_shd(path, max_samples=max_samples, seed=seed, n_units=n_units, n_classes=n_classes)
    u = bin_spikes(data.times, data.units, dt=dt, T=T, n_units=n_units, channel_factor=channel_factor,
        binary=binary, max_time=max_time)  # fmt: skip
    return TaskBatch(inputs=u, targets=data.labels, loss=loss, t0=0, n_classes=n_classes)


# ---------------------------------------------------------------------------
# writing small files of the same layout (tests, examples)
# ---------------------------------------------------------------------------


def write_shd_like(path, times, units, labels, *, speaker=None, keys=None, time_dtype=np.float32,
        unit_dtype=np.uint16, label_dtype=np.uint16) -> Path:  # fmt: skip
    """Write an HDF5 file in the SHD layout: ``spikes/times``, ``spikes/units`` (h5py vlen), ``labels``,
    ``extra/speaker`` and ``extra/keys`` (when given).

    ``times`` (seconds) and ``units`` hold one array per sample. Meant for
    tests and for trying the loader and the ``shd`` preset without the real
    files; nothing is checked beyond the shapes h5py needs.
    """
    import h5py

    path = Path(path)
    n = len(labels)
    with h5py.File(path, "w") as f:
        st = f.create_dataset("spikes/times", (n,), dtype=h5py.vlen_dtype(np.dtype(time_dtype)))
        su = f.create_dataset("spikes/units", (n,), dtype=h5py.vlen_dtype(np.dtype(unit_dtype)))
        for i in range(n):
            st[i] = np.asarray(times[i], dtype=time_dtype)
            su[i] = np.asarray(units[i], dtype=unit_dtype)
        f.create_dataset("labels", data=np.asarray(labels, dtype=label_dtype))
        if speaker is not None:
            f.create_dataset("extra/speaker", data=np.asarray(speaker, dtype=np.uint16))
        if keys is not None:
            f.create_dataset("extra/keys", data=np.asarray([str(k).encode() for k in keys]), dtype=h5py.string_dtype("ascii"))
    return path


# ---------------------------------------------------------------------------
# the training task ``shd`` (refimpl.training wires these in)
# ---------------------------------------------------------------------------


def check_shd_options(opts: dict) -> dict:
    """Validate the ``[task]`` options of ``shd`` (names ``task.<key>``); return them with defaults filled."""
    o = {**SHD_DEFAULTS, **{k: v for k, v in opts.items() if k != "seed"}}
    for key in ("train_path", "test_path"):
        if not isinstance(o[key], str):
            raise ValueError(f"task.{key} must be a string (a file path), got {o[key]!r}")
    if o["train_path"] == "":
        raise ValueError("task.train_path must be the path of an SHD-like file, got ''")
    f = o["test_fraction"]
    if isinstance(f, (bool, np.bool_)) or not isinstance(f, numbers.Real) or not 0 < f < 1:
        raise ValueError(f"task.test_fraction must be a number in (0, 1), got {f!r}")
    for key, lo in (
        ("T", 1),
        ("n_units", 1),
        ("channel_factor", 1),
        ("n_classes", 2),
        ("max_samples", 0),
        ("test_max_samples", 0),
    ):
        v = o[key]
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or v < lo:
            raise ValueError(f"task.{key} must be an integer >= {lo}, got {v!r}")
    if not isinstance(o["binary"], (bool, np.bool_)):
        raise ValueError(f"task.binary must be true or false, got {o['binary']!r}")
    if o["loss"] not in CLASS_LOSSES:
        raise ValueError(f"task.loss must be one of {list(CLASS_LOSSES)}, got {o['loss']!r}")
    return o


def shd_probe(opts: dict) -> TaskBatch:
    """A one-sample all-zero batch of the task's shape (``n_in``, ``n_out``, loss) without opening a file,
    so that configurations validate where the data is absent."""
    o = check_shd_options(opts)
    n_ch = -(-o["n_units"] // o["channel_factor"])
    return TaskBatch(inputs=np.zeros((o["T"], 1, n_ch)), targets=np.zeros(1, np.int64), loss=o["loss"], t0=0,
        n_classes=o["n_classes"])  # fmt: skip


def shd_sets(opts: dict, dt: float, seed: int = 0):
    """``((train_u, train_labels), (test_u, test_labels))`` of the ``shd`` task; inputs ``(T, B, n_ch)``
    as uint8 (binary) or uint16 (counts), to be converted to float64 per batch.

    Two files, or one file split at random (``test_path = ""``, a fraction
    ``test_fraction`` of it tests, drawn with ``seed``). ``max_samples`` and
    ``test_max_samples`` (0: all) keep random subsets (``seed``-derived streams).
    """
    o = check_shd_options(opts)
    kw = dict(n_units=o["n_units"], n_classes=o["n_classes"])
    ss = np.random.SeedSequence(seed)
    s_train, s_test, s_split = (int(s.generate_state(1, np.uint32)[0]) for s in ss.spawn(3))
    if o["test_path"]:
        train = read_shd(o["train_path"], max_samples=o["max_samples"] or None, seed=s_train, **kw)
        test = read_shd(o["test_path"], max_samples=o["test_max_samples"] or None, seed=s_test, **kw)
    else:
        full = read_shd(o["train_path"], **kw)
        n = len(full)
        n_test = min(max(int(round(o["test_fraction"] * n)), 1), n - 1) if n > 1 else 0
        if n_test < 1:
            raise ValueError(f"{full.path}: one sample cannot be split into training and test data; set task.test_path")
        perm = np.random.default_rng(s_split).permutation(n)
        test, train = full.subset(np.sort(perm[:n_test])), full.subset(np.sort(perm[n_test:]))
        for part, key, s in ((train, "max_samples", s_train), (test, "test_max_samples", s_test)):
            m = o[key]
            if m and m < len(part):
                keep = np.sort(np.random.default_rng(s).choice(len(part), size=m, replace=False))
                if part is train:
                    train = part.subset(keep)
                else:
                    test = part.subset(keep)
    dtype = np.uint8 if o["binary"] else np.uint16
    out = []
    for part in (train, test):
        u = bin_spikes(part.times, part.units, dt=dt, T=o["T"], n_units=o["n_units"],
            channel_factor=o["channel_factor"], binary=o["binary"], dtype=dtype)  # fmt: skip
        out.append((u, part.labels))
    return tuple(out)
