"""CLI: `journeys import/export` round trip, invalid files refused whole, and the idempotent `demo` setup."""

import json
import stat
import threading

from app.extensions import db
from app.models import Audience, AudienceContact, Contact, Journey, JourneyVersion, User
from tests.examples import EXAMPLES_DIR


def count(model) -> int:
    return db.session.scalar(db.select(db.func.count()).select_from(model))


def invoke_as_flask_does(app, args):
    """Run a command the way `flask --app wsgi …` does: in a thread with no app context pushed yet."""
    results = []
    thread = threading.Thread(target=lambda: results.append(app.test_cli_runner().invoke(args=args)))
    thread.start()
    thread.join(60)
    return results[0]


def test_import_export_round_trip(app, tmp_path):
    runner = app.test_cli_runner()
    source = EXAMPLES_DIR / "whatsapp-survey.json"
    imported = runner.invoke(args=["journeys", "import", str(source)])
    assert imported.exit_code == 0, imported.output
    journey_id = int(imported.output.strip())

    exported = runner.invoke(args=["journeys", "export", str(journey_id)])
    assert exported.exit_code == 0, exported.output
    document = json.loads(exported.output)
    assert document.pop("id") == journey_id
    assert document == json.loads(source.read_text())
    assert "\n  " in exported.output, "pretty printed"

    target = tmp_path / "again.json"
    target.write_text(exported.output, encoding="utf-8")
    again = invoke_as_flask_does(app, ["journeys", "import", str(target)])
    assert again.exit_code == 0 and int(again.output) != journey_id
    assert count(Journey) == 2


def test_export_keeps_non_ascii_text_unescaped(app, tmp_path):
    doc = json.loads((EXAMPLES_DIR / "welcome.json").read_text())
    doc["name"] = "Confirmação de entrega 📦"
    source = tmp_path / "pt.json"
    source.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    runner = app.test_cli_runner()
    journey_id = runner.invoke(args=["journeys", "import", str(source)]).output.strip()
    exported = runner.invoke(args=["journeys", "export", journey_id]).output
    assert "Confirmação de entrega 📦" in exported and "\\u" not in exported


def test_invalid_file_exits_non_zero_prints_every_problem_and_writes_nothing(app, tmp_path):
    doc = json.loads((EXAMPLES_DIR / "welcome.json").read_text())
    doc["nodes"][1]["type"] = "telegram"
    doc["edges"].append({"from": "thanks", "to": "nowhere"})
    source = tmp_path / "broken.json"
    source.write_text(json.dumps(doc))
    result = app.test_cli_runner().invoke(args=["journeys", "import", str(source)])
    assert result.exit_code != 0
    assert "[node hello, field type]" in result.output
    assert "edge 9" in result.output and "nowhere" in result.output
    assert count(Journey) == 0


def test_not_json_and_unknown_id(app, tmp_path):
    source = tmp_path / "bad.json"
    source.write_text('{"format": "journey/v1",\n "name": }')
    runner = app.test_cli_runner()
    result = runner.invoke(args=["journeys", "import", str(source)])
    assert result.exit_code != 0 and "line 2" in result.output
    missing = runner.invoke(args=["journeys", "export", "404"])
    assert missing.exit_code != 0 and "no journey '404'" in missing.output


def test_demo_is_idempotent(app, tmp_path, monkeypatch):
    monkeypatch.setattr(app, "instance_path", str(tmp_path))
    first = invoke_as_flask_does(app, ["demo"])
    assert first.exit_code == 0, first.output

    credentials = tmp_path / "first-login.txt"
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    password = credentials.read_text().split("password: ")[1].strip()
    assert "admin@example.com" in first.output and password in first.output
    admin = db.session.scalar(db.select(User).filter_by(email="admin@example.com"))
    assert admin.check_password(password)

    journey = db.session.scalar(db.select(Journey))
    assert journey.name == "Delivery check" and [v.number for v in journey.versions] == [1]
    audience = db.session.scalar(db.select(Audience))
    assert audience.total == 3
    phones = sorted(db.session.scalars(db.select(Contact.phone)))
    assert phones == ["+15005550101", "+15005550102", "+15005550103"]

    second = invoke_as_flask_does(app, ["demo"])
    assert second.exit_code == 0 and "nothing to do" in second.output
    assert (count(User), count(Journey), count(JourneyVersion), count(Audience), count(AudienceContact)) == (
        1,
        1,
        1,
        1,
        3,
    )
    assert credentials.read_text().split("password: ")[1].strip() == password


def test_demo_skips_what_exists(app, user, tmp_path, monkeypatch):
    monkeypatch.setattr(app, "instance_path", str(tmp_path))
    result = app.test_cli_runner().invoke(args=["demo"])
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "first-login.txt").exists()
    assert count(User) == 1 and count(Journey) == 1 and count(Audience) == 1
