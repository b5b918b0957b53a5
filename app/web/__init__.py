"""Blueprints, one per area; `app.BLUEPRINTS` lists them."""
