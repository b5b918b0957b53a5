"""Runs of published journeys: `runner` (stored state meets the engine), `lifecycle` (start, prepare,
stop), `advancing` (events), `inbound` (reply routing), `sweeper` (durable timers), `read_models`
(what pages and the API show), `export` (results CSV), `simulator`, `http_calls`."""
