"""Spectra and flossing gradients of several trajectories at once, on several cores (docs/performance.md,
"Threads").

One spectrum is a chain of QR steps, each needing the last, so one trajectory runs on one core; several
trajectories (the input sequences of a batch) are independent. :func:`spectra` computes the spectrum of every
trajectory of a batch (docs/model.md §6, each as ``lyapunov.spectrum`` with ``batch_index = b``) and
:func:`floss_mean` the flossing loss and gradient averaged over them (§7: the mean of the per-sequence losses
``(1/k) Σ (λ_i − λ*)²``, and so the mean of their gradients). With ``workers > 1`` (the default: one a
core, :func:`refimpl.threads.default_workers`) the trajectories run in that many threads
(:func:`refimpl.threads.map_threads`): the one-layer kernels release the GIL (``nogil``) and each BLAS call
stays on one thread (the default of :mod:`refimpl.threads`), so the work spreads over the cores without a
second thread pool inside BLAS competing for them. Results do not depend on ``workers``: every trajectory is
computed by the same code and the mean is taken in trajectory order.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from refimpl.dynamics import flossing, lyapunov
from refimpl.model.config import FlossConfig, LyapunovConfig, NetworkConfig
from refimpl.model.network import check_inputs, check_params
from refimpl.threads import map_threads


def _checked(cfg, params, inputs, lcfg):
    params = check_params(cfg, params)
    inputs = check_inputs(cfg, inputs)
    lyapunov.check_lyapunov(cfg, lcfg, inputs.shape[0], inputs.shape[1])  # bad settings: before any work
    return params, inputs


def spectra(cfg: NetworkConfig, params: dict, inputs, lcfg: LyapunovConfig, Q0=None, workers: int | None = None) -> list:
    """The surrogate Lyapunov spectrum of every trajectory of ``inputs (T, B, n_in)``: a list of ``B``
    :class:`~refimpl.dynamics.lyapunov.LyapunovResult` (``lcfg.batch_index`` is ignored; all start from the
    same ``Q0``)."""
    params, inputs = _checked(cfg, params, inputs, lcfg)
    return map_threads(lambda b: lyapunov.spectrum(cfg, params, inputs, replace(lcfg, batch_index=b), Q0),
        inputs.shape[1], workers)  # fmt: skip


def floss_mean(cfg: NetworkConfig, params: dict, inputs, lcfg: LyapunovConfig, fcfg: FlossConfig = FlossConfig(),
        Q0=None, checkpoint_every: int | None = None, workers: int | None = None) -> flossing.FlossResult:  # fmt: skip
    """The flossing loss averaged over the trajectories of ``inputs (T, B, n_in)`` and its gradient; the
    exponents returned are the mean exponents."""
    params, inputs = _checked(cfg, params, inputs, lcfg)
    res = map_threads(lambda b: flossing.value_and_grad(cfg, params, inputs, replace(lcfg, batch_index=b), fcfg, Q0,
        checkpoint_every), inputs.shape[1], workers)  # fmt: skip
    B = len(res)
    grads = {key: sum(r.grads[key] for r in res) / B for key in res[0].grads}
    return flossing.FlossResult(float(np.mean([r.loss for r in res])), np.mean([r.exponents for r in res], axis=0),
        grads, res[0].n_steps)  # fmt: skip
