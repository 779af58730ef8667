"""Helpers of the cutover block tests, imported by name (``from cutover_lab_helpers import ...``).

Not in conftest.py: with tests/unit collected in the same run, ``import conftest`` finds
tests/unit/conftest.py, so a test module cannot import from its own directory's conftest.
"""

from __future__ import annotations

from typing import Any

# The lab plan's allowed writers on both sides (include/plans/lab.yaml): the freeze takes every
# other writer's rights, and fails on a superuser it cannot take them from.
LAB_ALLOWED_WRITERS = ("bascule_admin", "bascule_repl", "postgres")


def restore_lab_endpoint_and_roles(lab: Any) -> None:
    from bascule.cutover.endpoint import PgBouncerEndpoint

    for cluster in ("legacy", "new"):
        with lab.connect(cluster) as conn:
            conn.execute("ALTER ROLE clinic_app LOGIN CONNECTION LIMIT -1")
    endpoint = lab_endpoint()
    endpoint.point_to("source")
    endpoint.resume()
    assert isinstance(endpoint, PgBouncerEndpoint)


def lab_endpoint() -> Any:
    from bascule.cutover.endpoint import PgBouncerEndpoint

    return PgBouncerEndpoint(pgbouncer_conn_id="bascule_endpoint_admin", database="clinic",
                             source_conn_id="bascule_legacy_app", target_conn_id="bascule_new_app",
                             followers=("clinic_smoke",), command_timeout_s=10)


def catalog_snapshot(lab: Any, cluster: str, role: str = "clinic_app") -> dict[str, Any]:
    """What a freeze changes, read from the catalogs: grants (aclexplode), login, limit, sequences, state."""
    with lab.connect(cluster, "clinic") as conn:
        grants = conn.execute(
            """SELECT c.relname, a.privilege_type, a.is_grantable
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 CROSS JOIN LATERAL aclexplode(c.relacl) a
                WHERE n.nspname = 'clinic' AND a.grantee = %s::regrole ORDER BY 1, 2""", (role,)).fetchall()
        login = conn.execute("SELECT rolcanlogin, rolconnlimit FROM pg_roles WHERE rolname = %s",
                             (role,)).fetchone()
        sequences = conn.execute(
            "SELECT sequencename, last_value FROM pg_sequences WHERE schemaname = 'clinic' ORDER BY 1").fetchall()
        has_meta = conn.execute("SELECT to_regclass('bascule_meta.freeze_state') IS NOT NULL").fetchone()[0]
        state = conn.execute(
            "SELECT freeze_id, role_name, grants, can_login, conn_limit, frozen_at, frozen_position::text, "
            "released_at FROM bascule_meta.freeze_state ORDER BY 1").fetchall() if has_meta else []
    return {"grants": grants, "login": login, "sequences": sequences, "freeze_state": state}
