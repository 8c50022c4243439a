"""What every block of the spec model shares: the field that says where it sits."""

from __future__ import annotations

from typing import Any

import attrs

__all__ = ["loc"]


def loc() -> Any:
    """Return the ``location`` field of a block: a JSON pointer, not compared."""
    # Where the block sits in its file; not part of equality, so two specs that
    # differ only in layout still compare equal.
    return attrs.field(default="", eq=False, repr=False)
