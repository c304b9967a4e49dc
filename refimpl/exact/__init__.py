"""Exact event-based simulation of current-based LIF networks (docs/exact.md): the closed-form flow
between events (:mod:`~refimpl.exact.flow`), the event loop (:mod:`~refimpl.exact.events`) and a
time-stepped reference built on the library's discrete model (:mod:`~refimpl.exact.reference`)."""
