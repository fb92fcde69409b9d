"""Garbage-collector settings of a CSMS process: shorter and fewer full collections.

CPython's cyclic collector stops the process for a full (generation 2)
collection in one go, and its cost grows with every container object the
process holds: with 1,000 chargers connected that was 100-300 ms of CPU,
several times a minute at 300 calls/s -- the event loop's largest stalls
(docs/profiling.md, "Stalls named"). Two settings make them rarer and shorter:

* ``gc.freeze()`` once start-up is done moves every object alive then --
  modules, classes, functions, the API's routes and models, compiled schemas:
  the larger part of the heap -- into the permanent generation, which
  collections never scan again. It lives as long as the process anyway;
* a larger young-generation threshold (``gc_gen0_threshold``) lets more of a
  message's temporary objects die before a collection would otherwise
  promote them to an older generation, so fewer reach generation 2 and full
  collections, triggered by how much it grew, come less often.
"""

from __future__ import annotations

import gc

import structlog

from csms.config import Settings

log = structlog.get_logger(__name__)


def apply_thresholds(settings: Settings) -> None:
    """Set the young generation's threshold (the older two keep CPython's)."""
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(settings.gc_gen0_threshold, gen1, gen2)


def freeze_start_up_heap(settings: Settings) -> int:
    """Collect once, then freeze what is left; returns the number of objects frozen."""
    if not settings.gc_freeze:
        return 0
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.info("gc.frozen", objects=frozen, threshold=gc.get_threshold())
    return frozen
