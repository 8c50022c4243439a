"""What every part of the model builder shares: the document type and ``as_list``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["Doc", "as_list"]

Doc = Mapping[str, Any]


def as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]
