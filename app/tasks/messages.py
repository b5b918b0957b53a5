"""Jobs of the `messages` queue: send a batch of the message log, sweep what crashed jobs left."""

from app.runs import runner
from app.sending import messaging
from app.tasks import job


@job
def send_batch(message_ids: list[int]) -> int:
    """Send one batch (`messaging.deliver`); returns how many messages Twilio accepted."""
    outcomes = messaging.deliver(message_ids)
    runner.on_message_outcomes(outcomes)  # journey messages move their contacts on (app.runs.runner)
    return sum(outcome.ok for outcome in outcomes)


@job
def requeue_stale() -> int:
    """Recover messages left `sending` by a crashed job (`messaging.requeue_stale`); returns how many were resent."""
    recovery = messaging.requeue_stale()
    runner.on_message_outcomes(recovery.accepted)  # those Twilio had accepted move their contacts on
    return recovery.requeued
