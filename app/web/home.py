"""The operator's home page: what is running, what was sent lately, and whether the workers keep up."""

from flask import Blueprint, render_template
from sqlalchemy import select

from app.campaigns import service as campaigns
from app.extensions import db
from app.models import LIVE_RUN_STATUSES, SCHEDULED, Campaign, Run, utcnow
from app.runs import schedule
from app.runs.read_models.positions import live_run_states
from app.web.queue_health import queue_health

bp = Blueprint("home", __name__)

RECENT_CAMPAIGNS = 5
ACTIVE_RUNS_SHOWN = 20


@bp.get("/")
def index():
    active_runs = db.session.scalars(
        select(Run).where(Run.status.in_(LIVE_RUN_STATUSES)).order_by(Run.id.desc()).limit(ACTIVE_RUNS_SHOWN)
    ).all()
    recent = db.session.scalars(campaigns.visible_campaigns().limit(RECENT_CAMPAIGNS)).all()
    scheduled_campaigns = db.session.scalars(
        campaigns.visible_campaigns().where(Campaign.status == SCHEDULED).limit(ACTIVE_RUNS_SHOWN)
    ).all()
    return render_template(
        "home.html",
        scheduled_runs=schedule.scheduled_runs(ACTIVE_RUNS_SHOWN),
        scheduled_campaigns=scheduled_campaigns,
        starts_in=schedule.starts_in,
        now=utcnow(),
        active_runs=active_runs,
        progress=live_run_states(active_runs),
        campaigns=recent,
        campaign_counts=campaigns.counts_of(recent),
        health=queue_health(),
    )
