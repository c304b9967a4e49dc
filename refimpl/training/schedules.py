"""Flossing schedules: when, during training, to run how many flossing steps.

A schedule is a pure decision rule. The trainer (:mod:`refimpl.training`)
asks it at every *epoch boundary* ``e`` (``e`` = the number of training
epochs completed so far, ``e = 0`` before the first epoch) in two phases:

1. :func:`pre_steps` — pre-flossing: ``E_p`` steps at ``e = 0`` (any
   schedule except ``none`` may set ``pre_steps``);
2. :func:`decide` — the schedule's own rule, evaluated after phase 1, which
   may need measurements of the current network (``λ₁`` and
   ``‖∂L/∂x₀‖``); :func:`needs_measurement` says when, so the trainer only
   measures what is used.

One *flossing step* is one Adam step (with the flossing optimizer's own
state) on the flossing loss of one fresh flossing input. A *session* is the
block of steps run at one boundary by :func:`decide` (pre-flossing is not
counted as a session). The exact rules, also in docs/training.md:

``none``
    never flosses.
``pre``
    ``pre_steps = E_p`` steps at ``e = 0``; nothing afterwards.
``periodic``
    (optional pre-flossing, then) a session of ``steps = E_i`` steps at every
    boundary ``e ≥ 1`` with ``e % every == 0`` (``every = E_f``), as long as
    fewer than ``max_sessions = N_i`` sessions have run: i.e. after epochs
    ``E_f, 2E_f, …, N_i·E_f``. ``phase`` shifts the sessions to the boundaries
    with ``(e + phase) % every == 0``: the reference code's
    ``mod(ei, Ef) == 0`` on its 1-based epoch ``ei = e + 1`` is ``phase = 1``
    (sessions after epochs ``E_f - 1, 2E_f - 1, …``).
``adaptive``
    (optional pre-flossing, then) at every boundary with
    ``e % check_every == 0`` (including ``e = 0``) and fewer than
    ``max_sessions`` sessions so far (``max_sessions = 0``: no limit), the
    trainer measures ``λ₁`` (1/step) and reads ``‖∂L/∂x₀‖`` of the latest
    evaluation; a session of ``steps = E_a`` steps runs when
    ``λ₁ < lo`` or ``λ₁ > hi`` or (``grad_threshold > 0`` and
    ``‖∂L/∂x₀‖ < grad_threshold``). The first reason that applies is logged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from refimpl.schema import SCHEDULE_KEYS, SCHEDULES, section

__all__ = ["SCHEDULES", "REASONS", "ScheduleConfig"]

#: reason codes written to the logs (``flossing/events/reason``)
REASONS = {"pre": 0, "periodic": 1, "lambda_low": 2, "lambda_high": 3, "grad_x0": 4}


@section("flossing", keys=SCHEDULE_KEYS)
class ScheduleConfig:
    """The schedule part of the ``[flossing]`` section (see the module docstring); its keys, defaults
    and ranges are those of :data:`refimpl.schema.SCHEMA`."""

    def validate(self):
        s = self.schedule
        if s == "none" and self.pre_steps:
            raise ValueError("flossing.pre_steps must be 0 with schedule = 'none' (use schedule = 'pre' for pre-flossing)")
        if s == "pre" and self.pre_steps < 1:
            raise ValueError(f"flossing.pre_steps must be >= 1 with schedule = 'pre', got {self.pre_steps}")
        if s == "periodic":
            for name in ("every", "steps", "max_sessions"):
                if getattr(self, name) < 1:
                    raise ValueError(f"flossing.{name} must be >= 1 with schedule = 'periodic', got {getattr(self, name)}")
        if s == "adaptive":
            if self.steps < 1:
                raise ValueError(f"flossing.steps must be >= 1 with schedule = 'adaptive', got {self.steps}")
            if self.check_every < 1:
                raise ValueError(f"flossing.check_every must be >= 1, got {self.check_every}")
            if not self.lo < self.hi:
                raise ValueError(f"flossing.lo must be < flossing.hi, got lo = {self.lo}, hi = {self.hi}")
            if math.isinf(self.lo) and math.isinf(self.hi) and self.grad_threshold == 0:
                raise ValueError(
                    "schedule = 'adaptive' needs a criterion: a finite flossing.lo or flossing.hi, or flossing.grad_threshold > 0"
                )

    @property
    def floss_ever(self) -> bool:
        return self.schedule != "none"


@dataclass
class ScheduleState:
    """What a schedule remembers between boundaries (saved in checkpoints)."""

    pre_done: bool = False
    sessions: int = 0
    events: list = field(default_factory=list)  # (epoch, steps, reason code)

    def to_dict(self) -> dict:
        return {"pre_done": self.pre_done, "sessions": self.sessions, "events": [list(e) for e in self.events]}

    @classmethod
    def from_dict(cls, d: dict) -> "ScheduleState":
        return cls(bool(d["pre_done"]), int(d["sessions"]), [tuple(e) for e in d["events"]])


def pre_steps(cfg: ScheduleConfig, state: ScheduleState, epoch: int) -> int:
    """Phase 1: the number of pre-flossing steps at boundary ``epoch`` (updates ``state``)."""
    if epoch != 0 or state.pre_done or cfg.schedule == "none":
        return 0
    state.pre_done = True
    if cfg.pre_steps:
        state.events.append((epoch, cfg.pre_steps, REASONS["pre"]))
    return cfg.pre_steps


def needs_measurement(cfg: ScheduleConfig, state: ScheduleState, epoch: int) -> bool:
    """Whether :func:`decide` at ``epoch`` will look at ``λ₁`` / ``‖∂L/∂x₀‖``."""
    if cfg.schedule != "adaptive" or epoch % cfg.check_every:
        return False
    return cfg.max_sessions == 0 or state.sessions < cfg.max_sessions


def decide(cfg: ScheduleConfig, state: ScheduleState, epoch: int, lambda1: float | None = None,
        grad_x0: float | None = None) -> tuple:  # fmt: skip
    """Phase 2: ``(steps, reason)`` of the session at boundary ``epoch`` (``(0, None)``: none).

    ``lambda1`` and ``grad_x0`` are only read when :func:`needs_measurement`
    is true. Updates ``state`` (session count, event list).
    """
    steps, reason = 0, None
    if cfg.schedule == "periodic":
        if epoch >= 1 and (epoch + cfg.phase) % cfg.every == 0 and state.sessions < cfg.max_sessions:
            steps, reason = cfg.steps, "periodic"
    elif needs_measurement(cfg, state, epoch):
        if lambda1 is None or grad_x0 is None:
            raise ValueError("the adaptive schedule needs lambda1 and grad_x0 at this boundary")
        if lambda1 < cfg.lo:
            reason = "lambda_low"
        elif lambda1 > cfg.hi:
            reason = "lambda_high"
        elif cfg.grad_threshold > 0 and grad_x0 < cfg.grad_threshold:
            reason = "grad_x0"
        if reason is not None:
            steps = cfg.steps
    if steps:
        state.sessions += 1
        state.events.append((epoch, steps, REASONS[reason]))
    return steps, reason
