"""The replies test bench: which edge of a `wait` node each of many replies would take.

Operators paste replies (or upload past inbound messages, or take a run's
unmatched replies) and see, with the engine's own conditions
(`app.engine.nodes.wait.reply_edge`), where each one goes; a reply that
matches no reply condition is flagged, and one of its words can be added as
a keyword to an edge (`add_keyword`, a pure edit of the draft).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from app import engine
from app.engine.conditions.base import normalize_words
from app.engine.nodes.wait import reply_edge
from app.journeys.forms import Refused

MAX_REPLIES = 500
TEXT_COLUMNS = ("body", "text", "message", "reply", "mensagem")


class BenchError(Refused):
    """The replies or the keyword could not be used; the message says why (the editor shows it)."""


@dataclass(frozen=True)
class BenchRow:
    reply: str
    edge_index: int | None  # None: no edge; the contact would go on waiting
    target: str | None
    condition: str | None  # the condition's name (`keywords`, `fallback`, …)

    @property
    def matched(self) -> bool:
        """Taken by a reply condition (not `fallback`, not left waiting)."""
        return self.edge_index is not None and self.condition != "fallback"

    @property
    def words(self) -> list[str]:
        """The reply's distinct words, as keyword matching reads them: the choices for a new keyword."""
        return list(dict.fromkeys(normalize_words(self.reply).split()))


def replies_from_text(text: str) -> list[str]:
    """One reply a line, blank lines skipped."""
    return _capped([line.strip() for line in (text or "").splitlines() if line.strip()])


def replies_from_csv(data: bytes) -> list[str]:
    """Replies from a CSV of past inbound messages: its Body/text/message column, else its first column."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        raise BenchError("the CSV file is empty")
    header = [cell.strip().casefold() for cell in rows[0]]
    column = next((header.index(name) for name in TEXT_COLUMNS if name in header), None)
    body = rows[1:] if column is not None else rows
    column = column or 0
    return _capped([row[column].strip() for row in body if len(row) > column and row[column].strip()])


def route(doc: dict, node_id: str, replies: list[str]) -> list[BenchRow]:
    """Where each reply goes out of the wait node `node_id` of a valid draft."""
    definition = engine.parse(doc)
    node = definition.node(node_id)
    if node is None or node.type != "wait":
        raise BenchError(f"node {node_id!r} is not a wait node")
    edges = definition.outgoing(node_id)
    rows = []
    for reply in replies:
        edge = reply_edge(edges, reply)
        rows.append(BenchRow(reply, *((edge.index, edge.target, edge.when) if edge else (None, None, None))))
    return rows


def add_keyword(doc: dict, node_id: str, edge_index: int, word: str) -> None:
    """Add `word` to the keywords of edge `edge_index` out of `node_id` (in place)."""
    edges = doc.get("edges") or []
    if not 0 <= edge_index < len(edges) or edges[edge_index].get("from") != node_id:
        raise BenchError(f"edge #{edge_index} does not leave node {node_id!r}")
    when = edges[edge_index].get("when")
    if not isinstance(when, dict) or not isinstance(when.get("keywords"), list):
        raise BenchError(f"edge #{edge_index} has no keywords to add to")
    word = word.strip()
    if not normalize_words(word):
        raise BenchError("the keyword has no letters or digits")
    if normalize_words(word) not in {normalize_words(str(existing)) for existing in when["keywords"]}:
        when["keywords"].append(word)


def keyword_edges(doc: dict, node_id: str) -> list[tuple[int, dict]]:
    """(index, edge) of the node's edges with a keyword list: where a new keyword can go."""
    return [
        (index, edge)
        for index, edge in enumerate(doc.get("edges") or [])
        if edge.get("from") == node_id and isinstance(edge.get("when"), dict) and "keywords" in edge["when"]
    ]


def _capped(replies: list[str]) -> list[str]:
    if len(replies) > MAX_REPLIES:
        raise BenchError(f"{len(replies)} replies: the test bench takes at most {MAX_REPLIES} at once")
    return replies
