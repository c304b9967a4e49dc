"""Issue 17, point 5: where the expected surrogate gradient of escape-noise neurons is the gradient of
the expected loss, and where it is not (docs/exact.md §10). Exact enumeration of every spike pattern
(refimpl.exact.escape); input x ~ U(0, 1) (seed 0), w_in = 1, b = 0.2, β = 0.8, θ = 1, slope 2.

    python analysis/escape_noise.py
"""

from __future__ import annotations

import numpy as np

from refimpl.exact.escape import EscapeNet, expectations, loop_integral
from refimpl.exact.escape import flat_params as params


CASES = (
    ("one neuron, no reset, linear loss, sigmoid escape", EscapeNet(N=1, T=10), {}),
    ("one neuron, no reset, linear loss, exponential escape", EscapeNet(N=1, T=10, escape="exponential"), {}),
    ("one neuron, no reset, quadratic loss", EscapeNet(N=1, T=10, loss="quadratic"), {}),
    ("one neuron, subtractive reset (detached), linear loss", EscapeNet(N=1, T=10, reset=1), {}),
    ("one neuron, subtractive reset (attached), linear loss", EscapeNet(N=1, T=10, reset=1, reset_grad="attached"), {}),
    ("one neuron, self-connection 0.5, linear loss", EscapeNet(N=1, T=10), {"W": [[0.5]]}),
    ("two layers (1 → 2), linear loss on 2", EscapeNet(N=2, T=7), {"w_in": [1.0, 0.0], "W": [[0, 0], [1.0, 0]]}),
    ("two recurrent neurons, linear loss", EscapeNet(N=2, T=7), {"w_in": [1.0, 0.5], "W": [[0.3, -0.5], [1.0, 0.3]]}),
)


def main() -> int:
    x = np.random.default_rng(0).uniform(0, 1, 10)
    print("| network | E[L] | ‖E[SG] − ∇E[L]‖ / ‖∇E[L]‖ | cos(E[SG], ∇E[L]) |\n|---|---|---|---|")
    for name, net, kw in CASES:
        e = expectations(net, params(net, **kw), x[: net.T])
        bias = np.linalg.norm(e.surrogate - e.grad) / np.linalg.norm(e.grad)
        cos = e.surrogate @ e.grad / (np.linalg.norm(e.surrogate) * np.linalg.norm(e.grad))
        print(f"| {name} | {e.loss:.4f} | {bias:.2e} | {cos:.5f} |")
    print("\nloop integrals ∮ g·dp around a circle of radius 0.3 (64 points):")
    print("| network, plane | g = E[SG] | g = ∇E[L] |\n|---|---|---|")
    chain = {"w_in": [1.0, 0.0], "W": [[0, 0], [1.0, 0]]}
    for name, net, kw, i, j in (("one neuron, no reset; (w_in, b)", EscapeNet(N=1, T=10), {}, 0, 2),
            ("one neuron, reset (detached); (w_in, b)", EscapeNet(N=1, T=10, reset=1), {}, 0, 2),
            ("two layers; (w_in[1], W[2,1])", EscapeNet(N=2, T=7), chain, 0, 4)):  # fmt: skip
        li = loop_integral(net, params(net, **kw), x[: net.T], i, j, radius=0.3)
        print(f"| {name} | {li['surrogate']:+.3e} | {li['gradient']:+.1e} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
