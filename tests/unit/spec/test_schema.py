"""The shipped JSON Schema: valid, found as package data, in step with the model's constants."""

from __future__ import annotations

from importlib import resources

import jsonschema

from qualification.spec import EXPECT_OPS, RISK_LEVELS, spec_schema, target_kinds
from qualification.spec.model import PROTOCOLS


def test_schema_ships_as_package_data_and_is_valid() -> None:
    resource = resources.files("qualification.spec").joinpath("schema/spec-v1.schema.json")
    assert resource.is_file()
    schema = spec_schema()
    jsonschema.validators.validator_for(schema).check_schema(schema)


def test_schema_enums_match_the_model() -> None:
    defs = spec_schema()["$defs"]
    assert defs["targetKind"]["enum"] == list(target_kinds())
    assert sorted(defs["riskLevel"]["enum"]) == sorted(RISK_LEVELS)
    assert defs["expect"]["properties"]["op"]["enum"] == list(EXPECT_OPS)
    assert defs["test"]["properties"]["protocol"]["enum"] == list(PROTOCOLS)


def test_schema_expect_fields_are_the_union_of_what_ops_use() -> None:
    used = set().union(*EXPECT_OPS.values()) | {"op"}
    assert set(spec_schema()["$defs"]["expect"]["properties"]) == used
