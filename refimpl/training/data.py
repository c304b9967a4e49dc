"""The data of a run: training batches, the test set, flossing and spectrum inputs, all derived from
``task.seed`` and counters (:class:`TaskData`)."""

from __future__ import annotations


import numpy as np

from refimpl.training.runconfig import FIXED_TASKS, RunConfig

#: test sets of file-backed tasks are evaluated in chunks of this many samples (memory)
EVAL_CHUNK = 256

# seed streams (first entry of the SeedSequence spawn_key)
STREAM_TRAIN, STREAM_TEST, STREAM_FLOSS, STREAM_SPECTRUM, STREAM_SHUFFLE, STREAM_TRAINSET = range(1, 7)

# ---------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------


class TaskData:
    """All inputs of a run, each a pure function of ``task.seed`` and counters."""

    def __init__(self, run: RunConfig):
        self.run = run
        self.task = run.task
        self.dt = float(run.network.dt)
        self.B = run.training.batch_size
        self.seed = self.task.seed
        if self.task.name == "shd":
            from refimpl.tasks.datasets import shd_sets

            # kept as uint8/uint16 (a full SHD set is ~0.5 GB as float64); batches are converted
            (self.train_inputs, self.train_targets), (self.test_inputs,
                self.test_targets) = shd_sets(self.task.opts, self.dt, self.seed)  # fmt: skip
        elif self.task.name == "randman":
            o = self.task.opts
            n_tr, n_te = o["samples_per_class"], o["test_samples_per_class"]
            full = self.task.generate(n_tr + n_te, self.seed, self.dt)
            # stratified split: the first n_tr samples of each class train, the rest test
            rank = np.zeros(full.targets.shape, dtype=np.int64)
            for c in range(full.n_classes):
                idx = np.nonzero(full.targets == c)[0]
                rank[idx] = np.arange(idx.size)
            tr, te = np.nonzero(rank < n_tr)[0], np.nonzero(rank >= n_tr)[0]
            self.train_inputs = np.ascontiguousarray(full.inputs[:, tr])
            self.train_targets = full.targets[tr]
            self.test_inputs = np.ascontiguousarray(full.inputs[:, te])
            self.test_targets = full.targets[te]
        else:
            if run.data_mode == "fixed":
                s = self.task.generate(run.training.train_size, self.derive(STREAM_TRAINSET), self.dt)
                self.train_inputs, self.train_targets = s.inputs, s.targets
            test = self.task.generate(run.training.test_size, self.derive(STREAM_TEST), self.dt)
            self.test_inputs, self.test_targets = test.inputs, test.targets
        if run.data_mode == "fixed" and self.train_inputs.shape[1] < self.B:
            raise ValueError(f"training.batch_size = {self.B} exceeds the {self.train_inputs.shape[1]} training samples")

    def derive(self, stream: int, *counters: int) -> int:
        """A 32-bit seed from ``task.seed``, the stream id and counters."""
        ss = np.random.SeedSequence(self.seed, spawn_key=(stream, *counters))
        return int(ss.generate_state(1, np.uint32)[0])

    def steps_per_epoch(self) -> int:
        if self.run.data_mode == "fresh":
            return self.run.training.steps_per_epoch
        return self.train_inputs.shape[1] // self.B  # the incomplete last batch is dropped

    def train_batch(self, epoch: int, step: int):
        """Inputs and targets of training step ``step`` of epoch ``epoch`` (0-based)."""
        if self.run.data_mode == "fresh":
            b = self.task.generate(self.B, self.derive(STREAM_TRAIN, epoch, step), self.dt)
            return b.inputs, b.targets
        perm = np.random.default_rng(self.derive(STREAM_SHUFFLE, epoch)).permutation(self.train_inputs.shape[1])
        idx = np.sort(perm[step * self.B : (step + 1) * self.B])
        targets = self.train_targets[idx] if self.train_targets.ndim == 1 else self.train_targets[:, idx]
        return _f64(self.train_inputs[:, idx]), targets

    def floss_input(self, i: int) -> np.ndarray:
        """Input ``(T, 1, n_in)`` of flossing step ``i`` (batch element 0 of a fresh flossing batch)."""
        if self.task.name in FIXED_TASKS:
            j = int(np.random.default_rng(self.derive(STREAM_FLOSS, i)).integers(self.train_inputs.shape[1]))
            return _f64(self.train_inputs[:, j : j + 1])
        return self._inputs(self.derive(STREAM_FLOSS, i), self.run.floss_T)

    def spectrum_input(self) -> np.ndarray:
        """The fixed input ``(T, 1, n_in)`` on which spectra and λ₁ checks are measured."""
        if self.task.name in FIXED_TASKS:
            return _f64(self.test_inputs[:, :1])
        return self._inputs(self.derive(STREAM_SPECTRUM), self.run.spectrum_T)

    def _inputs(self, seed: int, T: int) -> np.ndarray:
        """The first ``T`` steps of one sequence of the task. A task whose targets need more than
        ``T`` steps (a delayed XOR with ``d >= T``) draws a sequence of its own length and cuts it,
        as the reference code cuts its 300-step flossing sequences to 55 steps; otherwise the
        sequence is drawn at length ``T`` (the inputs of every earlier configuration)."""
        try:
            return self.task.generate(1, seed, self.dt, T=T).inputs
        except ValueError:
            full = self.task.generate(1, seed, self.dt, T=max(T, self.run.task_T))
            return np.ascontiguousarray(full.inputs[:T])

    def test_chunks(self, size: int | None = None):
        """``(inputs, targets)`` of the test set in chunks of ``size`` samples (None: one chunk), float64."""
        n = self.test_inputs.shape[1]
        size = n if size is None else size
        for lo in range(0, n, size):
            hi = min(lo + size, n)
            tg = self.test_targets[lo:hi] if self.test_targets.ndim == 1 else self.test_targets[:, lo:hi]
            yield _f64(self.test_inputs[:, lo:hi]), tg

    def input_moments(self):
        """Mean and variance per step and channel of the training inputs (the fixed training set, or
        the first fresh training batch): the input statistics of a fluctuation-driven initialization."""
        u = self.train_inputs if self.run.data_mode == "fixed" else self.train_batch(0, 0)[0]
        s1 = s2 = 0.0
        for lo in range(0, u.shape[1], 256):  # chunks: no float64 copy of a whole uint8 data set
            x = np.asarray(u[:, lo : lo + 256], dtype=np.float64)
            s1 += float(x.sum())
            s2 += float(np.sum(x * x))
        n = u.size
        mean = s1 / n
        return mean, max(s2 / n - mean * mean, 0.0)


def _f64(x) -> np.ndarray:
    """A C-contiguous float64 array (no copy if it already is one)."""
    return np.ascontiguousarray(x, dtype=np.float64)
