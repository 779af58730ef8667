"""Test and bench fixture: load the lab's target from its source with a plain COPY.

Replication is the real way rows reach the target; this copy stands in for it
where a test or a bench needs a faithful target without depending on it. It
copies the source's columns only, so the columns the release added on the
target take their defaults, exactly as replicated rows would.
"""

from __future__ import annotations

import time
from typing import Any

from psycopg import sql

SCHEMA = "clinic"


def _tables(conn: Any, schema: str) -> list[str]:
    return [r[0] for r in conn.execute(
        """SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = %s AND c.relkind IN ('r', 'p') AND NOT c.relispartition ORDER BY 1""",
        (schema,)).fetchall()]


def _columns(conn: Any, schema: str, table: str) -> list[str]:
    return [r[0] for r in conn.execute(
        """SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped
            ORDER BY attnum""", (f"{schema}.{table}",)).fetchall()]


def copy_source_to_target(lab: Any, *, schema: str = SCHEMA, tables: list[str] | None = None,
                          source: str = "legacy", target: str = "new", dbname: str = "clinic") -> dict[str, Any]:
    """Truncate the target's tables and COPY every row of the source into them; return rows and seconds."""
    started = time.monotonic()
    rows: dict[str, int] = {}
    with lab.connect(source, dbname) as src, lab.connect(target, dbname) as dst:
        names = tables or _tables(src, schema)
        # Foreign keys are not checked during the load (order does not matter), as under replication.
        dst.execute("SET session_replication_role = replica")
        dst.execute(sql.SQL("TRUNCATE {}").format(
            sql.SQL(", ").join(sql.Identifier(schema, t) for t in names)))
        # Secondary indexes are rebuilt after the load: maintaining them row by row costs several
        # times the copy itself at bench scale. Constraint indexes (keys) stay.
        indexes = dst.execute(
            """SELECT ic.relname, replace(pg_get_indexdef(i.indexrelid), ' ON ONLY ', ' ON ')
                 FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
                 JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace
                WHERE n.nspname = %s AND NOT t.relispartition AND t.relname = ANY(%s)
                  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)""",
            (schema, names)).fetchall()
        for name, _ in indexes:
            dst.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(schema, name)))
        for table in names:
            cols = sql.SQL(", ").join(sql.Identifier(c) for c in _columns(src, schema, table))
            rel = sql.Identifier(schema, table)
            out_sql = sql.SQL("COPY (SELECT {} FROM {}) TO STDOUT (FORMAT binary)").format(cols, rel)
            in_sql = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT binary)").format(rel, cols)
            with src.cursor() as sc, dst.cursor() as dc, sc.copy(out_sql) as out, dc.copy(in_sql) as inp:
                for chunk in out:
                    inp.write(chunk)
            rows[table] = dst.execute(sql.SQL("SELECT count(*) FROM {}").format(rel)).fetchone()[0]
        dst.execute("RESET session_replication_role")
        for _, definition in indexes:
            dst.execute(definition)
        for table in names:
            dst.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(schema, table)))
        # Identity sequences follow the copied rows, so test inserts without ids do not collide.
        seqs = dst.execute(
            """SELECT s.seqrelid::regclass::text, a.attrelid::regclass::text, a.attname
                 FROM pg_depend d JOIN pg_sequence s ON s.seqrelid = d.objid
                 JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                WHERE d.deptype = 'i' AND a.attrelid::regclass::text LIKE %s""", (f"{schema}.%",)).fetchall()
        for seq, rel, col in seqs:
            dst.execute(sql.SQL("SELECT setval({}, coalesce((SELECT max({}) FROM {}), 0) + 1, false)").format(
                sql.Literal(seq), sql.Identifier(col), sql.SQL(rel)))
    return {"rows": rows, "seconds": time.monotonic() - started}


def plant_differences(lab: Any, *, target: str = "new", dbname: str = "clinic",
                      patient_id: int | None = None) -> dict[str, set[tuple[str, Any]]]:
    """On the target: change 10 rows, delete 5, insert 3. Returns the expected keys per category as
    ``(schema.table, key)`` with keys as a report renders them (a scalar, or a tuple of the list for composite keys).

    The changes are the hard cases: a NULL set and a NULL cleared, a trailing space, a one-microsecond
    timestamp change, one character in the middle of a large text, a jsonb detail, a 0.01 dose.
    ``patient_id`` picks the patient whose phone is set to NULL (a canary, in the leak tests).
    """
    from bascule.privacy.keys import json_key_value

    changed: set[tuple[str, Any]] = set()
    missing: set[tuple[str, Any]] = set()
    extra: set[tuple[str, Any]] = set()

    def one(conn: Any, query: str, *args: Any) -> Any:
        row = conn.execute(query, args).fetchone()
        if row is None:
            raise RuntimeError(f"plant_differences: no row for {query.split('RETURNING')[0][:80]}")
        return row[0] if len(row) == 1 else tuple(json_key_value(v) for v in row)

    with lab.connect(target, dbname) as c:
        c.execute("SET session_replication_role = replica")
        p = "clinic.patients"
        changed.add((p, one(c, f"UPDATE {p} SET phone = '+44 7700 900999' WHERE patient_id = "
                               f"(SELECT min(patient_id) FROM {p} WHERE phone IS NULL) RETURNING patient_id")))
        with_phone = patient_id or one(c, f"SELECT min(patient_id) FROM {p} WHERE phone IS NOT NULL")
        changed.add((p, one(c, f"UPDATE {p} SET phone = NULL WHERE patient_id = %s RETURNING patient_id",
                            with_phone)))
        changed.add((p, one(c, f"UPDATE {p} SET address_line = address_line || ' ' WHERE patient_id = "
                               f"(SELECT max(patient_id) FROM {p}) RETURNING patient_id")))
        e = "clinic.encounters"
        changed.add((e, one(c, f"UPDATE {e} SET admitted_at = admitted_at + interval '1 microsecond' "
                               f"WHERE encounter_id = (SELECT min(encounter_id) + 7 FROM {e}) RETURNING encounter_id")))
        changed.add((e, one(c, f"UPDATE {e} SET discharged_at = NULL WHERE encounter_id = (SELECT max("
                               f"encounter_id) FROM {e} WHERE discharged_at IS NOT NULL) RETURNING encounter_id")))
        n = "clinic.clinical_notes"
        changed.add((n, one(c, f"UPDATE {n} SET note_text = overlay(note_text placing "
                               f"CASE WHEN substr(note_text, length(note_text) / 2, 1) = 'x' THEN 'y' ELSE 'x' END "
                               f"from length(note_text) / 2 for 1) WHERE note_id = (SELECT min(note_id) + 3 FROM {n})"
                               " RETURNING note_id")))
        r = "clinic.prescriptions"
        changed.add((r, one(c, f"UPDATE {r} SET dose_mg = dose_mg + 0.01 WHERE prescription_id = "
                               f"(SELECT min(prescription_id) + 11 FROM {r}) RETURNING prescription_id")))
        o = "clinic.observations"
        changed.add((o, one(c, f"UPDATE {o} SET value_num = value_num + 1 WHERE observation_id = "
                               f"(SELECT min(observation_id) + 5 FROM {o}) RETURNING observation_id")))
        a = "clinic.audit_log"
        changed.add((a, one(c, f"UPDATE {a} SET details = coalesce(details, '{{}}'::jsonb) || '{{\"v\": 2}}' "
                               f"WHERE (audit_id, logged_at) = (SELECT audit_id, logged_at FROM {a} "
                               "ORDER BY audit_id OFFSET 3 LIMIT 1) RETURNING audit_id, logged_at")))
        s = "clinic.staff"
        changed.add((s, one(c, f"UPDATE {s} SET full_name = full_name || ' ' WHERE staff_id = "
                               f"(SELECT min(staff_id) + 1 FROM {s}) RETURNING staff_id")))
        for _ in range(2):
            missing.add((o, one(c, f"DELETE FROM {o} WHERE observation_id = (SELECT max(observation_id) "
                                   f"FROM {o}) RETURNING observation_id")))
        missing.add((a, one(c, f"DELETE FROM {a} WHERE (audit_id, logged_at) = (SELECT audit_id, logged_at "
                               f"FROM {a} ORDER BY audit_id DESC LIMIT 1) RETURNING audit_id, logged_at")))
        missing.add((r, one(c, f"DELETE FROM {r} WHERE prescription_id = (SELECT min(prescription_id) FROM {r})"
                               " RETURNING prescription_id")))
        missing.add((n, one(c, f"DELETE FROM {n} WHERE note_id = (SELECT max(note_id) FROM {n}) "
                               "RETURNING note_id")))
        extra.add((o, one(c, f"INSERT INTO {o} (observation_id, encounter_id, code, value_num, unit, observed_at)"
                             f" SELECT max(observation_id) + 1000, min(encounter_id), 'X-TEST', 1.5, 'mg', now()"
                             f" FROM {o} RETURNING observation_id")))
        extra.add((a, one(c, f"INSERT INTO {a} (audit_id, logged_at, staff_id, action, object_type)"
                             f" SELECT max(audit_id) + 1000, now(), 1, 'view', 'patient' FROM {a}"
                             " RETURNING audit_id, logged_at")))
        extra.add((e, one(c, f"INSERT INTO {e} (encounter_id, patient_id, hospital_id, attending_staff_id,"
                             " encounter_type, ward, admitted_at) SELECT max(encounter_id) + 1000, 1, 1, 1,"
                             f" 'outpatient', 'W1', now() FROM {e} RETURNING encounter_id")))
    if (len(changed), len(missing), len(extra)) != (10, 5, 3):
        raise RuntimeError(f"plant_differences: expected 10 changed, 5 missing, 3 extra keys (got {len(changed)},"
                           f" {len(missing)}, {len(extra)}): run it on a copy of the source")
    return {"changed": changed, "missing_on_target": missing, "extra_on_target": extra}
