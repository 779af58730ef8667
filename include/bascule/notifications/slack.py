"""Slack notifications for a cutover run: one thread per DAG run, bounded and never raising.

Delivery modes
--------------
``DeliveryMode.WEB_API`` (the normal mode) posts through the Slack provider's
``SlackHook`` (bot token in the ``notifications.slack_conn_id`` connection,
optional ``base_url`` in its extra). ``chat.postMessage`` returns a ``ts``; the
first message of a run becomes the parent and every later event is a reply
under it (``thread_ts``), critical ones also broadcast to the channel.

``DeliveryMode.WEBHOOK`` is the degraded fallback through ``SlackWebhookHook``
(``notifications.webhook_conn_id``): an incoming webhook posts only to the one
channel it was created for, returns no ``ts`` and so cannot thread; every event
becomes a top-level message carrying its own run context line. In WEB_API mode
with a ``webhook_conn_id`` configured, bascule falls back to the webhook for a
message only when the Web API is *misconfigured* (no connection or token,
``invalid_auth``, ``channel_not_found``, ``not_in_channel``...), not when it is
slow or down: trying a second endpoint would double the time a task waits.

Where the thread ``ts`` lives
-----------------------------
In an Airflow Variable ``bascule_slack_thread__<dag_id>__<run_id>`` (JSON
``{"channel": ..., "ts": ...}``), read and written at runtime through the Task
SDK (``airflow.sdk.Variable``), never at DAG parse time. A Variable is stored
in the metadata DB behind the Execution API, so it survives task retries,
worker restarts and a cleared task, and any task of the run can find it
without knowing which task opened the thread. XCom was rejected because it is
scoped to the task instance that wrote it and cleared when that task is
retried, and the task state store is per task instance too. The parent is
normally posted by an explicit first task (:meth:`SlackNotifications.open_thread`);
if no thread exists yet, the first event of the run opens one, so parallel
first events can race into two parents - open the thread before fanning out.
Call :meth:`SlackNotifications.forget_thread` from the final report task to
keep the Variable list short.

Delivery budget and ledger
--------------------------
Each message gets a 3 s request timeout and at most ~5 s in total across its
attempts (429 ``Retry-After`` honoured only while it fits); after three
consecutive failures the notifier stops trying for a minute, so a task never
waits on a dead Slack more than a few seconds. Failures are logged with the
event kind and a reason code only, counted, and never raised. The counts are a
:class:`DeliveryLedger`, returned by :meth:`SlackNotifications.summary` and
pushed after each event to XCom under :data:`LEDGER_XCOM_KEY` of the task that
sent it; the cutover report merges them with :func:`merge_ledgers`.
"""

from __future__ import annotations

import atexit
import enum
import hashlib
import json
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Protocol

from airflow.sdk import BaseNotifier
from airflow.utils.log.logging_mixin import LoggingMixin

from bascule.hooks.slack import (
    DEFAULT_BUDGET_S,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_TIMEOUT_S,
    BoundedSlackHook,
    DeliveryResult,
    FailureReason,
)
from bascule.notifications.blocks import AirflowLinks, SlackMessage, render
from bascule.notifications.events import Event, EventKind, RunStarted, TaskFailed, TaskRef
from bascule.privacy.sanitize import SafeText, sanitize_error_text

LEDGER_XCOM_KEY = "bascule_slack_ledger"
THREAD_VARIABLE_PREFIX = "bascule_slack_thread__"
# Airflow Variable keys are limited to 250 characters.
_MAX_VARIABLE_KEY = 250
# Slack error codes that mean "this Web API set-up cannot work", as opposed to "not right now".
_MISCONFIGURED = frozenset(
    {
        "connection",
        "slack_conn_id",
        "not_authed",
        "invalid_auth",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "missing_scope",
        "channel_not_found",
        "not_in_channel",
        "is_archived",
    }
)


class DeliveryMode(enum.StrEnum):
    WEB_API = "web_api"
    WEBHOOK = "webhook"


@dataclass(frozen=True, kw_only=True)
class NotificationSettings:
    """Where and how to notify; built from the plan's ``notifications`` section."""

    channel: str
    slack_conn_id: str | None = "bascule_slack"
    webhook_conn_id: str | None = None
    mode: DeliveryMode = DeliveryMode.WEB_API
    airflow_base_url: str | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    budget_s: float = DEFAULT_BUDGET_S
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    breaker_failures: int = 3
    breaker_cooldown_s: float = 60.0

    @classmethod
    def from_plan(cls, notifications: Any, **overrides: Any) -> NotificationSettings:
        """Accept the plan's ``Notifications`` model (or a mapping with the same keys)."""

        def get(key: str) -> Any:
            if isinstance(notifications, Mapping):
                return notifications.get(key)
            return getattr(notifications, key, None)

        slack_conn_id = get("slack_conn_id")
        webhook_conn_id = get("webhook_conn_id")
        mode = DeliveryMode.WEB_API if slack_conn_id else DeliveryMode.WEBHOOK
        values: dict[str, Any] = {
            "channel": get("channel"),
            "slack_conn_id": slack_conn_id,
            "webhook_conn_id": webhook_conn_id,
            "mode": mode,
        }
        values.update(overrides)
        return cls(**values)


# --- thread store -----------------------------------------------------------


@dataclass(frozen=True)
class ThreadRef:
    channel: str
    ts: str


class ThreadStore(Protocol):
    def get(self, key: str) -> ThreadRef | None: ...

    def put(self, key: str, ref: ThreadRef) -> None: ...

    def delete(self, key: str) -> None: ...


def thread_key(dag_id: str, run_id: str) -> str:
    key = f"{THREAD_VARIABLE_PREFIX}{dag_id}__{run_id}"
    if len(key) > _MAX_VARIABLE_KEY:
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        key = key[: _MAX_VARIABLE_KEY - 18] + "__" + digest
    return key


class VariableThreadStore:
    """Thread refs in Airflow Variables, through the Task SDK (works inside a running task)."""

    def get(self, key: str) -> ThreadRef | None:
        from airflow.sdk import Variable

        value = Variable.get(key, default=None, deserialize_json=True)
        if not isinstance(value, dict) or not value.get("ts"):
            return None
        return ThreadRef(channel=str(value.get("channel", "")), ts=str(value["ts"]))

    def put(self, key: str, ref: ThreadRef) -> None:
        from airflow.sdk import Variable

        Variable.set(
            key,
            {"channel": ref.channel, "ts": ref.ts},
            description="Slack thread of a bascule cutover run (written by bascule.notifications)",
            serialize_json=True,
        )

    def delete(self, key: str) -> None:
        from airflow.sdk import Variable

        Variable.delete(key)


BREAKER_VARIABLE_PREFIX = "bascule_slack_down__"


def breaker_key(dag_id: str, run_id: str) -> str:
    """The Variable that tells every task of a run that Slack is down, and until when."""
    return thread_key(dag_id, run_id).replace(THREAD_VARIABLE_PREFIX, BREAKER_VARIABLE_PREFIX, 1)


class BreakerStore(Protocol):
    """Where a run's circuit breaker is kept: the wall-clock time (epoch seconds) until which Slack is left alone."""

    def get(self, key: str) -> float | None: ...

    def put(self, key: str, until: float) -> None: ...

    def delete(self, key: str) -> None: ...


class VariableBreakerStore:
    """The run's breaker in an Airflow Variable, like its thread: every task process of the run reads it."""

    def get(self, key: str) -> float | None:
        from airflow.sdk import Variable

        value = Variable.get(key, default=None, deserialize_json=True)
        return float(value["until"]) if isinstance(value, dict) and value.get("until") is not None else None

    def put(self, key: str, until: float) -> None:
        from airflow.sdk import Variable

        Variable.set(key, {"until": until}, serialize_json=True,
                     description="Slack found down during a bascule run: its tasks leave it alone until then")

    def delete(self, key: str) -> None:
        from airflow.sdk import Variable

        Variable.delete(key)


class MemoryBreakerStore:
    """Process-local breaker store for tests and code running outside a task."""

    def __init__(self) -> None:
        self._until: dict[str, float] = {}

    def get(self, key: str) -> float | None:
        return self._until.get(key)

    def put(self, key: str, until: float) -> None:
        self._until[key] = until

    def delete(self, key: str) -> None:
        self._until.pop(key, None)


class MemoryThreadStore:
    """Process-local store for tests, the bench and code running outside a task."""

    def __init__(self) -> None:
        self._refs: dict[str, ThreadRef] = {}

    def get(self, key: str) -> ThreadRef | None:
        return self._refs.get(key)

    def put(self, key: str, ref: ThreadRef) -> None:
        self._refs[key] = ref

    def delete(self, key: str) -> None:
        self._refs.pop(key, None)


# --- ledger -----------------------------------------------------------------


@dataclass
class DeliveryLedger:
    """Per event kind: attempted / delivered / failed. Counts events, not HTTP requests."""

    attempted: Counter[str] = field(default_factory=Counter)
    delivered: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    failure_reasons: Counter[str] = field(default_factory=Counter)
    worst_delay_s: float = 0.0

    def record(self, kind: EventKind, *, delivered: bool, reason: str, elapsed_s: float) -> None:
        self.attempted[kind.value] += 1
        if delivered:
            self.delivered[kind.value] += 1
        else:
            self.failed[kind.value] += 1
            self.failure_reasons[reason] += 1
        self.worst_delay_s = max(self.worst_delay_s, elapsed_s)

    def to_json(self) -> dict[str, Any]:
        """Format: ``{"version": 1, "by_kind": {kind: {"attempted", "delivered", "failed"}},
        "totals": {...}, "failure_reasons": {reason: n}, "worst_delay_s": x}``."""
        kinds = sorted(self.attempted)
        by_kind = {
            k: {"attempted": self.attempted[k], "delivered": self.delivered[k], "failed": self.failed[k]}
            for k in kinds
        }
        return {
            "version": 1,
            "by_kind": by_kind,
            "totals": {
                "attempted": sum(self.attempted.values()),
                "delivered": sum(self.delivered.values()),
                "failed": sum(self.failed.values()),
            },
            "failure_reasons": dict(sorted(self.failure_reasons.items())),
            "worst_delay_s": round(self.worst_delay_s, 3),
        }


def merge_ledgers(ledgers: Iterable[Mapping[str, Any] | None]) -> dict[str, Any]:
    """Merge ledgers pulled from XCom (``LEDGER_XCOM_KEY``) of several tasks into one."""
    total = DeliveryLedger()
    for ledger in ledgers:
        if not ledger:
            continue
        for kind, counts in ledger.get("by_kind", {}).items():
            total.attempted[kind] += int(counts.get("attempted", 0))
            total.delivered[kind] += int(counts.get("delivered", 0))
            total.failed[kind] += int(counts.get("failed", 0))
        for reason, n in ledger.get("failure_reasons", {}).items():
            total.failure_reasons[reason] += int(n)
        total.worst_delay_s = max(total.worst_delay_s, float(ledger.get("worst_delay_s", 0.0)))
    return total.to_json()


# --- the notifier -----------------------------------------------------------


class SlackNotifications(LoggingMixin):
    """
    Post typed events to Slack, threading them under one parent message per DAG run.

    Every public method returns normally whatever Slack does; outcomes go to the ledger.

    :param settings: channel, connection ids, mode and delivery budget.
    :param thread_store: where the run's thread ``ts`` is kept; Airflow Variables by default.
    :param links: builds Airflow UI links; defaults to ``[api] base_url`` from the Airflow config.
    :param ti: task instance to push the ledger to XCom from; found from the running task if omitted.
    :param breaker_store: where the run-wide circuit breaker is kept; Airflow Variables when ``thread_store``
        is left to its default, else this process only.

    The circuit breaker is the run's, not the process's: each task of a cutover is a process of its own,
    and a breaker per process let every task of the downtime window spend its own few seconds on a dead
    Slack before giving up (three failures, each up to the delivery budget). Once a process opens it, the
    run's breaker Variable says until when (``breaker_cooldown_s``); every later task reads it once, skips
    Slack until then, and after that retries with one try only before it opens again (half-open).
    """

    def __init__(
        self,
        *,
        settings: NotificationSettings,
        thread_store: ThreadStore | None = None,
        links: AirflowLinks | None = None,
        ti: Any | None = None,
        publish_each_delivery: bool = True,
        background: bool = False,
        breaker_store: BreakerStore | None = None,
    ) -> None:
        super().__init__()
        # A runbook step on the critical path sends two messages; pushing the ledger after each
        # is one more Execution API call each. Such callers push once, with flush_ledger().
        self.publish_each_delivery = publish_each_delivery
        # Slack answers in 0.1-0.3 s; a step on the critical path queues its messages and a thread
        # posts them while the step works, the last ones after the task has reported its state.
        self.background = background
        self._queue: queue.Queue[tuple[RunStarted | None, Event]] | None = None
        # The posting thread and the task's own thread may both open the run's thread: one parent only.
        self._lock = threading.RLock()
        self._carried: list[Mapping[str, Any] | Callable[[], Mapping[str, Any] | None]] = []
        self._ledger_dirty = False
        self._known_threads: dict[str, ThreadRef] = {}
        self.settings = settings
        self.thread_store: ThreadStore = thread_store if thread_store is not None else VariableThreadStore()
        self._fallback_store = MemoryThreadStore()
        self.links = links or AirflowLinks(settings.airflow_base_url or _airflow_base_url())
        self._ti = ti
        self.ledger = DeliveryLedger()
        self._consecutive_failures = 0
        self._breaker_open_until = 0.0
        if breaker_store is None:
            breaker_store = VariableBreakerStore() if thread_store is None else MemoryBreakerStore()
        self.breaker_store: BreakerStore = breaker_store
        self._breakers_read: set[str] = set()
        self._run_breaker: str | None = None  # the breaker key of the run being posted to

    @classmethod
    def for_plan(cls, notifications: Any, *, ti: Any | None = None, background: bool = False,
                 publish_each_delivery: bool = True, thread_store: ThreadStore | None = None,
                 airflow_base_url: str | None = None) -> SlackNotifications | None:
        """The one way bascule builds a notifier: from the plan's ``notifications`` section (or the same keys
        as a mapping); None when the plan has none, so that callers need no branch of their own."""
        if notifications is None:
            return None
        overrides = {"airflow_base_url": airflow_base_url} if airflow_base_url else {}
        return cls(settings=NotificationSettings.from_plan(notifications, **overrides), ti=ti,
                   thread_store=thread_store, publish_each_delivery=publish_each_delivery, background=background)

    @cached_property
    def hook(self) -> BoundedSlackHook:
        s = self.settings
        return BoundedSlackHook(
            slack_conn_id=s.slack_conn_id if s.mode is DeliveryMode.WEB_API else None,
            slack_webhook_conn_id=s.webhook_conn_id,
            timeout_s=s.timeout_s,
            budget_s=s.budget_s,
            max_attempts=s.max_attempts,
        )

    # --- public API -------------------------------------------------------

    def open_thread(self, event: RunStarted) -> ThreadRef | None:
        """Post the run's parent message unless the run already has one; return the thread."""
        with self._lock:
            if self.settings.mode is DeliveryMode.WEB_API:
                existing = self._load(event.dag_id, event.run_id)
                if existing is not None:
                    return existing
            _, ref = self._send(event, thread=None)
            return ref

    def notify(self, event: Event) -> bool:
        """Post one event as a reply in its run's thread. True when Slack accepted it."""
        with self._lock:
            return self._notify(event)

    def _notify(self, event: Event) -> bool:
        try:
            if isinstance(event, RunStarted):
                if self.settings.mode is DeliveryMode.WEB_API and self._load(event.dag_id, event.run_id):
                    return True
                delivered, _ = self._send(event, thread=None)
                return delivered
            thread = None
            if self.settings.mode is DeliveryMode.WEB_API:
                thread = self._load(event.dag_id, event.run_id)
                if thread is None:
                    parent = RunStarted(dag_id=event.dag_id, run_id=event.run_id, plan_id=event.dag_id)
                    parent_delivered, thread = self._send(parent, thread=None)
                    if not parent_delivered:
                        # The parent just failed: spend no second delivery budget on this event.
                        self._account(event.kind, None, "no_thread")
                        return False
            delivered, _ = self._send(event, thread=thread)
            return delivered
        except Exception:
            # Belt and braces: a bug here must not fail a cutover task either.
            self.log.exception("Slack notification for %s failed unexpectedly", getattr(event, "kind", "?"))
            return False

    def post(self, event: Event, *, parent: RunStarted | None = None) -> None:
        """Post ``event`` in its run's thread, opening the thread with ``parent`` first if it has none.

        With ``background``, this returns at once: one thread posts the queued events in
        order, and :meth:`wait_posted` waits for them (call it before the process ends).
        """
        if not self.background:
            if parent is not None:
                self.open_thread(parent)
            self.notify(event)
            return
        if self._queue is None:
            self._queue = queue.Queue()
            threading.Thread(target=self._post_queued, name="bascule-slack", daemon=True).start()
            # The poster is a daemon thread: it dies with the process. Callers wait for it before the
            # process ends, but a task whose success callback never runs (its success report refused,
            # say) would lose what is still queued. Airflow's task processes run the atexit functions
            # registered after their fork.
            atexit.register(self._post_before_exit)
        self._queue.put((parent, event))

    def _post_before_exit(self) -> None:
        q = self._queue
        if q is None or not q.unfinished_tasks:
            return
        self.log.warning("Slack: %d message(s) still queued as the process ends; sending them", q.unfinished_tasks)
        self.wait_posted()

    def wait_posted(self, timeout: float | None = None) -> bool:
        """Wait until every queued event was posted or given up, then push the ledger; False on timeout.

        The default timeout is one delivery budget per queued message (the hook's own
        bound), so a Slack outage holds a task's process for at most that long.
        """
        done = True
        q = self._queue
        if q is not None:
            with q.all_tasks_done:
                pending = q.unfinished_tasks
                limit = timeout if timeout is not None else self.settings.budget_s * (pending + 1)
                deadline = time.monotonic() + limit
                while q.unfinished_tasks:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        done = False
                        self.log.warning("Slack: %d message(s) still unsent after %.1fs; not waiting longer",
                                         q.unfinished_tasks, limit)
                        break
                    q.all_tasks_done.wait(remaining)
        self.flush_ledger()
        return done

    def _post_queued(self) -> None:
        q = self._queue
        assert q is not None
        while True:
            parent, event = q.get()
            try:
                if parent is not None:
                    self.open_thread(parent)
                self.notify(event)
            except Exception:
                self.log.exception("Slack notification for %s failed unexpectedly", getattr(event, "kind", "?"))
            finally:
                q.task_done()

    def summary(self) -> dict[str, Any]:
        """This notifier's ledger, in the format documented on :meth:`DeliveryLedger.to_json`."""
        return self.ledger.to_json()

    def thread(self, dag_id: str, run_id: str) -> ThreadRef | None:
        return self._load(dag_id, run_id)

    def finish_run(self, event: Event, *, chart: bytes | None = None, chart_name: str = "timeline.png") -> dict[str, Any]:
        """After a run's last message (ADR 0047): restate the outcome on its parent message, share the chart
        in its thread, and delete the thread's Variable (this process keeps posting in the thread).

        Never raises and is bounded like every delivery: Slack stays off the critical path.
        """
        out = {"parent_updated": False, "chart_uploaded": False, "thread_forgotten": False}
        try:
            self.wait_posted()
            ref = self._load(event.dag_id, event.run_id) if self.settings.mode is DeliveryMode.WEB_API else None
            if ref is not None and time.monotonic() >= self._breaker_open_until:
                message = render(event, self.links)
                out["parent_updated"] = self.hook.update_message(
                    channel=ref.channel, ts=ref.ts, text=message.text, blocks=message.blocks_list()).delivered
                if chart:
                    out["chart_uploaded"] = self.hook.upload_file(
                        channel=ref.channel, thread_ts=ref.ts, content=chart, filename=chart_name,
                        title=f"{event.dag_id} {event.run_id}: timeline").delivered
            key = thread_key(event.dag_id, event.run_id)
            self._fallback_store.delete(key)
            self.thread_store.delete(key)
            out["thread_forgotten"] = True
        except Exception as exc:  # a Slack or Variable outage must not fail the report
            self.log.warning("Slack: finishing the run's thread failed: %s", type(exc).__name__)
        return out

    def flow_change(self, flow: str, event: Event | None, *, state: str, thread: ThreadRef | None = None) -> bool:
        """The monitor's one thread per flow: post when the flow's state changes, and only then.

        ``state`` is ``ok`` or an alert's kind (``lag``, ``broken``). A flow going from ok to an alert opens a
        thread with the alert; a change between alerts replies in it; back to ok replies "recovered" and
        closes the thread (its Variable is deleted), so the next break opens a new one. No change: nothing.
        ``thread``: reply there instead of opening a thread of the flow's own (the night's, after go-live).
        Returns True when something was posted.
        """
        from airflow.sdk import Variable

        key = f"bascule_flow__{flow}"
        try:
            raw = Variable.get(key, default=None)
            previous = json.loads(raw) if raw else {"state": "ok"}
        except Exception as exc:
            self.log.warning("Slack: the flow's state is unreadable (%s); posting", type(exc).__name__)
            previous = {"state": "unknown"}
        if previous.get("state") == state:
            return False
        ref = ThreadRef(**previous["thread"]) if previous.get("thread") else thread
        posted = False
        if event is not None:
            message = render(event, self.links)
            result = self._deliver(message, ref)
            self._account(event.kind, result, result.reason.value if not result.delivered else "")
            posted = result.delivered
            if ref is None and result.delivered and result.ts:
                ref = ThreadRef(channel=result.channel or self.settings.channel, ts=result.ts)
        try:
            if state == "ok":
                Variable.delete(key)
            else:
                Variable.set(key, json.dumps({"state": state, "thread": {"channel": ref.channel, "ts": ref.ts}
                                              if ref else None}))
        except Exception as exc:
            self.log.warning("Slack: could not keep the flow's state (%s)", type(exc).__name__)
        return posted

    def post_alone(self, event: Event) -> bool:
        """One message in the channel, outside any thread (the weekly readiness). True when Slack accepted it."""
        with self._lock:
            try:
                delivered, _ = self._send(event, thread=None)
                self.flush_ledger()
                return delivered
            except Exception:
                self.log.exception("Slack notification for %s failed unexpectedly", getattr(event, "kind", "?"))
                return False

    def forget_thread(self, dag_id: str, run_id: str) -> None:
        key = thread_key(dag_id, run_id)
        self._known_threads.pop(key, None)
        self._fallback_store.delete(key)
        try:
            self.thread_store.delete(key)
        except Exception as exc:
            self.log.warning("Could not delete Slack thread reference: %s", type(exc).__name__)
        try:
            self.breaker_store.delete(breaker_key(dag_id, run_id))
        except Exception as exc:
            self.log.warning("Could not delete the run's Slack breaker: %s", type(exc).__name__)

    # --- internals --------------------------------------------------------

    def _load(self, dag_id: str, run_id: str) -> ThreadRef | None:
        key = thread_key(dag_id, run_id)
        # A run's thread never changes once posted: one Variable read per notifier is enough.
        if key in self._known_threads:
            return self._known_threads[key]
        try:
            ref = self.thread_store.get(key)
        except Exception as exc:
            self.log.warning(
                "Slack thread store unavailable (%s); using this process only", type(exc).__name__
            )
            ref = None
        ref = ref or self._fallback_store.get(key)
        if ref is not None:
            self._known_threads[key] = ref
        return ref

    def _save(self, dag_id: str, run_id: str, ref: ThreadRef) -> None:
        key = thread_key(dag_id, run_id)
        self._known_threads[key] = ref
        self._fallback_store.put(key, ref)
        try:
            self.thread_store.put(key, ref)
        except Exception as exc:
            self.log.warning("Could not store the Slack thread reference (%s)", type(exc).__name__)

    def _send(self, event: Event, *, thread: ThreadRef | None) -> tuple[bool, ThreadRef | None]:
        """Deliver one rendered event: (delivered, the new thread when a parent was posted)."""
        message = render(event, self.links)
        self._read_run_breaker(event.dag_id, event.run_id)
        if time.monotonic() < self._breaker_open_until:
            self._account(event.kind, None, "circuit_open")
            return False, None
        result = self._deliver(message, thread)
        self._account(event.kind, result, result.reason.value if not result.delivered else "")
        if not result.delivered:
            return False, None
        if thread is None and result.ts and self.settings.mode is DeliveryMode.WEB_API:
            ref = ThreadRef(channel=result.channel or self.settings.channel, ts=result.ts)
            self._save(event.dag_id, event.run_id, ref)
            return True, ref
        return True, None

    def _read_run_breaker(self, dag_id: str, run_id: str) -> None:
        """Once per run and process: take over the breaker an earlier task of the run opened."""
        key = breaker_key(dag_id, run_id)
        self._run_breaker = key
        if key in self._breakers_read:
            return
        self._breakers_read.add(key)
        try:
            until = self.breaker_store.get(key)
        except Exception as exc:
            self.log.warning("Slack breaker of the run unreadable (%s); this process counts alone", type(exc).__name__)
            return
        if until is None:
            return
        left = until - time.time()
        if left > 0:
            self._breaker_open_until = max(self._breaker_open_until, time.monotonic() + left)
            self.log.warning("Slack was found down earlier in this run: not trying it for another %.0fs", left)
        else:
            # Half-open: Slack failed this run before; one more failure is enough to leave it alone again.
            self._consecutive_failures = max(self._consecutive_failures, self.settings.breaker_failures - 1)

    def _open_run_breaker(self) -> None:
        key = self._run_breaker
        if key is None:
            return
        try:
            self.breaker_store.put(key, time.time() + self.settings.breaker_cooldown_s)
        except Exception as exc:
            self.log.warning("Could not tell the run's other tasks that Slack is down (%s)", type(exc).__name__)

    def _deliver(self, message: SlackMessage, thread: ThreadRef | None) -> DeliveryResult:
        s = self.settings
        if s.mode is DeliveryMode.WEB_API:
            result = self.hook.post_message(
                channel=thread.channel if thread else s.channel,
                text=message.text,
                blocks=message.blocks_list(),
                thread_ts=thread.ts if thread else None,
                reply_broadcast=message.broadcast,
            )
            misconfigured = result.reason in (FailureReason.NOT_CONFIGURED, FailureReason.SLACK_ERROR) and (
                result.detail in _MISCONFIGURED
            )
            if result.delivered or not (misconfigured and s.webhook_conn_id):
                return result
            self.log.warning("Slack Web API misconfigured (%s); falling back to the webhook", result.detail)
        return self.hook.send_webhook(text=message.text, blocks=message.blocks_list())

    def _account(self, kind: EventKind, result: DeliveryResult | None, reason: str) -> None:
        delivered = bool(result and result.delivered)
        elapsed = result.elapsed_s if result else 0.0
        self.ledger.record(kind, delivered=delivered, reason=reason, elapsed_s=elapsed)
        if delivered:
            self._consecutive_failures = 0
        elif result is not None:
            self._consecutive_failures += 1
            # Event kind and reason code only: the message itself stays out of the logs.
            self.log.warning(
                "Slack delivery failed: kind=%s reason=%s detail=%s attempts=%d elapsed=%.2fs",
                kind.value,
                reason,
                result.detail,
                result.attempts,
                elapsed,
            )
            if self._consecutive_failures >= self.settings.breaker_failures:
                self._breaker_open_until = time.monotonic() + self.settings.breaker_cooldown_s
                self.log.warning(
                    "Slack unreachable %d times in a row; not trying again for %.0fs in this run",
                    self._consecutive_failures,
                    self.settings.breaker_cooldown_s,
                )
                self._open_run_breaker()
        if self.publish_each_delivery:
            self._publish_ledger()
        else:
            self._ledger_dirty = True

    def carry_ledger(self, previous: Mapping[str, Any] | Callable[[], Mapping[str, Any] | None] | None) -> None:
        """Count what an earlier process of the same task instance delivered (a resumed gate or sensor).

        The ledger lives in one XCom key per task instance; without this, the resumed
        process's push would replace the messages sent before the task parked or deferred.
        A callable is called when the ledger is pushed, so that reading the earlier
        ledger costs nothing before then (a resumed gate is on the critical path).
        """
        if previous:
            self._carried.append(previous)

    def carry_earlier_ledger(self) -> None:
        """:meth:`carry_ledger` of what this notifier's task instance pushed before it was resumed."""
        ti = self._ti
        if ti is not None:
            self.carry_ledger(lambda: ti.xcom_pull(task_ids=ti.task_id, key=LEDGER_XCOM_KEY))

    def flush_ledger(self) -> None:
        """Push the ledger to XCom if a delivery was recorded since the last push."""
        if self._ledger_dirty:
            self._ledger_dirty = False
            self._publish_ledger()

    def _publish_ledger(self) -> None:
        ti = self._ti
        if ti is None:
            try:
                from airflow.sdk import get_current_context

                ti = get_current_context()["ti"]
            except Exception:
                return
        try:
            # Read once, before our first push replaces what the earlier process pushed.
            self._carried = [c() if callable(c) else c for c in self._carried]
            ledger = merge_ledgers([*self._carried, self.summary()]) if self._carried else self.summary()
            ti.xcom_push(key=LEDGER_XCOM_KEY, value=ledger)
        except Exception as exc:
            self.log.debug("Could not push the Slack ledger to XCom: %s", type(exc).__name__)


def _airflow_base_url() -> str:
    try:
        from airflow.configuration import conf

        return conf.get("api", "base_url", fallback="http://localhost:8080/")
    except Exception:
        return "http://localhost:8080/"


# --- callback notifier -----------------------------------------------------


class BasculeSlackNotifier(BaseNotifier):
    """
    Task failure callback: posts a :class:`TaskFailed` event into the run's thread.

    ``on_failure_callback=BasculeSlackNotifier(channel="#cutover", slack_conn_id="bascule_slack")``.
    The exception text goes through ``sanitize_error_text`` (the event does it); the log link
    points at the failing try.

    :param channel: Slack channel (name or id). Templated.
    :param slack_conn_id: Slack API connection id. Templated.
    :param webhook_conn_id: optional incoming-webhook connection id, the degraded fallback. Templated.
    :param airflow_base_url: base of UI links; defaults to ``[api] base_url``.
    """

    template_fields: Sequence[str] = ("channel", "slack_conn_id", "webhook_conn_id")

    def __init__(
        self,
        *,
        channel: str,
        slack_conn_id: str | None = "bascule_slack",
        webhook_conn_id: str | None = None,
        airflow_base_url: str | None = None,
        thread_store: ThreadStore | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.channel = channel
        self.slack_conn_id = slack_conn_id
        self.webhook_conn_id = webhook_conn_id
        self.airflow_base_url = airflow_base_url
        self.thread_store = thread_store

    @cached_property
    def notifications(self) -> SlackNotifications:
        # Built on first use, after templates are rendered, so the templated ids are the real ones.
        section = {"channel": self.channel, "slack_conn_id": self.slack_conn_id,
                   "webhook_conn_id": self.webhook_conn_id}
        return SlackNotifications.for_plan(section, thread_store=self.thread_store,  # type: ignore[return-value]
                                           airflow_base_url=self.airflow_base_url)

    @cached_property
    def hook(self) -> BoundedSlackHook:
        return self.notifications.hook

    def notify(self, context: Any) -> None:
        try:
            event = task_failed_from_context(context)
        except Exception as exc:
            self.log.warning("Cannot build a failure notification from the context: %s", type(exc).__name__)
            return
        self.notifications.notify(event)


def failure_notifiers(plan: Any) -> list[BasculeSlackNotifier]:
    """Every DAG's ``on_failure_callback``: the failing task, its sanitised error and its log link, posted in
    the run's thread. Empty when the plan has no notifications section."""
    n = getattr(plan, "notifications", None)
    if n is None:
        return []
    return [BasculeSlackNotifier(channel=n.channel, slack_conn_id=n.slack_conn_id, webhook_conn_id=n.webhook_conn_id)]


def task_failed_from_context(context: Mapping[str, Any]) -> TaskFailed:
    """A :class:`TaskFailed` from an Airflow callback context (exception text is sanitised)."""
    ti = context["ti"]
    exc = context.get("exception")
    ref = TaskRef(
        dag_id=ti.dag_id,
        run_id=ti.run_id,
        task_id=ti.task_id,
        map_index=ti.map_index if ti.map_index is not None else -1,
        try_number=ti.try_number,
    )
    return TaskFailed(
        dag_id=ti.dag_id,
        run_id=ti.run_id,
        task=ref,
        error_type=type(exc).__name__ if exc is not None else "UnknownError",
        # Sanitised from the exception itself (its class, SQLSTATE, diagnostics), then passed as safe text.
        cause=SafeText(sanitize_error_text(exc)) if exc is not None else "",
    )
