"""RQ jobs, one module per queue (`flows.py`, `messages.py`).

Jobs take ids or small JSON values, never ORM objects. The worker entry
point (`app.worker`) pushes the app context they run in.
"""

from functools import wraps

from app.extensions import db


def job(func):
    """Mark an RQ job: its database session is closed when it ends, whatever happens."""

    @wraps(func)
    def run(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        finally:
            db.session.remove()

    return run
