"""The lab's REST client rides out an API server restart: reads keep trying, writes only when refused."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from bascule_lab.gates.client import AirflowApiClient

pytestmark = pytest.mark.unit


class _Resp:
    def __init__(self, status: int, body: bytes = b'{"ok": true}') -> None:
        self.status_code = status
        self.content = body
        self.text = body.decode()

    def json(self) -> Any:
        import json

        return json.loads(self.content)


def _client(monkeypatch: pytest.MonkeyPatch, answers: list[Any], outage_s: float) -> tuple[AirflowApiClient, list]:
    monkeypatch.setattr("bascule_lab.gates.client.time.sleep", lambda s: None)
    client = AirflowApiClient.__new__(AirflowApiClient)
    client.base_url, client.username, client.timeout, client.outage_s = "http://127.0.0.1:1", "u", 1.0, outage_s
    calls: list[str] = []

    class Session:
        def request(self, method: str, url: str, **_: Any) -> Any:
            calls.append(method)
            answer = answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer

    client._session = Session()  # type: ignore[assignment]
    return client, calls


REFUSED = requests.ConnectionError("HTTPConnectionPool: [Errno 111] Connection refused")


def test_a_read_keeps_trying_through_refusals_and_5xx(monkeypatch: pytest.MonkeyPatch) -> None:
    client, calls = _client(monkeypatch, [REFUSED] * 5 + [_Resp(503), _Resp(200)], outage_s=60)
    assert client._call("GET", "/api/v2/x") == {"ok": True}
    assert len(calls) == 7


def test_a_write_is_sent_again_only_when_it_surely_never_arrived(monkeypatch: pytest.MonkeyPatch) -> None:
    client, calls = _client(monkeypatch, [REFUSED, REFUSED, _Resp(200)], outage_s=60)
    assert client._call("PATCH", "/api/v2/x", json={}) == {"ok": True}
    assert calls == ["PATCH"] * 3

    client, calls = _client(monkeypatch, [requests.Timeout("read timed out")], outage_s=60)
    with pytest.raises(requests.Timeout):
        client._call("PATCH", "/api/v2/x", json={})  # it may have arrived: answering twice is not ours to risk


def test_without_an_outage_allowance_a_read_tries_three_times(monkeypatch: pytest.MonkeyPatch) -> None:
    client, calls = _client(monkeypatch, [REFUSED] * 3, outage_s=0)
    with pytest.raises(requests.ConnectionError):
        client._call("GET", "/api/v2/x")
    assert len(calls) == 3
