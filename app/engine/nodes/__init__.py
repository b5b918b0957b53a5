"""Node types: a registry keyed by the JSON `type`, one module per type.

Every module of this package that defines `NODE_TYPE` (an instance of a
`base.NodeType` subclass) is a node type: adding a module adds the type, in
the place its `order` gives it. The designer finds its own half of each type
through `app.journeys.kinds`; `tests/test_registries.py` fails when a
registered type lacks any piece (engine module, designer module, template,
case file).
"""

from __future__ import annotations

import importlib
import pkgutil

from .base import CHANNELS, NodeType, a_or_an


def _discover() -> dict[str, NodeType]:
    found = []
    for info in pkgutil.iter_modules(__path__):
        node_type = getattr(importlib.import_module(f"{__name__}.{info.name}"), "NODE_TYPE", None)
        if node_type is not None:
            found.append(node_type)
    return {node_type.name: node_type for node_type in sorted(found, key=lambda node_type: node_type.order)}


NODE_TYPES: dict[str, NodeType] = _discover()

__all__ = ["CHANNELS", "NODE_TYPES", "NodeType", "a_or_an"]
