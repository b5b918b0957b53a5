"""Keyword triggers: validation, keywords per channel and first-word matching."""

import pytest

from app.engine.triggers import keywords_by_channel, matching_keyword, trigger_problems


@pytest.mark.parametrize(
    ("triggers", "fields"),
    [
        (None, []),
        ([{"keywords": ["join"]}], []),
        ([{"keywords": ["join"], "channel": "whatsapp"}], []),
        ("join", ["triggers"]),
        ([{"keywords": []}], ["triggers[0].keywords"]),
        ([{"keywords": ["ok", "?!"]}], ["triggers[0].keywords"]),
        ([{"keywords": ["ok"], "channel": "fax"}], ["triggers[0].channel"]),
        ([7], ["triggers[0]"]),
    ],
)
def test_trigger_problems_name_the_field(triggers, fields):
    assert [field for field, _message in trigger_problems(triggers)] == fields


def test_keywords_by_channel_defaults_to_the_journeys_channel():
    doc = {
        "channel": "whatsapp",
        "triggers": [{"keywords": ["Join", "ENTRAR"]}, {"keywords": ["Pizza"], "channel": "sms"}],
    }
    assert keywords_by_channel(doc) == {"whatsapp": ("join", "entrar"), "sms": ("pizza",)}
    assert keywords_by_channel({"nodes": []}) == {}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("JOIN", "join"),
        ("join!", "join"),
        ("  Join pizza club", "join"),
        ("Éntrar", "entrar"),
        ("rejoin", None),
        ("I want to join", None),
        ("", None),
        ("new member please", "new member"),
    ],
)
def test_first_word_matches(text, expected):
    assert matching_keyword(text, ("join", "entrar", "new member")) == expected
