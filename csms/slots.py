"""Frozen slotted dataclasses built without their ``__init__``, on the hot paths.

A frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``:
2.4 us for a seven-field meter sample against 0.5 by its slots (docs/profiling.md,
"The frame path"). The few classes built per sample, reading or meter value are
built instead with ``cls.__new__(cls)`` and each field's slot setter; a builder
must set every field, so the setters are handed out only for the class's exact
fields, checked when the builder's module is imported.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any


def slot_setters(cls: type, names: tuple[str, ...]) -> tuple[Callable[[Any, Any], None], ...]:
    """The slot setter of each field of ``cls`` named in ``names``, in that order.

    ImportError unless ``names`` are the dataclass's fields in declaration order:
    a field added to the class must be set by the code that builds it this way.
    """
    fields = tuple(f.name for f in dataclasses.fields(cls))
    if fields != names:
        raise ImportError(
            f"{cls.__qualname__} has fields {fields}, not {names}: update its builder"
        )
    return tuple(vars(cls)[name].__set__ for name in names)
