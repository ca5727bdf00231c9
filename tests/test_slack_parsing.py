"""The Slack adapter's pure parts: what people type, the modal's state, file checks, retry memory."""

from __future__ import annotations

import pytest

pytest.importorskip("slack_bolt")

from adapters.slack import blocks as ui  # noqa: E402
from bot.texts import sentence  # noqa: E402
from adapters.slack.files import FileRefused, check_file, file_origins, first_image  # noqa: E402
from adapters.slack.parsing import mention_options, parse_admin, parse_command  # noqa: E402
from aria_engine.options import GenerationOptions  # noqa: E402


def test_bare_words_follow_the_issue_order():
    command = parse_command("discrete_token 256 42")
    assert command.kind == "compose"
    assert (command.options.mode, command.options.length, command.options.seed) == ("discrete_token", 256, 42)
    assert command.explicit == {"mode", "length", "seed"}


def test_named_options_in_either_form():
    command = parse_command("last seed 9 duration=12.5 top_p=0.9 instruments 3 concat")
    assert command.kind == "last"
    o = command.options
    assert (o.seed, o.duration_s, o.top_p, o.min_instruments, o.mode) == (9, 12.5, 0.9, 3, "continuous_concat")


def test_mood_and_subcommands():
    mood = parse_command("mood -0.25 1 note_temp=0.9")
    assert (mood.kind, mood.valence, mood.arousal, mood.options.note_temperature) == ("mood", -0.25, 1.0, 0.9)
    assert parse_command("").kind == "compose" and parse_command("HELP").kind == "help"
    assert parse_command("admin set cooldown_s 30").admin == ("set", "cooldown_s", "30")


@pytest.mark.parametrize("text, message", [
    ("mood 1.5 0", "valence must be between -1 and 1, not 1.5"),
    ("mood nan 0", "valence must be between -1 and 1"),
    ("mood 0", "Use `/aria mood VALENCE AROUSAL`"),
    ("1 2 3", "at most two bare numbers"),
    ("seed", "seed needs a value"),
    ("seed=1.5", "seed must be a whole number, not '1.5'"),
    ("length=0", "length must be between 1 and 8192 tokens"),
    ("funky", "I don't know the option 'funky'"),
])
def test_mistakes_are_explained(text, message):
    with pytest.raises(ValueError) as raised:
        parse_command(text)
    assert message in str(raised.value)


def test_mentions_ignore_chatter_but_not_bad_values():
    options, explicit = mention_options("<@UARIA> could you do this one, 2 times, seed=5 discrete please")
    assert (options.seed, options.mode) == (5, "discrete_token") and explicit == {"seed", "mode"}
    assert mention_options("<@UARIA> <@U123|bob> look")[1] == frozenset()
    with pytest.raises(ValueError, match="length must be a number"):
        mention_options("<@UARIA> length=long")


def test_admin_words():
    assert parse_admin(("show",)) == ("show", None, None, None)
    assert parse_admin(("show", "<#C1|general>")) == ("show", None, None, "C1")
    assert parse_admin(("set", "allowed_modes", "continuous_concat,", "discrete_token", "<#C2>")) == (
        "set", "allowed_modes", "continuous_concat, discrete_token", "C2")
    assert parse_admin(("set", "audit_channel", "<#C3|log>")) == ("set", "audit_channel", "<#C3|log>", None)
    assert parse_admin(("reset", "cooldown_s", "<#C4|x>")) == ("reset", "cooldown_s", None, "C4")
    for words, message in ((("drop",), "Use `/aria admin show`"), (("set",), "Which setting?"),
                           (("set", "cooldown_s"), "What value?"), (("reset", "a", "b"), "one setting name")):
        with pytest.raises(ValueError) as raised:
            parse_admin(words)
        assert message in str(raised.value)


def test_modal_round_trip():
    view = ui.compose_modal("C9", GenerationOptions(length=300, seed=11), frozenset({"length", "seed"}),
                            ["continuous_concat", "discrete_token"])
    assert [o["value"] for o in view["blocks"][1]["element"]["options"]] == ["continuous_concat", "discrete_token"]
    state = {"picture": {"picture": {"type": "file_input", "files": [{"id": "F1"}]}},
             "mode": {"mode": {"type": "static_select", "selected_option": {"value": "discrete_token"}}},
             "length": {"length": {"type": "number_input", "value": "300"}},
             "seed": {"seed": {"type": "number_input", "value": ""}},
             "top_p": {"top_p": {"type": "number_input", "value": "0.5"}},
             "instruments": {"instruments": {"type": "number_input", "value": "2.5"}}}
    file, chosen, errors = ui.read_modal({"state": {"values": state}})
    assert file == {"id": "F1"}
    assert chosen == {"mode": "discrete_token", "length": 300, "top_p": 0.5}
    assert errors == {"instruments": "Minimum instruments must be a whole number."}
    assert ui.read_modal({"state": {"values": {}}})[2] == {"picture": "Add a picture to compose from."}


def test_file_checks():
    png = {"name": "a.png", "mimetype": "image/png", "filetype": "png", "size": 10,
           "url_private": "https://files.slack.com/files-pri/T1-F1/a.png"}
    allowed = file_origins("http://127.0.0.1:8080/api/")
    assert first_image([{"name": "x.pdf", "mimetype": "application/pdf"}, png]) is png
    check_file(png, 100, allowed)
    check_file({**png, "url_private": "http://127.0.0.1:8080/files-pri/T1-F1/a.png"}, 100, allowed)  # the API base
    for file, message in (({**png, "size": 200}, "the most I take is"), ({**png, "mode": "tombstone"}, "deleted"),
                          ({**png, "is_external": True}, "outside Slack"),
                          ({**png, "mimetype": "image/svg+xml", "filetype": "svg", "name": "d.svg"}, "`d.svg` isn't"),
                          ({k: v for k, v in png.items() if k != "url_private"}, "didn't give me a link"),
                          ({**png, "url_private": "http://127.0.0.1:8081/a.png"}, "outside Slack's file servers"),
                          ({**png, "url_private": "http://files.slack.com/a.png"}, "outside Slack's file servers"),
                          ({**png, "url_private": "u"}, "outside Slack's file servers")):
        with pytest.raises(FileRefused) as raised:
            check_file(file, 100, allowed)
        assert message in str(raised.value)


def test_sentences():
    assert sentence(ValueError("length must be between 1 and 8192 tokens")) == "Length must be between 1 and 8192 tokens."
    assert sentence("cooldown_s must be a number") == "cooldown_s must be a number."
    assert sentence("").startswith("Sorry")
