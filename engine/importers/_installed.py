"""The installed botocore (the ``aws`` extra): its version and its waiter models.

botocore is imported only inside these functions, when an import runs.
"""

from __future__ import annotations

from typing import Any

__all__ = ["botocore_version", "waiter_services"]


def botocore_version() -> str:
    """Return the installed botocore's version."""
    import botocore  # noqa: PLC0415 - the aws extra, only when importing

    return str(botocore.__version__)


def _loader() -> Any:
    from botocore.loaders import Loader  # noqa: PLC0415 - the aws extra, only when importing

    return Loader()


def waiter_services() -> tuple[str, ...]:
    """Return the services whose installed botocore model has waiters, sorted.

    Many services ship an empty ``waiters-2`` model; those are left out.
    """
    loader = _loader()
    return tuple(
        sorted(
            name
            for name in loader.list_available_services("waiters-2")
            if loader.load_service_model(name, "waiters-2").get("waiters")
        )
    )
