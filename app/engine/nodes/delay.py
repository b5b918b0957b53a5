"""`delay`: pause the contact for a fixed `duration`, then follow its one edge."""

from __future__ import annotations

from .. import effects, events
from ..durations import parse_duration
from .base import NodeType, duration_problem


class Delay(NodeType):
    name = "delay"
    title = "pause for a while"
    order = 50
    keys = ("duration",)
    defaults = {"duration": "1h"}
    conditions = frozenset({"always"})
    one_unconditional_edge = True
    pauses = True
    resumes_on = {events.TimerFired: "delayed"}

    def check(self, data):
        return duration_problem(data, "duration", required=True)

    def compile(self, data):
        return {"seconds": parse_duration(data["duration"])}

    def enter(self, walk, node):
        walk.status = "delayed"
        walk.emit(effects.ScheduleWake(node.id, walk.visits[node.id], walk.now + node.settings["seconds"]))
        return None

    def resume(self, walk, node, event):
        walk.log({"kind": "timer", "node": node.id, "visit": event.visit})
        return self.only_edge(walk, node)


NODE_TYPE = Delay()
