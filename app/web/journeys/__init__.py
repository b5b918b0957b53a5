"""Journey designer pages: the list, the editor (diagram, node and edge forms, problems, preview,
simulator) and versions.

Every edit is a small form posted with HTMX. The server applies it to a copy of the stored draft
with `app.journeys.editing` and saves it (`journeys.save_draft_unchecked`: a draft may have errors
while it is being built), then answers with the changed panel plus out-of-band swaps of the diagram,
the node list, the problems and the revision, so the page never reloads. Each save names the
`draft_revision` it was based on; a stale one is refused with 409 and the operator is told to
reload, so two tabs never overwrite each other silently. Publishing goes through
`journeys.publish`, which refuses a draft with errors.

Modules: `listing` (list, import, export, duplicate, delete), `editor` (the editor, node, edge and
settings forms), `sample` (the sample contact), `versions` (publish, history, restore),
`simulator`, `testbench` (the replies test bench of wait nodes); `common` holds what they share.
"""

from flask import Blueprint

bp = Blueprint("journeys", __name__, url_prefix="/journeys")

from app.web.journeys import editor, listing, sample, simulator, testbench, versions  # noqa: E402,F401  (they add routes to bp)
from app.web.journeys.common import designer_globals  # noqa: E402

bp.context_processor(designer_globals)
