"""Jobs of the `messages` queue: send a batch of the message log, sweep what crashed jobs left."""

from .. import messaging, runner
from . import job


@job
def send_batch(message_ids: list[int]) -> int:
    """Send one batch (`messaging.deliver`); returns how many messages Twilio accepted."""
    outcomes = messaging.deliver(message_ids)
    runner.on_message_outcomes(outcomes)  # journey messages move their contacts on (app.runner)
    return sum(outcome.ok for outcome in outcomes)


@job
def requeue_stale() -> int:
    """Re-enqueue messages left `sending` by a crashed job (run periodically)."""
    return messaging.requeue_stale()
