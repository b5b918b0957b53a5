"""What validation and lint report: `Problem`, and `JourneyInvalid` for `parse`."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a definition, in plain words.

    `severity` is "error" (the definition is refused) or "warning" (lint).
    `node_id` / `edge_index` / `field` say where, so the editor can point at it;
    the message names the place too, so it reads well on its own.
    """

    severity: str
    message: str
    node_id: str | None = None
    edge_index: int | None = None
    field: str | None = None

    def to_json(self) -> dict:
        return asdict(self)


class JourneyInvalid(ValueError):
    """Raised by `parse` for a definition with errors; `problems` lists them all."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("; ".join(problem.message for problem in self.problems) or "invalid journey")


def warning(message: str, node_id: str | None = None, edge_index: int | None = None, field: str | None = None):
    """A lint `Problem`."""
    return Problem("warning", message, node_id, edge_index, field)


def never_taken(edge, reason: str) -> Problem:
    """The lint warning for an edge no contact can ever follow."""
    return warning(
        f"edge #{edge.index} ({edge.source} -> {edge.target}) can never be taken: {reason}",
        edge.source,
        edge.index,
        "when",
    )
