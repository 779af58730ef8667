"""The whole-night leak check: a patient with random values on the source, then every byte the night made.

Rides on the nights test_cutover_lab.py already plays (no night of its own). The patient is inserted on the
source before the initial load, so it travels the whole way: copy, replication, comparisons, suites,
reports. Its values are drawn at random for the session, so they appear nowhere in the repository, and
grepping for them cannot be fooled by a value the code happens to know.
"""

from __future__ import annotations

import json
import random
import string
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_RNG = random.SystemRandom()


def _word(n: int) -> str:
    return "".join(_RNG.choice(string.ascii_lowercase) for _ in range(n))


@dataclass
class LeakPatient:
    mrn: str = field(default_factory=lambda: "LK" + "".join(_RNG.choice(string.digits) for _ in range(12)))
    nin: str = field(default_factory=lambda: "LQ" + "".join(_RNG.choice(string.digits) for _ in range(6)) + "Z")
    family_name: str = field(default_factory=lambda: "Lkq" + _word(11))
    given_name: str = field(default_factory=lambda: "Lkw" + _word(9))
    address_line: str = field(default_factory=lambda: f"{_RNG.randint(100, 999)} Lkr{_word(8)} Road")
    postcode: str = field(default_factory=lambda: f"LQ{_RNG.randint(10, 99)} {_RNG.randint(1, 9)}Z{_RNG.choice('WXY')}")
    phone: str = field(default_factory=lambda: f"+44 7{_RNG.randint(100, 999)} {_RNG.randint(100000, 999999)}")
    changed_name: str = field(default_factory=lambda: "Lkd" + _word(11))  # the target-only difference

    def values(self) -> list[str]:
        return [self.mrn, self.nin, self.family_name, self.given_name, self.address_line, self.postcode,
                self.phone, self.changed_name]

    def insert(self, lab: Any) -> int:
        """On the source, before the night's initial load."""
        with lab.connect("legacy", "clinic") as conn:
            row = conn.execute(
                "INSERT INTO clinic.patients (mrn, nin, family_name, given_name, birth_date, sex, address_line, "
                "postcode, phone, home_hospital_id, created_at, updated_at) "
                "SELECT %s, %s, %s, %s, DATE '1950-01-01' + (random() * 20000)::int, 'X', %s, %s, %s, "
                "min(hospital_id), now(), now() FROM clinic.hospitals RETURNING patient_id",
                (self.mrn, self.nin, self.family_name, self.given_name, self.address_line, self.postcode,
                 self.phone)).fetchone()
        return int(row[0])

    def change_on_target(self, lab: Any) -> None:
        """A difference on this patient's own row, on the target only: the final comparison must catch it."""
        with lab.connect("new", "clinic") as conn:
            conn.execute("UPDATE clinic.patients SET family_name = %s WHERE mrn = %s", (self.changed_name, self.mrn))


def _metadata_dump(lab: Any) -> bytes:
    """A data-only dump of the Airflow metadata database: XCom, HITL details, the log table, everything."""
    from bascule_lab.clusters import AIRFLOW_DB, CONTROL, pg_bindir

    state = lab.state()
    proc = subprocess.run(
        [str(pg_bindir() / "pg_dump"), "--data-only", "-h", str(lab.socket_dir(CONTROL)), "-p",
         str(state.ports[CONTROL]), "-U", "postgres", "-d", AIRFLOW_DB],
        capture_output=True, check=True, timeout=120)
    return proc.stdout


def night_bytes(lab: Any, stack: Any, workdir: Path, slack_capture: Any) -> dict[str, bytes]:
    """Every byte the night produced, by where it was found."""
    out: dict[str, bytes] = {}
    for root in (Path(stack.home), workdir):
        for path in root.rglob("*"):
            if path.is_file():
                out[str(path)] = path.read_bytes()
    out["metadata database (pg_dump --data-only)"] = _metadata_dump(lab)
    out["slack capture"] = json.dumps(slack_capture.records, default=str).encode()
    return out


def assert_no_leak(patient: LeakPatient, produced: dict[str, bytes]) -> dict[str, int]:
    """No value of the patient in any byte (nor JSON-escaped); returns what was searched, for the report."""
    needles = [v.encode() for v in patient.values()]
    needles += [json.dumps(v).strip('"').encode() for v in patient.values()]
    leaks = [(where, n.decode()) for where, blob in produced.items() for n in needles if n in blob]
    assert not leaks, f"patient values leaked: {leaks[:5]}"
    # The search is not vacuous: the night wrote task logs, the metadata database, Slack messages.
    assert any("dag_id=cutover" in where for where in produced), sorted(produced)[:5]
    assert len(produced["metadata database (pg_dump --data-only)"]) > 10_000
    return {"files": len(produced), "bytes": sum(len(b) for b in produced.values())}
