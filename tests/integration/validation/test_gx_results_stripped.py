"""GX results leave the worker stripped: an expectation that raises on a CAST of a canary's value."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bascule_lab.canary import CANARY_STRINGS

pytestmark = pytest.mark.integration


def test_a_cast_of_a_canary_value_leaves_only_the_exception_class(lab: Any) -> None:
    import great_expectations as gx

    from bascule.validation.suites import _StrippedResult, outcome_summary, quiet_gx, strip_checkpoint_result

    quiet_gx()
    state = lab.state()
    url = (f"postgresql+psycopg://bascule_admin:{state.passwords['bascule_admin']}@127.0.0.1:"
           f"{state.ports['legacy']}/clinic")
    context = gx.get_context(mode="ephemeral")
    source = context.data_sources.add_postgres("legacy", connection_string=url)
    asset = source.add_table_asset("patients", table_name="patients", schema_name="clinic")
    batch_def = asset.add_batch_definition_whole_table("all")
    suite = context.suites.add(gx.ExpectationSuite(name="canary_cast", expectations=[
        gx.expectations.UnexpectedRowsExpectation(
            # CASE: the cast runs on a canary's row only, so the error quotes a canary's name.
            unexpected_rows_query="SELECT * FROM {batch} WHERE CASE WHEN mrn = 'MRNCANARY0001' "
                                  "THEN family_name::integer > 0 ELSE false END"),
        gx.expectations.ExpectColumnValuesToNotBeNull(column="mrn"),
    ]))
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name="canary_cast", data=batch_def, suite=suite))
    checkpoint = context.checkpoints.add(gx.Checkpoint(name="canary_cast", validation_definitions=[definition],
                                                       result_format={"result_format": "BOOLEAN_ONLY"}))
    raw = checkpoint.run()
    quoted = json.dumps([r.exception_info for v in raw.run_results.values() for r in v.results], default=str)
    assert any(c in quoted for c in CANARY_STRINGS), "GX did not quote the canary: the test proves nothing"

    stripped = strip_checkpoint_result(raw)
    text = json.dumps(stripped, default=str)
    assert not any(c in text for c in CANARY_STRINGS)
    first = stripped["validation_results"][0]["expectations"]
    raised = [e["raised"] for e in first if e["raised"]]
    assert raised and "InvalidTextRepresentation" in raised[0], first
    assert {e["kwargs"].get("column") for e in first} == {None, "mrn"}
    summary = outcome_summary(stripped)
    assert "InvalidTextRepresentation" in json.dumps(summary)

    # What the GX provider pushes to XCom and puts in GXValidationFailed: the checkpoint's describe_dict().
    pushed = _StrippedResult(raw).describe_dict()  # StrippedCheckpoint.run's result, without a second run
    assert not any(c in json.dumps(pushed, default=str) for c in CANARY_STRINGS)
    assert [e["raised"] for e in pushed["validation_results"][0]["expectations"]] == [e["raised"] for e in first]
