"""``avail rules preview``'s report when the running rules cannot be read."""

from __future__ import annotations

from avail.rules_preview import ChannelPreview, Preview


def test_without_published_rules_the_schedules_say_they_were_not_compared() -> None:
    web = ChannelPreview("web")
    web.add("TV-55", 5, 5, keep=10)
    preview = Preview(None, "5c0e2d19", {"web": web}, [], schedules=None, proposes_future_supply=True)

    assert preview.to_json()["schedules"] is None
    assert list(preview.lines()) == [
        "rules (none published) -> 5c0e2d19",
        "channel web: 0 of 1 SKUs change; units shown 5 -> 5 (+0)",
        "schedules: not compared (no rule set published: is the flow running?)",
    ]


def test_without_future_supply_anywhere_nothing_is_said_of_schedules() -> None:
    preview = Preview(None, "5c0e2d19", {}, [], schedules=None, proposes_future_supply=False)

    assert list(preview.lines()) == ["rules (none published) -> 5c0e2d19"]
