"""Lazy package exports (PEP 562): names are imported from their module on first access.

Used by ``harness`` and ``harness.augment`` so that importing a light submodule (for example
``harness.augment.space`` from ``mappings``) does not pull in every stage, which would create an
import cycle between ``mappings`` and ``harness``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, namespace: dict, exports: dict[str, str]) -> tuple[Callable, Callable]:
    """``(__getattr__, __dir__)`` for ``package`` whose public names live in ``exports`` (name -> module)."""

    def __getattr__(name: str) -> Any:
        try:
            module = exports[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
