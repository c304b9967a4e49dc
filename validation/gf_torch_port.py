"""An eager PyTorch float64 port of the gradient-flossing reference script (the rate RNN), for timing.

Written from the published protocol as docs/training.md states it ("The published protocol"), the
way a PyTorch user would port ``trainRNNflossing``: ``x_t = J tanh(x_{t-1}) + b + ws s_t``,
``r_t = wr x_t + offset``, logit BCE from (1-based) step ``2·delay``, Adam with per-array norm
clipping at 0.03 on ``(ws, J, wr, b, offset, xInit)``, one fresh batch of 16 sequences of T = 300
per epoch, and flossing with autograd through ``torch.linalg.qr``: 55 steps of a fresh
one-sequence input from ``xInit[:, 0]``, ``D = diag(tanh'(x_t)) J`` as in the reference, 75
exponents, 16 discarded QR steps, 500 pre-flossing steps and 500 before (1-based) epochs 100 and
200. It imports nothing from refimpl; it is the peer that ``refimpl``'s per-run time is compared
with (docs/performance.md). One thread:

    python -m validation.gf_torch_port [--no-floss] [--epochs 3001] [--delay 10]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def make_batch(rng, B, T, delay):
    s = rng.integers(0, 2, size=(T + 2 * delay, B))
    tgt = s[delay:-delay] ^ s[: -2 * delay]  # y_t = s_{t-delay} XOR s_{t-2 delay}
    return (torch.tensor(s[2 * delay :, :, None], dtype=torch.float64), torch.tensor(tgt[:, :, None], dtype=torch.float64))


def run(epochs=3001, floss=True, delay=10, N=80, B=16, T=300, k=75, Tp=55, seed=1):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    dd = torch.float64
    ws = torch.randn(N, 1, dtype=dd).requires_grad_()
    J = (torch.randn(N, N, dtype=dd) / N**0.5).requires_grad_()
    wr = torch.randn(1, N, dtype=dd).requires_grad_()
    b = (0.1 * torch.rand(N, dtype=dd)).requires_grad_()
    offset = torch.tensor([0.001], dtype=dd, requires_grad=True)
    with torch.no_grad():
        x = torch.randn(B, N, dtype=dd)
        for _ in range(100):
            x = torch.tanh(x) @ J.T + b
    x0 = x.clone().requires_grad_()
    params = [ws, J, wr, b, offset, x0]
    opt = torch.optim.Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    fopt = torch.optim.Adam([ws, J, b], lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    first = 2 * delay - 1
    Q0 = torch.linalg.qr(torch.randn(N, k, dtype=dd))[0]

    def floss_step():
        s = torch.tensor(rng.integers(0, 2, size=(Tp, 1)), dtype=dd)
        xs = x0[0].detach()
        Q = Q0
        ls = torch.zeros(k, dtype=dd)
        for n in range(Tp):
            xs = J @ torch.tanh(xs) + b + ws[:, 0] * s[n, 0]
            D = (1 - torch.tanh(xs) ** 2)[:, None] * J
            Q, R = torch.linalg.qr(D @ Q)
            if n >= 16:
                ls = ls + torch.log(torch.abs(torch.diagonal(R)))
        loss = torch.mean((ls / (Tp - 16)) ** 2)
        fopt.zero_grad()
        loss.backward()
        fopt.step()
        return float(loss)

    sessions = 0
    for ei in range(1, epochs + 1):
        if floss and (ei == 1 or (ei % 100 == 0 and sessions < 2)):
            if ei > 1:
                sessions += 1
            for _ in range(500):
                floss_step()
        u, y = make_batch(rng, B, T, delay)
        xs = x0
        loss = 0.0
        for t in range(T):
            xs = torch.tanh(xs) @ J.T + b + u[t] @ ws.T
            if t >= first:
                r = xs @ wr.T + offset
                loss = loss + torch.nn.functional.binary_cross_entropy_with_logits(r, y[t], reduction="sum")
        loss = loss / (B * (T - first))
        opt.zero_grad()
        loss.backward()
        with torch.no_grad():
            for p in params:  # Flux's ClipNorm(0.03), array by array
                n = torch.linalg.vector_norm(p.grad)
                if n > 0.03:
                    p.grad.mul_(0.03 / n)
        opt.step()
    return float(loss)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=3001)
    ap.add_argument("--delay", type=int, default=10)
    ap.add_argument("--no-floss", action="store_true")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    t = time.perf_counter()
    loss = run(a.epochs, not a.no_floss, a.delay)
    print(
        f"torch port: {a.epochs} epochs, flossing {'off' if a.no_floss else 'on'}: "
        f"{time.perf_counter() - t:.1f} s, final training loss {loss:.4f}"
    )


if __name__ == "__main__":
    main()
