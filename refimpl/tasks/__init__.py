"""Tasks and data: the generated tasks (:mod:`~refimpl.tasks.generators`: delayed XOR, delayed copy,
randman, Poisson input) and spike data sets read from files in the SHD layout
(:mod:`~refimpl.tasks.datasets`). The generators' public names are importable from here."""

from refimpl.tasks.generators import (  # noqa: F401
    CLASS_LOSSES,
    ENCODINGS,
    PER_STEP_LOSSES,
    TASKS,
    TaskBatch,
    delayed_copy,
    delayed_xor,
    encode_bits,
    make_task,
    poisson_inputs,
    randman,
)
