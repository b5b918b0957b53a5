"""Read models of a run: what the pages and the API show, computed from the rows, never from stored
counters that drift. Each figure is computed one way and shared:

- `positions`  where contacts are now: contacts per state and per node (`here`, `ended`), overdue ones
- `tally`      what contacts did: node visits, edges taken, unmatched replies, message events; kept
               incrementally in Redis as a cache of counts over the append-only history
- `summary`    the JSON API's run answer and contacts pages (`GET /api/runs/<id>`, `.../contacts`)
- `live`       the live run page's numbers, and the lists behind them (failure reasons, unmatched replies)
- `contacts`   the run page's contacts table (filters, keyset pages) and one contact's timeline
"""
