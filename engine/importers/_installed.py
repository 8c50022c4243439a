"""The installed botocore (the ``aws`` extra): its version and its waiter models.

botocore is imported with this module, which only an import runs.
"""

from __future__ import annotations

from typing import Any

# At import time, not on first use: the CLI turns an ImportError raised while it
# imports the importer into "pip install 'statepoll[aws]'", and jmespath, which
# _jmespath imports, is often installed without botocore (by other tools).
import botocore
import botocore.loaders

__all__ = ["botocore_version", "waiter_services"]


def botocore_version() -> str:
    """Return the installed botocore's version."""
    return str(botocore.__version__)


def _loader() -> Any:
    return botocore.loaders.Loader()


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
