"""The command helpers are one table (engine.client.COMMANDS): both clients get each row, with its signature,
docstring and typed reply; a row that builds the wrong message fails against a real engine in the other tests."""

from __future__ import annotations

import inspect

from engine.client import COMMANDS, AsyncEngineClient, EngineClient, Reply


def test_both_clients_have_every_row_with_the_rows_signature_and_docstring() -> None:
    assert len(COMMANDS) >= 11 and len({c.name for c in COMMANDS}) == len(COMMANDS)
    for spec in COMMANDS:
        assert issubclass(spec.reply, Reply) and spec.fields.__doc__, spec.name
        want = inspect.signature(spec.fields)
        for cls in (EngineClient, AsyncEngineClient):
            method = getattr(cls, spec.name)
            got = inspect.signature(method)
            assert list(got.parameters)[0] == "self", (cls.__name__, spec.name)
            assert list(got.parameters.values())[1:] == list(want.parameters.values()), (cls.__name__, spec.name)
            assert got.return_annotation == spec.reply.__name__ and method.__doc__ == spec.fields.__doc__


def test_a_row_builds_the_message_the_engine_reads() -> None:
    rows = {c.name: c for c in COMMANDS}
    assert rows["set_expression"].fields("a", "happy") == {"avatar": "a", "expression": "happy", "intensity": None,
                                                          "transition_ms": None}
    assert rows["set_controls"].fields("a", {"jawOpen": 0.5}, smooth=True)["controls"] == {"jawOpen": 0.5}
    assert rows["health"].fields(timeout_ms=300) == {"timeout_ms": 300}  # the request's timeout, not a field
