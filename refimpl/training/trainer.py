"""The trainer: epochs of BPTT with Adam, the flossing schedule, evaluation, logs and checkpoints."""

from __future__ import annotations

import json
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from refimpl import __version__
from refimpl.dynamics import flossing, lyapunov
from refimpl.training import schedules
from refimpl.dynamics import dimensionality as dimensionality_mod
from refimpl.grad.adjoint import value_and_grad
from refimpl.io import atomic_h5, read_dict, to_json, write_dict
from refimpl.model.network import initial_state_keys, init_params, relaxed_initial_state, simulate
from refimpl.training.optim import AdamState, adam_step, global_norm
from refimpl.training.schedules import ScheduleState
from refimpl.grad.measures import accuracy, firing_rates, initial_state_grad_norm
from refimpl.training.configfile import to_toml
from refimpl.training.data import EVAL_CHUNK, TaskData
from refimpl.training.history import DIM_FIELDS, History
from refimpl.training.runconfig import RunConfig, config_diff, fluctuation_params

CHECKPOINT_FORMAT = "refimpl-training-checkpoint"
CHECKPOINT_VERSION = 1


class TrainingDiverged(ValueError):
    """The training loss became NaN or infinite."""


def _copy_adam(s: AdamState) -> AdamState:
    return AdamState(dict(s.m), dict(s.v), s.t)


@dataclass
class _Snapshot:
    params: dict
    adam: AdamState
    floss_adam: AdamState
    epoch: int
    floss_counter: int
    sched: dict
    history: History
    wall: float


class Trainer:
    """Runs (or resumes) a :class:`RunConfig`; see the module docstring for the loop.

    ``out_dir`` receives ``log.h5`` (after every epoch), ``checkpoint.h5``
    (every ``output.checkpoint_every`` epochs, at the end and on Ctrl-C) and
    ``config.toml``; ``None`` keeps everything in memory. ``progress`` is
    called with event dicts: ``{"kind": "floss"}`` after each flossing step,
    ``"boundary"`` when the flossing at a boundary is done (before the
    epoch's first training step), ``"step"`` after each training step and
    ``"epoch"`` after each log row.
    """

    def __init__(self, run: RunConfig, out_dir=None, *, progress=None):
        self.run = run
        self.cfg = run.network_config()
        self.loss_cfg = run.loss_config()
        self.data = TaskData(run)
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.progress = progress
        net = run.network
        if net.init == "fluctuation":
            if net.init_nu_in > 0:
                self.params = fluctuation_params(run, self.cfg, nu_in=net.init_nu_in)
            else:
                self.params = fluctuation_params(run, self.cfg, input_moments=self.data.input_moments())
        else:
            self.params = init_params(self.cfg, net.seed, w_in=net.w_in, g_rec=net.g_rec, w_out=net.w_out,
                bias=net.bias, bias_spread=net.bias_spread, keep_diagonal=net.keep_diagonal,
                bias_out=net.bias_out)  # fmt: skip
        if net.x0_init == "relaxed":
            slots = run.training.batch_size if net.x0_per_slot else 1
            x0 = relaxed_initial_state(self.cfg, self.params, slots=slots, steps=net.x0_relax_steps,
                scale=net.x0_scale, seed=net.seed)  # fmt: skip
            self.params.update(x0 if net.x0_per_slot else {k: v[0] for k, v in x0.items()})
        self.adam = AdamState()
        self.floss_adam = AdamState()
        self.epoch = 0
        self.floss_counter = 0
        self.sched = ScheduleState()
        self.history = History()
        self._wall0 = 0.0  # wall time of earlier processes (resume)
        self._t_start = time.perf_counter()
        self._spec_input = None
        self.trained_keys = [k for k in self.params if k.split("/")[1] in run.training.params]
        self.task_name = run.task.name

    # -- state ----------------------------------------------------------------
    @property
    def wall(self) -> float:
        return self._wall0 + time.perf_counter() - self._t_start

    def _snapshot(self) -> _Snapshot:
        return _Snapshot(dict(self.params), _copy_adam(self.adam), _copy_adam(self.floss_adam), self.epoch,
            self.floss_counter, self.sched.to_dict(), self.history.copy(), self.wall)  # fmt: skip

    def _restore(self, s: _Snapshot) -> None:
        self.params, self.adam, self.floss_adam = s.params, s.adam, s.floss_adam
        self.epoch, self.floss_counter = s.epoch, s.floss_counter
        self.sched = ScheduleState.from_dict(s.sched)
        self.history = s.history
        self._wall0, self._t_start = s.wall, time.perf_counter()

    def _emit(self, **event) -> None:
        if self.progress is not None:
            self.progress(event)

    # -- initial states per batch slot ------------------------------------------
    def params_for(self, B: int) -> dict:
        """The parameters for a batch of ``B`` trajectories: with one initial state per batch slot
        (``network.x0_per_slot``), trajectory ``i`` starts from slot ``i % slots``."""
        if not self.run.network.x0_per_slot:
            return self.params
        p = dict(self.params)
        for k in initial_state_keys(self.cfg):
            X = self.params[k]
            p[k] = np.ascontiguousarray(X[np.arange(B) % X.shape[0]])
        return p

    def single_params(self) -> dict:
        """The parameters of one trajectory (spectra, flossing): per-slot initial states give slot 0,
        as the reference code's ``xInit[:, 1]``."""
        if not self.run.network.x0_per_slot:
            return self.params
        p = dict(self.params)
        for k in initial_state_keys(self.cfg):
            p[k] = np.ascontiguousarray(self.params[k][0])
        return p

    def _fold_state_grads(self, grads: dict) -> dict:
        """Sum the gradients of tiled per-trajectory initial states back onto their slots."""
        if not self.run.network.x0_per_slot:
            return grads
        g = dict(grads)
        for k in initial_state_keys(self.cfg):
            slots = self.params[k].shape[0]
            G = grads[k]
            out = np.zeros((slots, G.shape[1]))
            np.add.at(out, np.arange(G.shape[0]) % slots, G)
            g[k] = out
        return g

    # -- measurements -----------------------------------------------------------
    def spectrum_input(self) -> np.ndarray:
        if self._spec_input is None:
            self._spec_input = self.data.spectrum_input()
        return self._spec_input

    def spectrum(self, k: int | None = None):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", lyapunov.DegenerateSpectrumWarning)
            return lyapunov.spectrum(self.cfg, self.single_params(), self.spectrum_input(), self.run.lyapunov.config(k))

    def _log_spectrum(self, epoch: int, stage: int):
        res = self.spectrum()
        h = self.history.spectrum
        h["epoch"].append(epoch), h["stage"].append(stage)
        h["exponents"].append(res.exponents), h["error"].append(res.error)
        return res

    def gradient_dimensionality(self, exponents=None) -> dict:
        """Participation ratios of the per-step gradient terms (:mod:`refimpl.dynamics.dimensionality`) of the
        test loss on the first ``lyapunov.dimensionality_batch`` test samples, and, from the
        ``exponents`` of a spectrum, the Kaplan–Yorke dimension and the number of exponents above
        ``lyapunov.dimensionality_threshold``."""
        from refimpl.model.losses import loss_and_grad

        ly = self.run.lyapunov
        u, targets = next(self.data.test_chunks(ly.dimensionality_batch))
        params = self.params_for(u.shape[1])
        traj = simulate(self.cfg, params, u)
        _, ybar = loss_and_grad(self.loss_cfg, traj.y, targets)
        gs = dimensionality_mod.gradient_samples(self.cfg, params, traj, ybar, names=ly.dimensionality_params)
        pr = gs.participation_ratios()
        out = {"grad_pr": pr["all"], "grad_pr_time": pr["time"], "grad_pr_batch": pr["batch"]}
        if exponents is not None:
            out["ky_dim"] = lyapunov.kaplan_yorke(exponents)
            out["n_slow"] = int(np.sum(np.asarray(exponents) > ly.dimensionality_threshold))
        return out

    def _log_dimensionality(self, epoch: int, exponents) -> None:
        d = self.gradient_dimensionality(exponents)
        h = self.history.dimensionality
        h["epoch"].append(epoch)
        for key in DIM_FIELDS[1:]:
            h[key].append(d[key])

    def evaluate(self):
        """Test loss, accuracy, ``‖∂L/∂x₀‖`` and per-layer rates of the current parameters.

        File-backed tasks (``shd``) are evaluated in chunks of ``EVAL_CHUNK``
        samples (memory); the chunk results are combined with weights
        ``B_chunk/B`` (every quantity is a mean over the batch).
        """
        if self.task_name != "shd":
            loss, grads, traj = value_and_grad(self.cfg, self.params_for(self.data.test_inputs.shape[1]),
                self.data.test_inputs, self.data.test_targets, self.loss_cfg)  # fmt: skip
            return {"test_loss": loss, "test_acc": accuracy(self.loss_cfg, traj.y, self.data.test_targets),
                "grad_x0": initial_state_grad_norm(self.cfg, self._fold_state_grads(grads)),
                "rates": firing_rates(self.cfg, traj)}  # fmt: skip
        n = self.data.test_inputs.shape[1]
        loss = acc = 0.0
        rates = 0.0
        gx0 = None
        names = initial_state_keys(self.cfg)
        for u, tg in self.data.test_chunks(EVAL_CHUNK):
            w = u.shape[1] / n
            l_c, g_c, traj = value_and_grad(self.cfg, self.params_for(u.shape[1]), u, tg, self.loss_cfg)
            loss += w * l_c
            acc += w * accuracy(self.loss_cfg, traj.y, tg)
            rates = rates + w * firing_rates(self.cfg, traj)
            g_c = self._fold_state_grads(g_c)  # per-slot states: back onto the slots, chunk by chunk
            part = {k: w * g_c[k] for k in names}
            gx0 = part if gx0 is None else {k: gx0[k] + part[k] for k in names}
        return {"test_loss": float(loss), "test_acc": float(acc),
            "grad_x0": initial_state_grad_norm(self.cfg, gx0), "rates": rates}  # fmt: skip

    def _add_row(self, epoch: int, stats: dict, t_epoch: float, floss_steps: int) -> None:
        ev = self.evaluate()
        r = self.history.rows
        r["epoch"].append(epoch)
        r["train_loss"].append(stats.get("train_loss", math.nan))
        r["train_acc"].append(stats.get("train_acc", math.nan))
        r["grad_norm"].append(stats.get("grad_norm", math.nan))
        r["test_loss"].append(ev["test_loss"])
        r["test_acc"].append(ev["test_acc"])
        r["grad_x0"].append(ev["grad_x0"])
        r["floss_steps"].append(floss_steps)
        self.history.rates.append(ev["rates"])
        ly = self.run.lyapunov
        if ly.every and epoch % ly.every == 0:
            res = self._log_spectrum(epoch, 0)
            if ly.dimensionality:
                self._log_dimensionality(epoch, res.exponents)
        r["epoch_time"].append(time.perf_counter() - t_epoch)
        r["wall_time"].append(self.wall)

    # -- flossing -----------------------------------------------------------------
    def _floss_gradient(self, epoch: int):
        """The flossing loss and gradient on the next fresh flossing input, or None when its QR failed (a
        warning; logged as a skipped step)."""
        fl = self.run.flossing
        lcfg, fcfg = self.run.lyapunov.config(fl.k, flossing=fl), fl.floss_config()
        u = self.data.floss_input(self.floss_counter)
        self.floss_counter += 1
        try:
            return flossing.value_and_grad(self.cfg, self.single_params(), u, lcfg, fcfg)
        except flossing.FlossingError as exc:
            warnings.warn(f"flossing step skipped: {exc}")
            self._log_floss(epoch, math.nan, np.full(fl.k, math.nan), math.nan, skipped=True)
            return None

    def _log_floss(self, epoch, loss, exponents, grad_norm, skipped=False) -> None:
        h = self.history.floss
        h["epoch"].append(epoch), h["loss"].append(loss), h["exponents"].append(exponents)
        h["grad_norm"].append(grad_norm), h["skipped"].append(skipped)

    def floss(self, n: int, epoch: int) -> None:
        """``n`` flossing steps (Adam on the flossing loss, own optimizer state)."""
        fl = self.run.flossing
        opt = fl.adam()
        flossed = set(flossing.flossed_keys(self.cfg, fl.floss_config()))
        for i in range(n):
            res = self._floss_gradient(epoch)
            if res is None:
                continue
            grads = {k: g for k, g in res.grads.items() if k in flossed}
            self._log_floss(epoch, res.loss, res.exponents, global_norm(grads))
            self.params = adam_step(self.params, grads, self.floss_adam, opt)
            self._poll()
            self._emit(kind="floss", epoch=epoch, step=i, n_steps=n, loss=res.loss, lambda1=float(res.exponents[0]))

    def boundary(self, e: int) -> int:
        """Pre-flossing and the schedule's session at boundary ``e``; returns the steps run."""
        fl = self.run.flossing
        done = 0
        n = schedules.pre_steps(fl, self.sched, e)
        if n:
            self.floss(n, e)
            done += n
            if self.run.lyapunov.every:
                self._log_spectrum(e, 1)
        lam1 = gx0 = None
        if schedules.needs_measurement(fl, self.sched, e):
            lam1 = float(self.spectrum(k=1).exponents[0])
            gx0 = self.history.last("grad_x0")
            c = self.history.checks
            c["epoch"].append(e), c["lambda1"].append(lam1), c["grad_x0"].append(gx0)
        n, _ = schedules.decide(fl, self.sched, e, lam1, gx0)
        if n:
            self.floss(n, e)
            done += n
            if self.run.lyapunov.every:
                self._log_spectrum(e, 1)
        return done

    # -- training -----------------------------------------------------------------
    def train_epoch(self, e: int) -> dict:
        opt = self.run.training.adam()
        n = self.data.steps_per_epoch()
        losses, accs, norms, terms = [], [], [], 0
        for s in range(n):
            u, y = self.data.train_batch(e, s)
            loss, grads, traj = value_and_grad(self.cfg, self.params, u, y, self.loss_cfg)
            if not math.isfinite(loss):
                raise TrainingDiverged(
                    f"the training loss is {loss} at epoch {e + 1}, step {s + 1}; lower training.lr or set training.clip_norm"
                )
            g = {k: grads[k] for k in self.trained_keys}
            if self.run.flossing.weight > 0:
                terms += self._add_floss_term(g, e)
            norms.append(global_norm(g))
            losses.append(loss)
            accs.append(accuracy(self.loss_cfg, traj.y, y))
            self.params = adam_step(self.params, g, self.adam, opt)
            self._poll()
            self._emit(kind="step", epoch=e, step=s, n_steps=n, loss=loss)
        return {"train_loss": float(np.mean(losses)), "train_acc": float(np.mean(accs)),
            "grad_norm": float(np.mean(norms)), "floss_terms": terms}  # fmt: skip

    def _add_floss_term(self, g: dict, epoch: int) -> int:
        """``g += weight · ∇L_floss`` on one fresh flossing input (``flossing.weight``), logged like a flossing
        step; returns the number of flossing gradients computed (0 when the QR failed and the term is skipped)."""
        fl = self.run.flossing
        res = self._floss_gradient(epoch)
        if res is None:
            return 0
        term = {k: fl.weight * res.grads[k] for k in flossing.flossed_keys(self.cfg, fl.floss_config())}
        for k, v in term.items():
            g[k] = g[k] + v
        self._log_floss(epoch, res.loss, res.exponents, global_norm(term))
        return 1

    # -- Ctrl-C ---------------------------------------------------------------------
    def _poll(self) -> None:
        """Raise ``KeyboardInterrupt`` at a safe point if Ctrl-C was pressed (:mod:`refimpl.interrupt`)."""
        sigint = getattr(self, "_sigint", None)
        if sigint is not None:
            sigint.poll()

    def fit(self, epochs: int | None = None) -> "Trainer":
        """Train until ``epochs`` (default ``training.epochs``) epochs are complete.

        On ``KeyboardInterrupt`` (Ctrl-C) the state of the last completed epoch
        is checkpointed (if there is an ``out_dir``) and ``KeyboardInterrupt``
        re-raised.
        """
        import contextlib
        from refimpl.interrupt import DeferredInterrupt
        from refimpl.io import directory_lock

        # one process at a time owns the output directory (taken before anything is written)
        lock = contextlib.nullcontext() if self.out_dir is None else directory_lock(self.out_dir)
        with lock, DeferredInterrupt() as self._sigint:
            return self._fit(epochs)

    def _fit(self, epochs: int | None = None) -> "Trainer":
        E = self.run.training.epochs if epochs is None else epochs
        if self.epoch > E:
            raise ValueError(f"the run is already at epoch {self.epoch} > the requested {E} epochs")
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            from refimpl.io import atomic_text

            atomic_text(self.out_dir / "config.toml", to_toml(self.run))
        self._t_start = time.perf_counter()
        snap = self._snapshot()
        self.target_epochs = E
        try:
            if self.history.n_rows == 0:
                t = time.perf_counter()
                self._add_row(0, {}, t, 0)
                self._write_log()
                self._emit(kind="epoch", epoch=0, epochs=E, row=self.row(-1))
                snap = self._snapshot()
            ck = self.run.output.checkpoint_every
            every = self.run.training.eval_every
            pending, nf_row, t_row = [], 0, time.perf_counter()  # epochs since the last row
            while self.epoch < E:
                e = self.epoch
                nf = self.boundary(e)
                nf_row += nf
                self._emit(kind="boundary", epoch=e, floss_steps=nf)
                stats = self.train_epoch(e)
                nf_row += stats.pop("floss_terms")
                pending.append(stats)
                self.epoch = e + 1
                if self.epoch % every and self.epoch < E:
                    continue
                # a row: evaluation, log, checkpoint and the state a Ctrl-C returns to
                stats = {k: float(np.mean([p[k] for p in pending])) for k in pending[0]}
                self._add_row(self.epoch, stats, t_row, nf_row)
                self._write_log()
                if ck and self.epoch % ck == 0 and self.epoch < E and self.out_dir is not None:
                    self.save_checkpoint()
                self._emit(kind="epoch", epoch=self.epoch, epochs=E, row=self.row(-1))
                snap = self._snapshot()
                pending, nf_row, t_row = [], 0, time.perf_counter()
        except BaseException as exc:
            # Ctrl-C inside a compiled kernel surfaces as a SystemError whose context is it
            from refimpl.interrupt import is_interrupt

            if not is_interrupt(exc):
                raise
            self._restore(snap)
            if self.out_dir is not None:
                self.save_checkpoint()
            raise KeyboardInterrupt from None
        if self.out_dir is not None:
            self.save_checkpoint()
        return self

    def row(self, i: int) -> dict:
        r = {k: v[i] for k, v in self.history.rows.items()}
        r["rates"] = self.history.rates[i]
        return r

    # -- files ----------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / "checkpoint.h5"

    def _write_log(self) -> None:
        if self.out_dir is None:
            return
        with atomic_h5(self.out_dir / "log.h5") as f:
            self._write_log_group(f)
            f.attrs["config"] = to_json(self.run.to_dict())

    def _write_log_group(self, g) -> None:
        self.history.write(g, self.cfg.n_layers, self.run.lyapunov.k, self.run.flossing.k)
        g.attrs["epochs_completed"] = self.epoch
        g.attrs["reasons"] = to_json(schedules.REASONS)
        g.attrs["units"] = to_json(
            {"loss": "task loss", "rates": "Hz", "exponents": "1/step", "wall_time": "s", "epoch_time": "s"}
        )
        g.create_dataset("flossing/events", data=np.asarray(self.sched.events, np.int64).reshape(-1, 3))

    def save_checkpoint(self, path=None) -> Path:
        """Write the whole state atomically (default ``out_dir/checkpoint.h5``)."""
        path = self.checkpoint_path if path is None else Path(path)
        with atomic_h5(path) as f:
            f.attrs["format"] = CHECKPOINT_FORMAT
            f.attrs["version"] = CHECKPOINT_VERSION
            f.attrs["refimpl_version"] = __version__
            f.attrs["config"] = to_json(self.run.to_dict())
            f.attrs["epoch"] = self.epoch
            f.attrs["floss_counter"] = self.floss_counter
            f.attrs["schedule_state"] = to_json(self.sched.to_dict())
            f.attrs["wall_time"] = self.wall
            f.attrs["rng"] = (
                "all randomness is derived from task.seed, network.seed, lyapunov.seed and "
                "the counters 'epoch' and 'floss_counter' (refimpl.training.TaskData.derive)"
            )
            write_dict(f.create_group("params"), self.params)
            for name, st in (("train", self.adam), ("floss", self.floss_adam)):
                g = f.create_group(f"adam/{name}")
                g.attrs["t"] = st.t
                write_dict(g.create_group("m"), st.m)
                write_dict(g.create_group("v"), st.v)
            self._write_log_group(f.create_group("log"))
        return path

    @classmethod
    def resume(cls, checkpoint, run: RunConfig | None = None, out_dir=None, *, progress=None) -> "Trainer":
        """A trainer in the state stored in ``checkpoint``.

        ``run`` (default: the checkpoint's own configuration) must equal the
        checkpoint's except for ``training.epochs`` and ``[output]``; otherwise
        ``ValueError`` lists the differences (and nothing is written).
        """
        import h5py

        path = Path(checkpoint)
        if path.is_dir():
            hint = f"; did you mean {str(path / 'checkpoint.h5')!r}?" if (path / "checkpoint.h5").is_file() else ""
            raise ValueError(f"checkpoint {str(path)!r} is a directory, not a checkpoint file{hint}")
        if not path.is_file():
            raise ValueError(f"checkpoint {str(path)!r} does not exist")
        try:
            f = h5py.File(path, "r")
        except OSError as exc:
            raise ValueError(f"cannot read checkpoint {str(path)!r}: {exc}") from None
        with f:
            if f.attrs.get("format") != CHECKPOINT_FORMAT:
                raise ValueError(f"{str(path)!r} is not a refimpl training checkpoint")
            if int(f.attrs["version"]) != CHECKPOINT_VERSION:
                raise ValueError(
                    f"checkpoint {str(path)!r} has format version {f.attrs['version']}, "
                    f"this refimpl reads version {CHECKPOINT_VERSION}"
                )
            saved = json.loads(f.attrs["config"])
            if run is None:
                run = RunConfig.from_dict(saved)
            else:
                diff = config_diff(saved, run.to_dict())
                if diff:
                    shown = "; ".join(f"{k}: {json.dumps(a)} in the checkpoint, {json.dumps(b)} here" for k, a, b in diff[:6])
                    more = f" (and {len(diff) - 6} more)" if len(diff) > 6 else ""
                    raise ValueError(
                        f"checkpoint {str(path)!r} belongs to a different configuration: {shown}{more}. Nothing was written."
                    )
            tr = cls(run, out_dir, progress=progress)
            tr.params = {k: np.ascontiguousarray(v, dtype=float) for k, v in read_dict(f["params"]).items()}
            for name in ("train", "floss"):
                g = f[f"adam/{name}"]
                st = AdamState(read_dict(g["m"]), read_dict(g["v"]), int(g.attrs["t"]))
                setattr(tr, "adam" if name == "train" else "floss_adam", st)
            tr.epoch = int(f.attrs["epoch"])
            tr.floss_counter = int(f.attrs["floss_counter"])
            tr.sched = ScheduleState.from_dict(json.loads(f.attrs["schedule_state"]))
            tr.history = History.read(f["log"])
            tr._wall0 = float(f.attrs["wall_time"])
        return tr


def train(run: RunConfig, out_dir=None, *, resume=None, epochs=None, progress=None) -> Trainer:
    """Build (or resume) a :class:`Trainer` and fit it; returns the trainer."""
    if resume is not None:
        tr = Trainer.resume(resume, run, out_dir, progress=progress)
    else:
        tr = Trainer(run, out_dir, progress=progress)
    return tr.fit(epochs)
