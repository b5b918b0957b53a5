"""The replies test bench of a `wait` node: paste, upload or collect replies and see which edge each takes."""

from __future__ import annotations

from flask import g, render_template, request
from sqlalchemy import select

from app.extensions import db
from app.journeys import store as journeys
from app.journeys import testbench
from app.models import Run, Step
from app.web.journeys import bp
from app.web.journeys.common import edit, load_journey, refuse

RUN_REPLIES_SCANNED = 2000  # newest reply steps looked at for "the runs' unmatched replies"


@bp.post("/<int:journey_id>/nodes/<node_id>/testbench")
def testbench_run(journey_id: int, node_id: str):
    journey = load_journey(journey_id)
    if journeys.problems_of(journey.draft):
        return refuse("Fix the errors listed under Problems to test replies.", 422)
    try:
        replies = _replies(journey, node_id)
        rows = testbench.route(journey.draft, node_id, replies)
    except testbench.BenchError as error:
        return refuse(f"Test bench: {error}.", 422)
    return _result(journey, node_id, rows)


@bp.post("/<int:journey_id>/nodes/<node_id>/testbench/keyword")
def testbench_add_keyword(journey_id: int, node_id: str):
    edge_index = request.form.get("edge", type=int)
    word = request.form.get("word", "")
    if edge_index is None:
        return refuse("Pick the edge to add the keyword to.", 422)

    replies = testbench.replies_from_text(request.form.get("replies", ""))

    def change(doc):
        testbench.add_keyword(doc, node_id, edge_index, word)
        # The panel comes back whole: it shows the bench run again on the edited draft.
        g.testbench = _result_context(doc, node_id, testbench.route(doc, node_id, replies), (word.strip(), edge_index))
        return node_id

    return edit(journey_id, change)


def _replies(journey, node_id: str) -> list[str]:
    if request.form.get("source") == "runs":
        replies = _unmatched_run_replies(journey.id, node_id)
        if not replies:
            raise testbench.BenchError("no run of this journey has an unmatched reply at this node yet")
        return replies
    upload = request.files.get("file")
    if upload is not None and upload.filename:
        return testbench.replies_from_csv(upload.read())
    replies = testbench.replies_from_text(request.form.get("replies", ""))
    if not replies:
        raise testbench.BenchError("write some replies, one a line, or upload a CSV of past inbound messages")
    return replies


def _unmatched_run_replies(journey_id: int, node_id: str) -> list[str]:
    """Texts of the newest replies that matched nothing at this node, in any run of the journey."""
    details = db.session.scalars(
        select(Step.detail)
        .join(Run, Run.id == Step.run_id)
        .where(Run.journey_id == journey_id, Step.kind == "reply", Step.node_id == node_id)
        .order_by(Step.id.desc())
        .limit(RUN_REPLIES_SCANNED)
    ).all()
    texts = [str(detail.get("text") or "") for detail in details if not detail.get("matched")]
    return list(dict.fromkeys(text for text in texts if text.strip()))[: testbench.MAX_REPLIES]


def _result(journey, node_id: str, rows) -> str:
    return render_template(
        "journeys/_partials/testbench_result.html",
        journey=journey,
        bench=_result_context(journey.draft, node_id, rows, None),
    )


def _result_context(doc: dict, node_id: str, rows, added) -> dict:
    return {
        "node_id": node_id,
        "rows": rows,
        "edges": testbench.keyword_edges(doc, node_id),
        "replies": "\n".join(row.reply for row in rows),
        "added": added,
    }
