"""Jobs of the `messages` queue: send a batch of the message log, sweep what crashed jobs left."""

from app.runs import advancing
from app.sending import messaging, recovery
from app.tasks import job


@job
def send_batch(message_ids: list[int], gather: bool = False) -> int:
    """Send one batch (`messaging.deliver`); returns how many messages Twilio accepted.

    `gather` (conversational jobs): the other conversational messages waiting now go in the same batch.
    """
    if gather:
        message_ids = messaging.with_waiting_conversations(message_ids)
    outcomes = messaging.deliver(message_ids)
    advancing.on_message_outcomes(outcomes)  # journey messages move their contacts on (app.runs.runner)
    return sum(outcome.ok for outcome in outcomes)


@job
def requeue_stale() -> int:
    """Recover messages left `sending` by a crashed job (`recovery.requeue_stale`); returns how many were resent."""
    result = recovery.requeue_stale()
    advancing.on_message_outcomes(result.accepted)  # those Twilio had accepted move their contacts on
    return result.requeued
