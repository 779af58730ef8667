"""The key that signs gate decisions, from an Airflow connection only the workers can read (ADR 0037)."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseHook

MIN_KEY_BYTES = 32


class DecisionKeyError(RuntimeError):
    """The decision key is missing or too weak; the message names the connection."""


class DecisionKeyHook(BaseHook):
    """Reads the decision key: the password of connection ``key_conn_id`` (a secrets-backend entry)."""

    conn_name_attr = "key_conn_id"
    hook_name = "bascule decision key"

    def __init__(self, *, key_conn_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.key_conn_id = key_conn_id

    def key(self) -> bytes:
        try:
            secret = self.get_connection(self.key_conn_id).password
        except Exception as exc:  # AirflowNotFoundException, or the secrets backend unreachable
            raise DecisionKeyError(
                f"connection {self.key_conn_id!r} (the workers' key that signs gate decisions) cannot be read: "
                f"{type(exc).__name__}; no decision can be recorded or verified without it") from None
        key = (secret or "").encode()
        if len(key) < MIN_KEY_BYTES:
            raise DecisionKeyError(f"connection {self.key_conn_id!r}: the decision key must be at least "
                                   f"{MIN_KEY_BYTES} bytes (got {len(key)})")
        return key
