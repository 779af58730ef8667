"""Slack delivery with a hard time budget, on top of the Slack provider's hooks.

``SlackHook`` / ``SlackWebhookHook`` own the connection handling (token in the
connection password, ``base_url`` / ``timeout`` / ``proxy`` in its extra; for
webhooks the host + password token). This hook adds what the cutover needs and
the provider leaves to the caller: a short per-request timeout and a bounded
retry loop whose *total* wait per message is capped.

Why not slack_sdk's ``RateLimitErrorRetryHandler``: it sleeps the full
``Retry-After`` (Slack may say 30 s or more) and a ``RetryHandler`` has no notion
of a per-message deadline. The provider hooks are therefore built with
``retry_handlers=[]`` and retries happen here, where the deadline is known.

Nothing in this module raises for a delivery problem: every outcome is a
:class:`DeliveryResult` whose ``reason`` is a short code, never message content.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from airflow.providers.slack.hooks.slack import SlackHook
from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook
from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException
from slack_sdk.errors import SlackApiError

DEFAULT_TIMEOUT_S = 3.0
DEFAULT_BUDGET_S = 5.0
DEFAULT_MAX_ATTEMPTS = 3
# Below this much budget another request is not worth starting.
_MIN_ATTEMPT_S = 0.2
_BACKOFF_S = (0.25, 0.5, 1.0)


class FailureReason(enum.StrEnum):
    NONE = "none"
    RATE_LIMITED = "rate_limited"
    SERVER_ERROR = "server_error"
    CONNECTION_ERROR = "connection_error"
    TIMEOUT = "timeout"
    SLACK_ERROR = "slack_error"
    NOT_CONFIGURED = "not_configured"
    BUDGET_EXHAUSTED = "budget_exhausted"


@dataclass(frozen=True)
class DeliveryResult:
    delivered: bool
    attempts: int
    elapsed_s: float
    reason: FailureReason = FailureReason.NONE
    ts: str | None = None
    channel: str | None = None
    # Slack's own error code (``channel_not_found``…) or the HTTP status: never content.
    detail: str = ""


class _Retryable(Exception):
    def __init__(self, reason: FailureReason, detail: str = "", retry_after_s: float | None = None) -> None:
        super().__init__(reason.value)
        self.reason = reason
        self.detail = detail
        self.retry_after_s = retry_after_s


class _Fatal(Exception):
    def __init__(self, reason: FailureReason, detail: str = "") -> None:
        super().__init__(reason.value)
        self.reason = reason
        self.detail = detail


def _retry_after(headers: Any) -> float | None:
    try:
        value = headers.get("Retry-After") or headers.get("retry-after")
        if isinstance(value, list):
            value = value[0]
        return max(0.0, float(value)) if value is not None else None
    except (TypeError, ValueError, AttributeError):
        return None


def _classify_exception(exc: BaseException) -> _Retryable | _Fatal:
    if isinstance(exc, AirflowNotFoundException):
        return _Fatal(FailureReason.NOT_CONFIGURED, "connection")
    if isinstance(exc, SlackApiError):
        status = getattr(exc.response, "status_code", 0)
        if status == 429:
            return _Retryable(FailureReason.RATE_LIMITED, "429", _retry_after(exc.response.headers))
        if status >= 500:
            return _Retryable(FailureReason.SERVER_ERROR, str(status))
        error = exc.response.get("error") if hasattr(exc.response, "get") else None
        return _Fatal(FailureReason.SLACK_ERROR, str(error or status))
    if isinstance(exc, TimeoutError):
        return _Retryable(FailureReason.TIMEOUT)
    if isinstance(exc, OSError):
        # URLError, ConnectionRefusedError, RemoteDisconnected (an http.client error) and friends.
        reason = getattr(exc, "reason", None)
        if isinstance(reason, TimeoutError):
            return _Retryable(FailureReason.TIMEOUT)
        return _Retryable(FailureReason.CONNECTION_ERROR, type(exc).__name__)
    # A 500 with an HTML body makes slack_sdk fail while parsing JSON; same as a server error.
    if isinstance(exc, ValueError):
        return _Retryable(FailureReason.SERVER_ERROR, type(exc).__name__)
    return _Retryable(FailureReason.CONNECTION_ERROR, type(exc).__name__)


class BoundedSlackHook(BaseHook):
    """
    Post to Slack through the provider's hooks, never blocking longer than ``budget_s`` per message.

    :param slack_conn_id: Slack API connection (bot token in the password, optional ``base_url``
        in the extra). Needed for threads.
    :param slack_webhook_conn_id: Slack incoming-webhook connection, the degraded fallback:
        the webhook's fixed channel, no threads.
    :param timeout_s: per-request timeout.
    :param budget_s: total time one message may take across all its attempts and waits.
    :param max_attempts: attempts per message, including the first.
    """

    conn_name_attr = "slack_conn_id"
    default_conn_name = SlackHook.default_conn_name
    conn_type = "slack"
    hook_name = "Slack (bounded delivery)"

    def __init__(
        self,
        *,
        slack_conn_id: str | None = None,
        slack_webhook_conn_id: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        budget_s: float = DEFAULT_BUDGET_S,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> None:
        super().__init__()
        self.slack_conn_id = slack_conn_id
        self.slack_webhook_conn_id = slack_webhook_conn_id
        self.timeout_s = timeout_s
        self.budget_s = budget_s
        self.max_attempts = max(1, max_attempts)

    @cached_property
    def api_hook(self) -> SlackHook:
        if not self.slack_conn_id:
            raise _Fatal(FailureReason.NOT_CONFIGURED, "slack_conn_id")
        # int() because the provider types it so; the real per-attempt timeout is set on the client.
        return SlackHook(
            slack_conn_id=self.slack_conn_id, timeout=max(1, int(self.timeout_s)), retry_handlers=[]
        )

    @cached_property
    def webhook_hook(self) -> SlackWebhookHook:
        if not self.slack_webhook_conn_id:
            raise _Fatal(FailureReason.NOT_CONFIGURED, "slack_webhook_conn_id")
        return SlackWebhookHook(
            slack_webhook_conn_id=self.slack_webhook_conn_id,
            timeout=max(1, int(self.timeout_s)),
            retry_handlers=[],
        )

    # --- public API -------------------------------------------------------

    def post_message(
        self,
        *,
        channel: str,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        thread_ts: str | None = None,
        reply_broadcast: bool = False,
    ) -> DeliveryResult:
        """``chat.postMessage``; the result carries the ``ts`` and channel id to thread under."""

        def attempt(timeout: float) -> tuple[str | None, str | None]:
            client = self.api_hook.client
            client.timeout = timeout  # type: ignore[assignment]
            kwargs: dict[str, Any] = {"channel": channel, "text": text, "blocks": blocks}
            if thread_ts:
                kwargs["thread_ts"] = thread_ts
                kwargs["reply_broadcast"] = reply_broadcast
            response = client.chat_postMessage(**kwargs)
            return response.get("ts"), response.get("channel")

        return self._deliver(attempt)

    def update_message(
        self, *, channel: str, ts: str, text: str, blocks: list[dict[str, Any]] | None = None
    ) -> DeliveryResult:
        """``chat.update``, used to restate the outcome on a run's parent message."""

        def attempt(timeout: float) -> tuple[str | None, str | None]:
            client = self.api_hook.client
            client.timeout = timeout  # type: ignore[assignment]
            response = client.chat_update(channel=channel, ts=ts, text=text, blocks=blocks)
            return response.get("ts"), response.get("channel")

        return self._deliver(attempt)

    def upload_file(self, *, channel: str, thread_ts: str | None, content: bytes, filename: str,
                    title: str) -> DeliveryResult:
        """``files_upload_v2`` into a thread (the run's Gantt chart): bounded like every other call."""

        def attempt(timeout: float) -> tuple[str | None, str | None]:
            client = self.api_hook.client
            client.timeout = timeout  # type: ignore[assignment]
            response = client.files_upload_v2(channel=channel, thread_ts=thread_ts, content=content,
                                              filename=filename, title=title)
            return None, channel if response.get("ok") else None

        return self._deliver(attempt)

    def send_webhook(self, *, text: str, blocks: list[dict[str, Any]] | None = None) -> DeliveryResult:
        """Incoming webhook: posts to the webhook's own channel; returns no ``ts``."""

        def attempt(timeout: float) -> tuple[str | None, str | None]:
            # The client, not ``SlackWebhookHook.send``: the latter raises on non-200 and drops the
            # Retry-After header we need.
            client = self.webhook_hook.client
            client.timeout = timeout  # type: ignore[assignment]
            response = client.send(text=text, blocks=blocks)
            if response.status_code == 429:
                raise _Retryable(FailureReason.RATE_LIMITED, "429", _retry_after(response.headers))
            if response.status_code >= 500:
                raise _Retryable(FailureReason.SERVER_ERROR, str(response.status_code))
            if response.status_code != 200:
                raise _Fatal(FailureReason.SLACK_ERROR, str(response.status_code))
            return None, None

        return self._deliver(attempt)

    # --- retry loop ------------------------------------------------------

    def _deliver(self, attempt: Any) -> DeliveryResult:
        start = time.monotonic()
        deadline = start + self.budget_s
        attempts = 0
        last: _Retryable | _Fatal = _Retryable(FailureReason.BUDGET_EXHAUSTED)
        while attempts < self.max_attempts:
            remaining = deadline - time.monotonic()
            if remaining < _MIN_ATTEMPT_S:
                break
            attempts += 1
            try:
                ts, channel = attempt(min(self.timeout_s, remaining))
                return DeliveryResult(True, attempts, time.monotonic() - start, ts=ts, channel=channel)
            except (_Retryable, _Fatal) as exc:
                last = exc
            except Exception as exc:
                last = _classify_exception(exc)
            if isinstance(last, _Fatal):
                break
            wait = (
                last.retry_after_s
                if last.retry_after_s is not None
                else _BACKOFF_S[min(attempts, len(_BACKOFF_S)) - 1]
            )
            remaining = deadline - time.monotonic()
            if attempts >= self.max_attempts or wait + _MIN_ATTEMPT_S > remaining:
                # Honour Retry-After or give up: retrying early would only earn another 429.
                break
            time.sleep(wait)
        return DeliveryResult(
            False, attempts, time.monotonic() - start, reason=last.reason, detail=last.detail
        )
