"""Specs (protocols), the inventory model, risk-based test selection, change and run ids."""

from qualification.spec.change import (
    DEFAULT_CHANGE_PATTERN,
    SAFE_NAME_PATTERN,
    is_safe_name,
    validate_change_id,
    validate_run_id,
)
from qualification.spec.inventory import Application, HostInfo, InventoryModel
from qualification.spec.loader import CheckRegistry, load_spec, spec_schema
from qualification.spec.model import (
    EXPECT_OPS,
    IDENTITY_FIELDS,
    RISK_LEVELS,
    SCOPES,
    SIZING_FIELDS,
    CloneSection,
    DataFile,
    Expectation,
    MasterSource,
    SizingRange,
    Spec,
    TestDef,
    target_kinds,
)
from qualification.spec.plan import (
    CLONE_COMPARE_CHECKS,
    MasterBaseline,
    Plan,
    PlannedTest,
    TargetPlan,
    build_plan,
)
from qualification.spec.risk import RiskAssessment, assess_risk, select_tests
from qualification.timeutil import new_run_id

__all__ = [
    "CLONE_COMPARE_CHECKS",
    "DEFAULT_CHANGE_PATTERN",
    "EXPECT_OPS",
    "IDENTITY_FIELDS",
    "RISK_LEVELS",
    "SAFE_NAME_PATTERN",
    "SCOPES",
    "SIZING_FIELDS",
    "Application",
    "CheckRegistry",
    "CloneSection",
    "DataFile",
    "Expectation",
    "HostInfo",
    "InventoryModel",
    "MasterBaseline",
    "MasterSource",
    "Plan",
    "PlannedTest",
    "RiskAssessment",
    "SizingRange",
    "Spec",
    "TargetPlan",
    "TestDef",
    "assess_risk",
    "build_plan",
    "is_safe_name",
    "load_spec",
    "new_run_id",
    "select_tests",
    "spec_schema",
    "target_kinds",
    "validate_change_id",
    "validate_run_id",
]
