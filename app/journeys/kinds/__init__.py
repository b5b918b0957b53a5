"""The designer's registries: `NODE_KINDS` and `CONDITION_KINDS`, one module each, keyed and ordered
like the engine's `NODE_TYPES` and `CONDITIONS`.

Adding a node type touches: `app/engine/nodes/<type>.py`, `app/journeys/kinds/nodes/<type>.py`,
`templates/journeys/kinds/nodes/<type>.html` and `tests/engine/cases/<type>.json`;
`tests/test_registries.py` fails when one is missing.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from app.engine.conditions import CONDITIONS, condition_name
from app.engine.nodes import NODE_TYPES

from . import conditions as condition_modules
from . import nodes as node_modules
from .base import ConditionKind, NodeKind, UnknownNodeKind


def _discover(package, attribute: str) -> dict:
    found = {}
    for info in pkgutil.iter_modules(package.__path__):
        kind = getattr(importlib.import_module(f"{package.__name__}.{info.name}"), attribute, None)
        if kind is not None:
            found[kind.name] = kind
    return found


def _in_engine_order(found: dict, engine: dict) -> dict:
    return {name: found[name] for name in engine if name in found} | {
        name: kind for name, kind in found.items() if name not in engine
    }


NODE_KINDS: dict[str, NodeKind] = _in_engine_order(_discover(node_modules, "NODE_KIND"), NODE_TYPES)
CONDITION_KINDS: dict[str, ConditionKind] = _in_engine_order(_discover(condition_modules, "CONDITION_KIND"), CONDITIONS)
UNKNOWN = UnknownNodeKind()
ALL_TYPE_KEYS = frozenset(key for node_type in NODE_TYPES.values() for key in node_type.keys)


def node_kind(type_name: Any) -> NodeKind:
    """The designer half of a node type; `UNKNOWN` for a type no module defines."""
    return NODE_KINDS.get(type_name, UNKNOWN) if isinstance(type_name, str) else UNKNOWN


def condition_kind_name(when: Any) -> str | None:
    """The registry name of a draft's `when` (None for one that names no condition)."""
    try:
        return condition_name(when)
    except ValueError:
        if isinstance(when, dict):
            return next((key for key in when if key in CONDITION_KINDS), None)
        return None


def allowed_conditions(type_name: Any) -> list[str]:
    """The condition kinds an edge out of this node type may carry, in registry order."""
    node_type = NODE_TYPES.get(type_name) if isinstance(type_name, str) else None
    allowed = node_type.conditions if node_type else frozenset(CONDITION_KINDS)
    return [name for name in CONDITION_KINDS if name in allowed]


def edge_label(edge: dict, source: dict, siblings: list[dict]) -> str:
    """What an edge says on the diagram, from its condition and its source node."""
    when = edge.get("when")
    name = condition_kind_name(when)
    if name is not None:
        text = CONDITION_KINDS[name].label(when)
    else:
        text = when if isinstance(when, str) else "?"
    return node_kind(source.get("type")).edge_label(edge, source, siblings, text)
