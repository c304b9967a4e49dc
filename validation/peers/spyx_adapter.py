#!/usr/bin/env python
"""Run spyx's own ``RLIF`` neuron and ``LI`` readout on the golden cases they can express; write a candidate.

    python validation/peers/spyx_adapter.py REFERENCE.h5 CANDIDATE.h5 [--case NAME ...]
    refimpl validate CANDIDATE.h5 --reference REFERENCE.h5

No shipped golden case has spyx's switches (its LIF has no synaptic current);
``validation/peers/references.py`` writes reference cases that do
(``spyx_rlif_superspike``, ``spyx_rlif_triangular``). Like the other
adapters this imports nothing from refimpl; it reads the file with h5py and
the config keys of docs/golden-format.md.

What spyx's ``spyx.nn.RLIF`` (spyx 1.0.0, ``spyx/nn.py``) computes, in
docs/model.md's notation (docs/peers.md has the reading of the source):

    S_t     = H(V_t - θ)                      returned by the call, with the surrogate gradient
    V_{t+1} = β V_t + x_t + S_t W - θ S_t      the reset term keeps the spike's gradient

With our ``x_t = W_in z_t + b`` and ``W = W_recᵀ`` (spyx multiplies row
vectors), this is our clif with ``α = 0``, syn_input = new, input_gain =
unit, reset = subtract, reset_grad = attached. ``α = 0`` means
``exp(-dt/τ_syn)`` is exactly 0.0 in float64 (``τ_syn = 1e-3`` with ``dt = 1``):
the current ``I_{t+1} = x_t + W_rec S_t`` then has no memory. spyx's LIF has
no current state, so ``forward/…/I`` is written as that drive, with the
feedback taken through the module's own ``recurrent_w``; ``I_0`` is the
parameter ``I0``, which has no effect (its gradient is 0). The surrogates:
``spyx.axn.superspike(k=γ)`` is our fast_sigmoid, ``spyx.axn.triangular(k=γ)``
our triangle; their forward is ``(x > 0)`` in the input's dtype, so with
``jax_enable_x64`` everything is float64.

Wiring, ours: layer ``l > 1`` gets the spikes that layer ``l-1`` returned in
the same call (spyx returns ``S_t``, which is exactly docs/model.md §1.2). The
readout is spyx's ``LI`` with ``β = κ`` and input ``(1-κ)(W_out s_{t+1} + b_out)``.
It needs ``s_{t+1}``, the spikes (or membrane) after step ``t``, which spyx's
neuron returns only at its next call; so the network makes one call more
than there are input steps (the input of that call is zero and changes
nothing that is used), and ``LI`` reads the spikes of call ``t+1`` to give
our ``y_t``. Time runs in ``jax.lax.scan``; gradients are ``jax.value_and_grad``.

Only forward states, ``y``, the loss and its gradients are written.
"""

from __future__ import annotations

import sys
import types

import numpy as np

try:
    from . import common
except ImportError:  # run as a script
    import common


def incompatibility(c: dict) -> str | None:
    """Why spyx's RLIF cannot run this case, or None."""
    dt = float(c.get("dt", 1.0))
    sizes = [int(n) for n in c["layers"]]
    try:
        alpha_zero = all(np.all(np.exp(-dt / common.per_neuron(c["tau_syn"], sizes, l)) == 0.0) for l in range(len(sizes)))
    except ValueError:
        alpha_zero = False
    return common.skip_reasons(
        [
            (c["cell"] == "clif", f"cell {c['cell']!r} (RLIF is a spiking LIF)"),
            (
                alpha_zero,
                "exp(-dt/τ_syn) is not exactly 0 (spyx's LIF/RLIF have no synaptic current; "
                "its CuBaLIF subtracts βθ, docs/peers.md)",
            ),
            (c["syn_input"] == "new", "syn_input 'old' (RLIF adds the input of the same step)"),
            (c["input_gain"] == "unit", "input_gain 'one_minus_beta' (RLIF adds the input with gain 1)"),
            (c["reset"] == "subtract", f"reset {c['reset']!r} (RLIF subtracts θ)"),
            (c["reset_grad"] == "attached", f"reset_grad {c['reset_grad']!r} (RLIF differentiates its reset)"),
            (not c["smooth"], "smooth mode (spyx's forward is always H)"),
            (
                c["surrogate"]["name"] in ("fast_sigmoid", "triangle"),
                f"surrogate {c['surrogate']['name']!r} (spyx has superspike = fast_sigmoid and triangular = "
                "triangle; its arctan and tanh equal ours only at one slope each)",
            ),
        ]
    )


def _enable_x64():
    import jax

    jax.config.update("jax_enable_x64", True)
    return jax


def jax_ops():
    """The operations of :func:`common.loss` on jax arrays."""
    import jax.numpy as jnp
    from jax.scipy.special import logsumexp

    return types.SimpleNamespace(
        softplus=lambda x: jnp.logaddexp(x, 0.0),
        labels=lambda targets: targets.astype(jnp.int64),
        # jnp.argmax returns the first maximum, the step that gets the gradient in ce_max
        at_first_max=lambda x: jnp.take_along_axis(x, jnp.argmax(x, axis=0)[None], axis=0)[0],
        logsumexp=lambda z: logsumexp(z, axis=1),
        pick=lambda z, labels: jnp.take_along_axis(z, labels[:, None], axis=1)[:, 0],
    )


def run_case(c: dict, params: dict, inputs: np.ndarray, targets: np.ndarray) -> dict:
    """Forward pass through spyx's RLIF and LI, loss and jax gradients: golden path -> array."""
    jax = _enable_x64()
    import jax.numpy as jnp
    from flax import nnx
    from spyx import axn
    from spyx import nn as snn

    dt, theta = float(c["dt"]), float(c["theta"])
    sizes = [int(n) for n in c["layers"]]
    gamma = float(c["surrogate"]["slope"])
    act = axn.superspike(k=gamma) if c["surrogate"]["name"] == "fast_sigmoid" else axn.triangular(k=gamma)
    betas = [np.exp(-dt / common.per_neuron(c["tau_mem"], sizes, l)) for l in range(len(sizes))]
    kappa = common.readout_decay(c)
    u = jnp.asarray(inputs, dtype=jnp.float64)
    T, B, _ = u.shape
    u = jnp.concatenate([u, jnp.zeros((1,) + u.shape[1:])])  # the extra call's input
    tg = jnp.asarray(targets if c["loss"]["name"].startswith("ce_") else np.asarray(targets, np.float64))

    def simulate(p):
        layers = []
        for l, N in enumerate(sizes):
            q = f"layer{l + 1}/"
            m = snn.RLIF((N,), beta=1.0, threshold=theta, activation=act, rngs=nnx.Rngs(0))
            m.beta = nnx.Param(jnp.asarray(betas[l]))  # per-neuron β
            m.recurrent_w = nnx.Param(p[q + "W_rec"].T)  # spyx: spikes @ W
            layers.append(m)
        readout = snn.LI((c["n_out"],), beta=kappa, rngs=nnx.Rngs(0))
        V0 = tuple(jnp.broadcast_to(p[f"layer{l + 1}/V0"], (B, N)) for l, N in enumerate(sizes))

        def call(V, u_t):  # one call of every layer, in order
            z, out = u_t, []
            for l, m in enumerate(layers):
                q = f"layer{l + 1}/"
                x = z @ p[q + "W_in"].T + p[q + "b"]
                S, V_next = m(x, V[l])
                out.append((S, V_next, x + S @ m.recurrent_w[...]))
                z = S
            return tuple(o[1] for o in out), tuple(out)

        _, seq = jax.lax.scan(call, V0, u)  # T + 1 calls
        recS = [seq[l][0] for l in range(len(sizes))]  # S_0 … S_T
        recV = [jnp.concatenate([V0[l][None], seq[l][1][:T]]) for l in range(len(sizes))]
        recI = [jnp.concatenate([jnp.broadcast_to(p[f"layer{l + 1}/I0"], (1, B, N)), seq[l][2][:T]]) for l, N in enumerate(sizes)]
        s = recS[-1][1:] if c["readout"]["source"] == "spikes" else recV[-1][1:]  # s_{t+1}, t < T
        drive = (1.0 - kappa) * (s @ p["readout/W_out"].T + p["readout/b_out"])

        def read(U, x_t):  # LI's output is our y_t
            y_t, U = readout(x_t, U)
            return U, y_t

        _, y = jax.lax.scan(read, jnp.zeros((B, c["n_out"])), drive)
        loss = common.loss(c["loss"]["name"], int(c["loss"]["t0"]), y, tg, jax_ops())
        traj = {"y": y}
        for l in range(len(sizes)):
            q = f"forward/layer{l + 1}/"
            traj[q + "V"], traj[q + "I"], traj[q + "S"] = recV[l], recI[l], recS[l]
        return loss, traj

    p = {k: jnp.asarray(v, dtype=jnp.float64) for k, v in params.items()}
    (loss, traj), grads = jax.jit(jax.value_and_grad(simulate, has_aux=True))(p)
    out = {k: np.asarray(v) for k, v in traj.items() if k != "y"}
    out["forward/readout/y"] = np.asarray(traj["y"])
    out["loss"] = np.asarray(float(loss))
    for k in params:
        out[f"grad/{k}"] = np.asarray(grads[k])
    return out


def process(golden: str, candidate: str, cases=None, verbose=True) -> list:
    """Write a candidate with every runnable case; returns ``[(case, reason)]`` of the skipped ones."""
    jax = _enable_x64()
    import spyx

    return common.process(golden, candidate, cases, incompatibility, run_case,
        f"validation/peers/spyx_adapter.py (spyx {spyx.__version__}, jax {jax.__version__}, x64)", verbose)  # fmt: skip


def main(argv=None) -> int:
    """The command line of the module docstring."""
    return common.main(argv, __doc__, process)


if __name__ == "__main__":
    sys.exit(main())
