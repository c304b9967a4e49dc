"""Per-epoch time of a refimpl checkout on the N = 80, B = 16, T = 300 network of the published protocol,
with a test evaluation (256 sequences) after every one-step epoch — the only choice before issue 12.

    python analysis/gf_epoch_time.py CHECKOUT_DIR rate|binary EPOCHS

``CHECKOUT_DIR`` is put first on ``sys.path`` (e.g. a ``git worktree`` of an older commit), so the
same script times the code before and after a change (docs/performance.md).
"""

import sys
import time

sys.path.insert(0, sys.argv[1])
from refimpl.training.configfile import from_dict  # noqa: E402  (the checkout under test comes first)
from refimpl.training import Trainer  # noqa: E402

cell, E = sys.argv[2], int(sys.argv[3])
d = {
    "network": {
        "cell": cell,
        "layers": [80],
        "tau_out": 0.0,
        "readout": "state",
        "surrogate": "gaussian",
        "slope": 1.8,
        "w_out": 8.94427190999916,
    },
    "task": {"name": "delayed_xor", "T": 300, "delta": 10, "encoding": "analog", "seed": 1},
    "training": {"epochs": E, "batch_size": 16, "steps_per_epoch": 1, "test_size": 256, "lr": 1e-3, "clip_norm": 0.03},
    "lyapunov": {"k": 16, "every": 0},
    "output": {"checkpoint_every": 0, "progress": False},
}
print(Trainer.__module__, sys.modules["refimpl"].__file__)
tr = Trainer(from_dict(d))
tr.fit(2)
t = time.perf_counter()
tr.fit(E)
dt = time.perf_counter() - t
print(f"{cell}: {(dt) / (E - 2) * 1e3:.1f} ms per epoch over {E - 2} epochs")
