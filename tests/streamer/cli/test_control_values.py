"""``control ... --timeout-s``: a bad reply timeout is one line before anything is sent."""

from __future__ import annotations

import pytest
from helpers.cli import main_error


@pytest.mark.parametrize("value", ["nan", "-1", "0", "inf"])
@pytest.mark.parametrize("where", ["before", "after"])
def test_a_bad_timeout_is_one_line(capsys, value, where) -> None:
    endpoint = "tcp://127.0.0.1:9"
    argv = (
        ["control", "--timeout-s", value, endpoint, "status"]
        if where == "before"
        else ["control", endpoint, "status", "--timeout-s", value]
    )
    assert "timeout_s" in main_error(argv, capsys)
