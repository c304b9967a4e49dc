"""Training (a package): surrogate-gradient BPTT with Adam, optional gradient flossing, logs and checkpoints.

The run is described by a :class:`RunConfig` (one dataclass per section of
the TOML file, see :mod:`refimpl.training.configfile` and docs/training.md) and
executed by a :class:`Trainer`:

* **Data.** Every random draw is a pure function of ``task.seed`` and
  counters (:meth:`TaskData.derive`): a stream id and the epoch, step or
  flossing-step index are the ``spawn_key`` of a ``numpy.random.SeedSequence``.
  Bit tasks default to *fresh* batches (``steps_per_epoch`` new batches per
  epoch); ``data = "fixed"`` draws one training set of ``train_size``
  sequences and reshuffles it every epoch. ``randman`` is always fixed (one
  set of manifolds; ``samples_per_class`` training and
  ``test_samples_per_class`` test samples per class), and so is ``shd``
  (Spiking Heidelberg Digits read from files, :mod:`refimpl.tasks.datasets`). The
  test set is drawn once, separately from training data, and scores every
  epoch.
* **Epoch boundary** ``e`` (epochs completed): pre-flossing and the flossing
  schedule (:mod:`refimpl.training.schedules`), then one training epoch, then the
  evaluation on the test set (loss, accuracy, ``‖∂L/∂x₀‖``, firing rates)
  that becomes log row ``e + 1``. Row 0 evaluates the initial network.
  With every logged spectrum the gradient dimensionality is logged too
  (:mod:`refimpl.dynamics.dimensionality`).
* **Initialization.** ``network.init = "default"`` draws
  :func:`refimpl.model.network.init_params`; ``"fluctuation"`` draws
  :func:`refimpl.model.init.fluctuation_init` (targets ``init_mu_U``,
  ``init_sigma_U``; input statistics ``init_nu_in`` or measured from the
  training inputs).
* **Resume.** Counters, parameters, both Adam states and the history of all
  logs are checkpointed atomically; since all randomness is derived from
  counters, a resumed run continues bit for bit like an uninterrupted one
  (only wall-clock times differ).

Modules, each importing only those before it (the value checkers are :mod:`refimpl.checks`):
:mod:`~refimpl.training.runconfig` (the sections and :class:`RunConfig`), :mod:`~refimpl.training.data`
(:class:`TaskData`), :mod:`~refimpl.training.history` (logs), :mod:`~refimpl.training.trainer`
(:class:`Trainer`). The measurements on a network (accuracy, state adjoints, error norms against lag)
are :mod:`refimpl.grad.measures`.
"""

from refimpl.grad.measures import accuracy, error_norm_vs_lag, error_norms, firing_rates, initial_state_grad_norm, state_adjoints
from refimpl.training.data import TaskData
from refimpl.training.history import EPOCH_FIELDS, History, read_log
from refimpl.training.runconfig import (SECTIONS, FlossingSection, LyapunovSection, NetworkSection, OutputSection,
    RunConfig, TaskSection, TrainingSection, config_diff, fluctuation_params, task_names)  # fmt: skip
from refimpl.training.trainer import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, Trainer, TrainingDiverged, train

__all__ = ["SECTIONS", "EPOCH_FIELDS", "CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "FlossingSection", "History",
    "LyapunovSection", "NetworkSection", "OutputSection", "RunConfig", "TaskData", "TaskSection", "Trainer",
    "TrainingDiverged", "TrainingSection", "accuracy", "config_diff", "error_norm_vs_lag", "error_norms",
    "firing_rates", "fluctuation_params", "initial_state_grad_norm", "read_log", "state_adjoints", "task_names",
    "train"]  # fmt: skip
