"""The evidence store: where every run's reports, charts and histories live, shared by all workers.

One base URL from configuration (ADR 0044), read through Airflow's ``ObjectStoragePath``:

- ``[bascule] evidence_url`` (``AIRFLOW__BASCULE__EVIDENCE_URL``): ``file:///shared/evidence`` on the compose
  file's shared volume, ``s3://bucket/bascule`` or ``gs://bucket/bascule`` in production;
- ``[bascule] evidence_conn_id``: the Airflow connection holding the object store's credentials (secrets stay
  in Connections);
- neither: a local folder, ``$BASCULE_REPORTS_DIR`` else ``$AIRFLOW_HOME/reports`` (the lab, one machine).

Layout: ``<base>/<plan>/<dag_id>/<run>/<file>``. A run's evidence is tamper-evident: its report step seals a
``manifest.json`` that chains the SHA-256 of every evidence file of the run folder and of every gate decision;
the report shows the chain's root, the report task's XCom (the metadata database) keeps it too, and
``bascule evidence verify RUN`` recomputes everything.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow.sdk import ObjectStoragePath

from bascule.paths import reports_dir

MANIFEST_FILE = "manifest.json"
# Written after the root is known (they show it), then sealed into the manifest as its last links.
SEALED_FILES = ("report.json", "summary.txt")
# Files the chain leaves out: the manifest itself, and break-glass scratch state rewritten by hand.
_NOT_EVIDENCE = {MANIFEST_FILE, "break_glass_state.json"}
CHAIN_VERSION = "bascule-evidence-v1"


def evidence_root() -> ObjectStoragePath:
    """The configured base of the evidence store (see the module docstring)."""
    url = os.environ.get("AIRFLOW__BASCULE__EVIDENCE_URL") or _conf("evidence_url")
    conn_id = os.environ.get("AIRFLOW__BASCULE__EVIDENCE_CONN_ID") or _conf("evidence_conn_id")
    if not url:
        url = "file://" + str(reports_dir().resolve())
    if "://" not in url:
        raise ValueError(f"[bascule] evidence_url must be a URL such as file:///path or s3://bucket/prefix, "
                         f"got {url!r}")
    return ObjectStoragePath(url, conn_id=conn_id) if conn_id else ObjectStoragePath(url)


def _conf(key: str) -> str | None:
    try:
        from airflow.configuration import conf

        value = conf.get("bascule", key, fallback=None)
    except Exception:  # no Airflow configuration on this host (a unit test, a laptop): the local default
        return None
    return value or None


def safe_name(run_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in run_id)


def dag_folder(plan_name: str, dag_id: str) -> ObjectStoragePath:
    return evidence_root() / plan_name / dag_id


def run_folder(plan_name: str, dag_id: str, run_id: str) -> ObjectStoragePath:
    return dag_folder(plan_name, dag_id) / safe_name(run_id)


def write_json(path: ObjectStoragePath, data: Any) -> ObjectStoragePath:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str, sort_keys=True))
    return path


def read_json(path: ObjectStoragePath) -> Any:
    return json.loads(path.read_text())


def sha256_of(path: ObjectStoragePath) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()


def _link(previous: str, kind: str, name: str, digest: str) -> str:
    return hashlib.sha256(f"{previous}|{kind}|{name}|{digest}".encode()).hexdigest()


def genesis(plan_name: str, dag_id: str, run_id: str) -> str:
    return hashlib.sha256(f"{CHAIN_VERSION}|{plan_name}|{dag_id}|{run_id}".encode()).hexdigest()


def _files(folder: ObjectStoragePath) -> list[str]:
    """Every evidence file under the run folder, as names relative to it, sorted (the chain's order)."""
    if not folder.exists():
        return []
    base = str(folder).rstrip("/") + "/"
    names = []
    for p in folder.rglob("*"):
        if p.is_file():
            rel = str(p)[len(base):] if str(p).startswith(base) else p.name
            if rel not in _NOT_EVIDENCE and rel not in SEALED_FILES and not rel.split("/")[-1].startswith("."):
                names.append(rel)
    return sorted(names)


@dataclass
class Manifest:
    plan: str
    dag_id: str
    run_id: str
    entries: list[dict[str, str]] = field(default_factory=list)
    root: str = ""
    sealed: list[dict[str, str]] = field(default_factory=list)
    sealed_root: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"version": CHAIN_VERSION, "algorithm": "sha256", "plan": self.plan, "dag_id": self.dag_id,
                "run_id": self.run_id, "entries": self.entries, "root": self.root, "sealed": self.sealed,
                "sealed_root": self.sealed_root}


def chain(plan_name: str, dag_id: str, run_id: str, *, files: Mapping[str, str],
          decisions: Iterable[Mapping[str, Any]]) -> Manifest:
    """The chain over ``files`` (name -> sha256, taken in name order) then the decisions (in their order)."""
    m = Manifest(plan=plan_name, dag_id=dag_id, run_id=run_id)
    head = genesis(plan_name, dag_id, run_id)
    for name in sorted(files):
        head = _link(head, "file", name, files[name])
        m.entries.append({"kind": "file", "name": name, "sha256": files[name], "chain": head})
    for d in decisions:
        digest = hashlib.sha256(canonical(dict(d))).hexdigest()
        head = _link(head, "decision", str(d.get("gate")), digest)
        m.entries.append({"kind": "decision", "name": str(d.get("gate")), "sha256": digest, "chain": head})
    m.root = head
    return m


def open_manifest(plan_name: str, dag_id: str, run_id: str, decisions: Iterable[Mapping[str, Any]]) -> Manifest:
    """Hash every evidence file already in the run's folder, and the decisions: the root the report shows."""
    folder = run_folder(plan_name, dag_id, run_id)
    files = {name: sha256_of(folder / name) for name in _files(folder)}
    return chain(plan_name, dag_id, run_id, files=files, decisions=decisions)


def seal(manifest: Manifest) -> ObjectStoragePath:
    """Chain the files that show the root (the report, its summary) after it, and write ``manifest.json``."""
    folder = run_folder(manifest.plan, manifest.dag_id, manifest.run_id)
    head = manifest.root
    manifest.sealed = []
    for name in SEALED_FILES:
        if (folder / name).exists():
            digest = sha256_of(folder / name)
            head = _link(head, "sealed", name, digest)
            manifest.sealed.append({"kind": "sealed", "name": name, "sha256": digest, "chain": head})
    manifest.sealed_root = head
    return write_json(folder / MANIFEST_FILE, manifest.to_json())


@dataclass
class Verdict:
    ok: bool
    root: str | None
    problems: list[str]
    checked_files: int
    checked_decisions: int


def verify(plan_name: str, dag_id: str, run_id: str, *, expected_root: str | None = None) -> Verdict:
    """Recompute the run's chain from its files and its report's decisions; compare with the manifest.

    ``expected_root``: the root kept elsewhere (the report task's XCom in the metadata database), so that a
    store rewritten wholesale, manifest included, is caught too.
    """
    folder = run_folder(plan_name, dag_id, run_id)
    problems: list[str] = []
    if not (folder / MANIFEST_FILE).exists():
        return Verdict(False, None, [f"no {MANIFEST_FILE} in {folder}"], 0, 0)
    recorded = read_json(folder / MANIFEST_FILE)
    report = read_json(folder / "report.json") if (folder / "report.json").exists() else {}
    listed = {e["name"]: e["sha256"] for e in recorded.get("entries", []) if e["kind"] == "file"}
    present = _files(folder)
    for name in sorted(set(listed) - set(present)):
        problems.append(f"evidence file missing: {name}")
    for name in sorted(set(present) - set(listed)):
        problems.append(f"evidence file not in the manifest: {name}")
    actual = {name: sha256_of(folder / name) for name in present if name in listed}
    for name, digest in actual.items():
        if digest != listed[name]:
            problems.append(f"evidence file changed: {name}")
    decisions = report.get("decisions") or []
    recomputed = chain(plan_name, dag_id, run_id, files={**listed, **actual}, decisions=decisions)
    if recomputed.root != recorded.get("root"):
        problems.append("the chain's root does not match the manifest (a file or a decision changed)")
    shown = (report.get("evidence") or {}).get("root")
    if shown != recorded.get("root"):
        problems.append("the report shows another root than the manifest")
    if expected_root is not None and expected_root != recorded.get("root"):
        problems.append("the metadata database's root differs from the manifest's (the store was rewritten)")
    head = recorded.get("root") or ""
    for s in recorded.get("sealed", []):
        if not (folder / s["name"]).exists():
            problems.append(f"sealed file missing: {s['name']}")
            continue
        digest = sha256_of(folder / s["name"])
        if digest != s["sha256"]:
            problems.append(f"sealed file changed: {s['name']}")
        head = _link(head, "sealed", s["name"], digest)
    if head != recorded.get("sealed_root"):
        problems.append("the sealed root does not match the manifest")
    return Verdict(not problems, recorded.get("root"), problems, len(listed), len(decisions))
