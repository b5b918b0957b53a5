"""Copies of `shared/examples` (sample journeys and CSVs) so the suite runs from any clone."""

from pathlib import Path

EXAMPLES_DIR = Path(__file__).resolve().parent
