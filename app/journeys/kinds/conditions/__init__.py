"""Designer modules of the edge conditions, one per condition (see `app.journeys.kinds`)."""
