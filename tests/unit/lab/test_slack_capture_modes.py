"""The lab's fake Slack can change the face of an outage: a few 500s, then timeouts for the rest of the night."""

from __future__ import annotations

import pytest

from bascule_lab.slack_capture import CaptureServer, FailureMode

pytestmark = pytest.mark.unit


def test_500s_then_hanging_for_every_later_call() -> None:
    server = CaptureServer()  # not started: the failure schedule needs no socket
    server.set_mode(FailureMode.HTTP_500, times=3, then=FailureMode.HANG)
    assert [server.take_failure() for _ in range(6)] == [FailureMode.HTTP_500] * 3 + [FailureMode.HANG] * 3
    server.set_mode(FailureMode.NONE)
    assert server.take_failure() is FailureMode.NONE


def test_without_then_the_outage_ends_after_its_calls() -> None:
    server = CaptureServer()
    server.set_mode(FailureMode.RATE_LIMITED, times=1)
    assert [server.take_failure() for _ in range(2)] == [FailureMode.RATE_LIMITED, FailureMode.NONE]


@pytest.mark.parametrize(("times", "then"), [(None, FailureMode.HANG), (2, FailureMode.DOWN)])
def test_a_schedule_that_cannot_be_kept_is_refused(times: int | None, then: FailureMode) -> None:
    with pytest.raises(ValueError, match="then"):
        CaptureServer().set_mode(FailureMode.HTTP_500, times=times, then=then)
