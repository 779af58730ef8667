"""The live Oracle suite's settings (``make test-oracle``, docs/oracle-live.md): the environment variables that
name the two databases and the GoldenGate deployment, and the Airflow connections made from them.

One list, read by the Makefile's check (a unit test keeps the two equal), the read-only checks and the live
night. A variable's value is never shown in an error: a DSN holds a password.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Iterable, Mapping
from pathlib import Path
from urllib.parse import urlsplit

from bascule.paths import PLANS_DIR, REPO_ROOT

SOURCE_DSN = "BASCULE_ORACLE_SOURCE_DSN"  # the migration user on the source (user/password@host:port/service)
SOURCE_APP_DSN = "BASCULE_ORACLE_SOURCE_APP_DSN"  # the application's user on the source
TARGET_DSN = "BASCULE_ORACLE_TARGET_DSN"
TARGET_APP_DSN = "BASCULE_ORACLE_TARGET_APP_DSN"
GG_URL = "BASCULE_GG_URL"  # the Administration Service, with its reverse-proxy prefix if any
GG_USER = "BASCULE_GG_USER"
GG_PASSWORD = "BASCULE_GG_PASSWORD"
GG_VERIFY = "BASCULE_GG_VERIFY"  # optional: ``false`` or a CA bundle's path
# The live night freezes and switches both databases: it runs only when this says they are disposable.
DISPOSABLE = "BASCULE_ORACLE_NIGHT_DISPOSABLE"
DISPOSABLE_ANSWER = "yes"
PLAN = "BASCULE_ORACLE_PLAN"  # optional: the plan, by default the Oracle example
ENDPOINT_COMMAND = "BASCULE_ORACLE_ENDPOINT_COMMAND"  # optional: the switch, by default the worked script
OUTCOME = "BASCULE_ORACLE_NIGHT_OUTCOME"  # optional: go-live (default) or rollback (NO-GO at data_verified)
OUTCOMES = ("go-live", "rollback")

# What ``make test-oracle`` needs to run at all, in the order its skip line names them.
NIGHT_VARS: tuple[str, ...] = (SOURCE_DSN, SOURCE_APP_DSN, TARGET_DSN, TARGET_APP_DSN, GG_URL, GG_USER,
                               GG_PASSWORD)

EXAMPLE_PLAN = PLANS_DIR / "production-oracle.example.yaml"
WORKED_ENDPOINT = REPO_ROOT / "scripts" / "endpoint" / "oracle-dns-service.sh"

# user/password@host[:port]/service; the password may hold '@' or '/' (the last '@' ends it).
_DSN = re.compile(r"^(?P<user>[^/@\s]+)/(?P<password>.+)@(?P<host>[^:/@\s]+)(?::(?P<port>\d+))?/(?P<service>[^/\s]+)$")


class LiveSettingError(ValueError):
    """A variable of the live suite is missing or malformed; the message names it, never its value."""


def missing(names: Iterable[str], env: Mapping[str, str] | None = None) -> list[str]:
    env = os.environ if env is None else env
    return [n for n in names if not env.get(n)]


def oracle_connection(var: str, env: Mapping[str, str] | None = None) -> str:
    """The Airflow connection (``AIRFLOW_CONN_<ID>`` JSON) for the DSN in ``var``."""
    env = os.environ if env is None else env
    value = env.get(var)
    if not value:
        raise LiveSettingError(f"{var} is not set")
    m = _DSN.match(value)
    if not m:
        raise LiveSettingError(f"{var} must look like user/password@host[:port]/service (its value is not "
                               "shown: it holds a password)")
    return json.dumps({"conn_type": "oracle", "host": m["host"], "port": int(m["port"] or 1521),
                       "login": m["user"], "password": m["password"], "extra": {"service_name": m["service"]}})


def dsn_target(var: str, env: Mapping[str, str] | None = None) -> str:
    """``user@host:port/service`` of the DSN in ``var``: what an error may show of it."""
    c = json.loads(oracle_connection(var, env))
    return f"{c['login']}@{c['host']}:{c['port']}/{c['extra']['service_name']}"


def goldengate_connection(env: Mapping[str, str] | None = None) -> str:
    """The Airflow connection (JSON) for the deployment in ``BASCULE_GG_URL``, ``_USER``, ``_PASSWORD``."""
    env = os.environ if env is None else env
    if gone := missing((GG_URL, GG_USER, GG_PASSWORD), env):
        raise LiveSettingError(f"{', '.join(gone)} not set")
    url = urlsplit(env[GG_URL])
    if url.scheme not in ("http", "https") or not url.hostname:
        raise LiveSettingError(f"{GG_URL} must be an http(s) URL, e.g. https://ogg.example:9012")
    extra: dict[str, object] = {"base_path": url.path.rstrip("/")}
    if verify := env.get(GG_VERIFY):
        extra["verify"] = False if verify.lower() == "false" else verify
    return json.dumps({"conn_type": "http", "host": url.hostname, "port": url.port, "schema": url.scheme,
                       "login": env[GG_USER], "password": env[GG_PASSWORD], "extra": extra})


def require_disposable(env: Mapping[str, str] | None = None) -> None:
    """Refuse the live night unless ``BASCULE_ORACLE_NIGHT_DISPOSABLE=yes`` says both databases may be
    frozen and switched."""
    env = os.environ if env is None else env
    if env.get(DISPOSABLE) != DISPOSABLE_ANSWER:
        raise LiveSettingError(
            f"refusing the live Oracle night: it freezes the source (restricted session, the application's "
            f"account locked, its rights revoked, a guaranteed restore point), stops and starts GoldenGate "
            f"processes and switches the endpoint to the target. Set {DISPOSABLE}={DISPOSABLE_ANSWER} only if "
            f"the databases of {SOURCE_DSN} and {TARGET_DSN} are disposable test systems")


def plan_file(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get(PLAN) or EXAMPLE_PLAN)


def endpoint_command(env: Mapping[str, str] | None = None) -> list[str]:
    env = os.environ if env is None else env
    raw = env.get(ENDPOINT_COMMAND)
    if not raw:
        return [str(WORKED_ENDPOINT)]
    try:
        command = shlex.split(raw)
    except ValueError as exc:
        raise LiveSettingError(f"{ENDPOINT_COMMAND}: {exc}") from None
    if not command:
        raise LiveSettingError(f"{ENDPOINT_COMMAND} is empty")
    return command


def outcome(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    value = env.get(OUTCOME) or OUTCOMES[0]
    if value not in OUTCOMES:
        raise LiveSettingError(f"{OUTCOME} must be one of {', '.join(OUTCOMES)} (got {value!r})")
    return value
