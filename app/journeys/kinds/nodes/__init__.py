"""Designer modules of the node types, one per type (see `app.journeys.kinds`)."""
