"""`bascule plan grants FILE`: the privileges derived from bascule's own statements, and the guide that shows them."""

from __future__ import annotations

import re

import pytest

from bascule.engines import oracle_catalogue
from bascule.engines.oracle_catalogue import NIGHT, Emitted, Names
from bascule.engines.oracle_grants import UnclassifiedStatement, oracle_privileges
from bascule.hooks.goldengate import required_role
from bascule.paths import LAB_PLAN, PLANS_DIR, REPO_ROOT
from bascule.plan_cli import EXIT_INTERNAL, EXIT_OK, grants_command

pytestmark = pytest.mark.unit

EXAMPLE = PLANS_DIR / "production-oracle.example.yaml"
GUIDE = REPO_ROOT / "docs" / "production.md"


def test_the_example_plan_prints_its_grants_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert grants_command(str(EXAMPLE)) == EXIT_OK
    out = capsys.readouterr().out
    for needed in ("GRANT ALTER SYSTEM TO BASCULE_ADMIN;", "GRANT ALTER USER TO BASCULE_ADMIN;",
                   "GRANT RESTRICTED SESSION TO BASCULE_ADMIN;", "GRANT GRANT ANY OBJECT PRIVILEGE TO BASCULE_ADMIN;",
                   "GRANT EXECUTE ON SYS.DBMS_CRYPTO TO BASCULE_ADMIN;",
                   "GRANT SELECT ON SYS.DBA_2PC_PENDING TO BASCULE_ADMIN;",
                   "GRANT SELECT ON SYS.GV_$SESSION TO BASCULE_ADMIN;",
                   "GRANT SELECT ON GGADMIN.GG_LAG TO BASCULE_ADMIN;",
                   "CREATE TABLE BASCULE_META.FREEZE_STATE", "needs the Operator role"):
        assert needed in out, needed
    assert "dbadmin" not in out.lower()  # no procedure the code never calls
    assert out.count("-- source: hosp_prod_legacy") == 1 and out.count("-- target: hosp_prod_new") == 1


def test_docs_production_md_grants_section_is_the_commands_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert grants_command(str(EXAMPLE)) == EXIT_OK
    out = capsys.readouterr().out
    block = re.search(r"<!-- grants: bascule plan grants include/plans/production-oracle.example.yaml -->\n"
                      r"```sql\n(.*?)```\n<!-- end grants -->", GUIDE.read_text(), re.S)
    assert block, "docs/production.md lost its grants block"
    assert block.group(1) == out, ("docs/production.md §3 differs from `bascule plan grants "
                                   "include/plans/production-oracle.example.yaml`: paste the output again")


def test_a_postgres_plan_has_no_oracle_grants(capsys: pytest.CaptureFixture[str]) -> None:
    assert grants_command(str(LAB_PLAN)) == EXIT_OK
    assert "no Oracle grants" in capsys.readouterr().out


def test_every_privilege_comes_from_a_statement_and_a_new_statement_must_be_classified(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    names = Names(schemas=("HOSP",), app_role="HOSP_APP")
    for privilege in oracle_privileges(names, "MIG"):
        assert privilege.needed_by and privilege.when, privilege
    # Whatever a statement touches that no rule knows fails the command rather than going ungranted.
    real = oracle_catalogue.oracle_statements

    def with_new(n: Names) -> list[Emitted]:
        return [*real(n), Emitted("new_step_sql", NIGHT, "SELECT * FROM sys.x$ksppi", {})]

    monkeypatch.setattr("bascule.engines.oracle_grants.oracle_statements", with_new)
    with pytest.raises(UnclassifiedStatement, match="new_step_sql"):
        oracle_privileges(names, "MIG")
    assert grants_command(str(EXAMPLE)) == EXIT_INTERNAL
    assert "UnclassifiedStatement: new_step_sql" in capsys.readouterr().err


def test_the_goldengate_hook_makes_only_declared_calls() -> None:
    assert required_role("GET", "/services/v2/replicats/REPHOSP/info/status") == "User"
    assert required_role("POST", "/services/v2/commands/execute") == "Operator"
    with pytest.raises(ValueError, match="not declared"):
        required_role("DELETE", "/services/v2/replicats/REPHOSP")
