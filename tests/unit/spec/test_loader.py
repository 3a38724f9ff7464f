"""load_spec: a valid spec, and every error path naming file:line and the field."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from qualification.errors import EXIT_BAD_INPUT, SpecError
from qualification.spec import Expectation, load_spec
from tests.unit.spec.spec_testlib import VALID_SPEC, TinyRegistry, line_of

WriteSpec = Callable[..., Path]


def variant(old: str, new: str, text: str = VALID_SPEC, count: int = 1) -> str:
    assert text.count(old) >= count, f"{old!r} not in the base spec"
    return text.replace(old, new, count)


def spec_error(path: Path, registry: TinyRegistry) -> SpecError:
    with pytest.raises(SpecError) as info:
        load_spec(path, registry=registry)
    return info.value


def assert_located(err: SpecError, path: Path, line: int, field: str, fragment: str) -> None:
    assert err.where == f"{path}:{line}"
    assert str(err).startswith(f"{path}:{line}: {field}: "), str(err)
    assert fragment in str(err)
    assert err.exit_code == EXIT_BAD_INPUT


# --- a valid spec ---------------------------------------------------------------------------


def test_valid_spec_loads_with_its_fields(write_spec: WriteSpec, registry: TinyRegistry) -> None:
    path = write_spec(VALID_SPEC)
    spec = load_spec(path, registry=registry)
    assert spec.name == "linux-virt-host"
    assert spec.version == "1.0"
    assert spec.requirements == ("URS-HV-02", "URS-SEC-01")
    assert spec.test_ids == ("IQ-OS-001", "IQ-SEC-001")
    first = spec.test("IQ-OS-001")
    assert first.params == {"field": "VERSION_ID"}
    assert first.expect == Expectation(op="equals", value="12")
    assert first.applies_to == ("linux_host",)
    assert first.line == line_of(VALID_SPEC, "id: IQ-OS-001")
    assert spec.test("IQ-SEC-001").expect.to_json() == {"op": "in", "value": [1, 2]}


def test_spec_keeps_raw_bytes_and_their_digest(
    write_spec: WriteSpec, registry: TinyRegistry
) -> None:
    path = write_spec(VALID_SPEC)
    spec = load_spec(path, registry=registry)
    assert spec.raw == path.read_bytes()
    assert spec.digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert spec.record() == {
        "path": str(path),
        "name": "linux-virt-host",
        "version": "1.0",
        "digest": spec.digest,
    }


def test_data_files_are_read_relative_to_the_spec_with_digests(
    write_spec: WriteSpec, registry: TinyRegistry, tmp_path: Path
) -> None:
    hcl = tmp_path / "specs" / "data" / "hcl.yaml"
    hcl.parent.mkdir(parents=True)
    hcl.write_bytes(b"models: [a, b]\n")
    text = variant("tests:\n", "data_files:\n  hcl: data/hcl.yaml\ntests:\n")
    spec = load_spec(write_spec(text, "specs/x.yaml"), registry=registry)
    (item,) = spec.data_files
    assert item.name == "hcl"
    assert item.path == hcl
    assert item.raw == b"models: [a, b]\n"
    assert item.digest == hashlib.sha256(b"models: [a, b]\n").hexdigest()
    assert spec.data_files_record() == [{"path": "data/hcl", "digest": item.digest, "name": "hcl"}]


def test_merge_keys_are_resolved_and_may_be_overridden(
    write_spec: WriteSpec, registry: TinyRegistry
) -> None:
    text = variant(
        "    expect: {op: in, value: [1, 2]}",
        "    expect:\n      <<: {op: equals, value: 3}\n      value: 1",
    )
    spec = load_spec(write_spec(text), registry=registry)
    assert spec.test("IQ-SEC-001").expect.to_json() == {"op": "equals", "value": 1}


def test_the_real_check_library_accepts_a_real_check(write_spec: WriteSpec) -> None:
    text = variant("applies_to: [linux_host, kvm_host]", "applies_to: [kvm_host]")
    spec = load_spec(write_spec(text))  # default registry: qualification.checks
    assert spec.test_ids == ("IQ-OS-001", "IQ-SEC-001")


# --- reading and YAML errors ------------------------------------------------------------


def test_missing_file_names_the_path(tmp_path: Path, registry: TinyRegistry) -> None:
    path = tmp_path / "nope.yaml"
    err = spec_error(path, registry)
    assert err.where == str(path)
    assert "cannot read spec" in str(err)


def test_invalid_yaml_names_the_line(write_spec: WriteSpec, registry: TinyRegistry) -> None:
    text = variant("    protocol: IQ\n", "    protocol: [IQ\n")
    path = write_spec(text)
    err = spec_error(path, registry)
    assert re.match(rf"{re.escape(str(path))}:\d+: \(root\): not valid YAML", str(err))


def test_empty_spec(write_spec: WriteSpec, registry: TinyRegistry) -> None:
    path = write_spec("# nothing here\n")
    assert_located(spec_error(path, registry), path, 1, "(root)", "spec is empty")


def test_not_utf8_names_the_line(tmp_path: Path, registry: TinyRegistry) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"apiVersion: vqual/v1\nkind: Protocol\ntitle: caf\xe9\n")
    assert_located(spec_error(path, registry), path, 3, "(root)", "not UTF-8")


def test_control_character_names_its_line(write_spec: WriteSpec, registry: TinyRegistry) -> None:
    text = variant("title: Kernel pointer restriction", "title: Kérnel pöinter\x1f")
    path = write_spec(text)
    assert_located(
        spec_error(path, registry),
        path,
        line_of(text, "\x1f"),
        "(root)",
        "character U+001F is not allowed",
    )


def test_two_documents_are_refused(write_spec: WriteSpec, registry: TinyRegistry) -> None:
    path = write_spec(VALID_SPEC + "---\nkind: Protocol\n")
    err = spec_error(path, registry)
    assert "not valid YAML" in str(err)
    assert "single document" in str(err)


def test_duplicate_key_names_the_second_occurrence(
    write_spec: WriteSpec, registry: TinyRegistry
) -> None:
    text = variant("    protocol: IQ\n", "    protocol: IQ\n    protocol: OQ\n")
    path = write_spec(text)
    assert_located(
        spec_error(path, registry),
        path,
        line_of(text, "protocol: OQ"),
        "tests[0].protocol",
        "duplicate key",
    )


def test_key_read_as_bool_is_refused(write_spec: WriteSpec, registry: TinyRegistry) -> None:
    text = variant("params: {field: VERSION_ID}", "params: {field: VERSION_ID, on: 1}")
    path = write_spec(text)
    err = spec_error(path, registry)
    assert_located(err, path, line_of(text, "on: 1"), "tests[0].params", "not a string")


def test_timestamp_value_is_refused_with_a_hint(
    write_spec: WriteSpec, registry: TinyRegistry
) -> None:
    text = variant('value: "12"', "value: 2026-01-01")
    path = write_spec(text)
    assert_located(
        spec_error(path, registry),
        path,
        line_of(text, "2026-01-01"),
        "tests[0].expect.value",
        "(quote it)",
    )


def test_nan_is_refused(write_spec: WriteSpec, registry: TinyRegistry) -> None:
    text = variant('value: "12"', "value: .nan")
    path = write_spec(text)
    assert_located(
        spec_error(path, registry),
        path,
        line_of(text, ".nan"),
        "tests[0].expect.value",
        "non-finite",
    )


def test_custom_tag_is_refused(write_spec: WriteSpec, registry: TinyRegistry) -> None:
    text = variant("params: {key: kernel.kptr_restrict}", "params: !!set {a, b}")
    path = write_spec(text)
    assert_located(
        spec_error(path, registry),
        path,
        line_of(text, "!!set"),
        "tests[1].params",
        "unsupported YAML tag",
    )


def test_alias_bomb_is_refused(write_spec: WriteSpec, registry: TinyRegistry) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 8):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    path = write_spec("\n".join(lines) + "\n")
    assert "document too large" in str(spec_error(path, registry))


# --- schema errors -------------------------------------------------------------------------


def test_unknown_op_names_line_field_and_choices(
    write_spec: WriteSpec, registry: TinyRegistry
) -> None:
    text = variant("{op: in, value: [1, 2]}", "{op: equal, value: [1, 2]}")
    path = write_spec(text)
    err = spec_error(path, registry)
    assert_located(
        err, path, line_of(text, "op: equal,"), "tests[1].expect.op", "'equal' is not one of"
    )
    assert "'equals'" in str(err)


def test_wrong_api_version(write_spec: WriteSpec, registry: TinyRegistry) -> None:
    path = write_spec(variant("apiVersion: vqual/v1", "apiVersion: vqual/v2"))
    assert_located(spec_error(path, registry), path, 1, "apiVersion", "must be 'vqual/v1'")


def test_missing_required_field_points_at_its_parent(
    write_spec: WriteSpec, registry: TinyRegistry
) -> None:
    text = variant("    acceptance: VERSION_ID is 12\n", "")
    path = write_spec(text)
    assert_located(
        spec_error(path, registry),
        path,
        line_of(text, "id: IQ-OS-001"),
        "tests[0]",
        "'acceptance' is a required property",
    )


def test_unknown_field_points_at_the_key(write_spec: WriteSpec, registry: TinyRegistry) -> None:
    text = variant("    protocol: IQ\n", "    protocol: IQ\n    severity: major\n")
    path = write_spec(text)
    assert_located(
        spec_error(path, registry),
        path,
        line_of(text, "severity"),
        "tests[0].severity",
        "unknown field (allowed:",
    )


def test_unquoted_version_number_gets_a_hint(write_spec: WriteSpec, registry: TinyRegistry) -> None:
    text = variant('version: "1.0"', "version: 1.0")
    path = write_spec(text)
    assert_located(
        spec_error(path, registry),
        path,
        line_of(text, "version: 1.0"),
        "metadata.version",
        "1.0 is not of type 'string' (quote it)",
    )


def test_bad_test_id(write_spec: WriteSpec, registry: TinyRegistry) -> None:
    text = variant("id: IQ-SEC-001", "id: iq-sec-1")
    path = write_spec(text)
    assert_located(
        spec_error(path, registry),
        path,
        line_of(text, "iq-sec-1"),
        "tests[1].id",
        "does not match",
    )


def test_unknown_target_kind(write_spec: WriteSpec, registry: TinyRegistry) -> None:
    text = variant("applies_to: [linux_host, kvm_host]", "applies_to: [linux_host, xen_host]")
    path = write_spec(text)
    assert_located(
        spec_error(path, registry),
        path,
        line_of(text, "xen_host"),
        "tests[1].applies_to[1]",
        "'xen_host' is not one of",
    )


def test_unsafe_data_file_name(write_spec: WriteSpec, registry: TinyRegistry) -> None:
    text = variant("tests:\n", "data_files:\n  ../hcl: data/hcl.yaml\ntests:\n")
    path = write_spec(text)
    assert_located(
        spec_error(path, registry),
        path,
        line_of(text, "../hcl"),
        'data_files["../hcl"]',
        "bad name",
    )


def test_several_errors_report_the_first_by_line_and_count_the_rest(
    write_spec: WriteSpec, registry: TinyRegistry
) -> None:
    text = variant("protocol: IQ", "protocol: XQ", count=2)
    path = write_spec(text)
    err = spec_error(path, registry)
    assert_located(err, path, line_of(text, "protocol: XQ"), "tests[0].protocol", "'XQ'")
    assert str(err).endswith("(and 1 more error)")


# --- semantic errors -----------------------------------------------------------------------


def test_duplicate_test_id_names_both_lines(write_spec: WriteSpec, registry: TinyRegistry) -> None:
    text = variant("id: IQ-SEC-001", "id: IQ-OS-001")
    path = write_spec(text)
    first = line_of(text, "id: IQ-OS-001")
    err = spec_error(path, registry)
    assert_located(
        err,
        path,
        line_of(text, "id: IQ-OS-001", 2),
        "tests[1].id",
        f"duplicate test id 'IQ-OS-001' (first defined at line {first})",
    )


def test_undeclared_requirement(write_spec: WriteSpec, registry: TinyRegistry) -> None:
    text = variant("requirements: [URS-SEC-01]\n", "requirements: [URS-SEC-01, URS-CL-01]\n")
    path = write_spec(text)
    assert_located(
        spec_error(path, registry),
        path,
        line_of(text, "URS-CL-01"),
        "tests[1].requirements[1]",
        "'URS-CL-01' is not declared in the top-level requirements",
    )


def test_duplicate_declared_requirement(write_spec: WriteSpec, registry: TinyRegistry) -> None:
    text = variant("[URS-HV-02, URS-SEC-01]", "[URS-HV-02, URS-SEC-01, URS-HV-02]")
    path = write_spec(text)
    assert_located(
        spec_error(path, registry), path, 7, "requirements[2]", "duplicate requirement 'URS-HV-02'"
    )


def test_duplicate_risk_level(write_spec: WriteSpec, registry: TinyRegistry) -> None:
    text = variant("risk: [high]", "risk: [high, high]")
    path = write_spec(text)
    assert_located(
        spec_error(path, registry),
        path,
        line_of(text, "[high, high]"),
        "tests[1].risk[1]",
        "duplicate risk level",
    )


def test_unknown_check_type(write_spec: WriteSpec, registry: TinyRegistry) -> None:
    text = variant("check: sysctl", "check: sysctll")
    path = write_spec(text)
    err = spec_error(path, registry)
    assert_located(
        err, path, line_of(text, "sysctll"), "tests[1].check", "unknown check type 'sysctll'"
    )
    assert "os_release, sysctl" in str(err)


def test_bad_params_use_the_registry_text(write_spec: WriteSpec, registry: TinyRegistry) -> None:
    text = variant("params: {key: kernel.kptr_restrict}", "params: {name: kernel.kptr_restrict}")
    path = write_spec(text)
    assert_located(
        spec_error(path, registry),
        path,
        line_of(text, "name: kernel"),
        "tests[1].params",
        "check 'sysctl': sysctl needs params.key",
    )


def test_missing_params_are_checked_as_empty(write_spec: WriteSpec, registry: TinyRegistry) -> None:
    text = variant("    params: {field: VERSION_ID}\n", "")
    path = write_spec(text)
    assert_located(
        spec_error(path, registry),
        path,
        line_of(text, "id: IQ-OS-001"),
        "tests[0].params",
        "os_release needs params.field",
    )


@pytest.mark.parametrize(
    ("expect", "field", "fragment"),
    [
        ('{op: equals, value: "12", value_from: os}', "value_from", "either value or value_from"),
        ("{op: equals}", "", "op 'equals' needs value or value_from"),
        ('{op: equals, value: "12", cmp: ">="}', "cmp", "not used by op 'equals'"),
        ("{op: absent, value: 1}", "value", "not used by op 'absent'"),
        ("{op: range}", "", "op 'range' needs min, max or value_from"),
        ("{op: range, min: 5, max: 1}", "min", "min 5 is greater than max 1"),
        ("{op: range, min: 1, value_from: mem}", "value_from", "either min/max or value_from"),
        ("{op: range, min: one}", "min", "'one' is not of type 'number'"),
        ("{op: regex, value: '([a-z'}", "value", "not a valid regular expression"),
        ("{op: in, value: 12}", "value", "12 is not of type 'array'"),
        ('{op: version, cmp: ">=", value: "1.0"}', "", "'scheme' is a required property"),
        ('{op: version, cmp: "=>", value: "1", scheme: rpm}', "cmp", "'=>' is not one of"),
        (
            '{op: version, cmp: ">=", value: "not a version", scheme: pep440}',
            "value",
            "is not a PEP 440 version",
        ),
        ("{op: same_across_hosts}", "", "'group' is a required property"),
        ("{op: same_across_hosts, group: site}", "group", "'site' is not one of"),
    ],
)
def test_bad_expectations(
    write_spec: WriteSpec, registry: TinyRegistry, expect: str, field: str, fragment: str
) -> None:
    text = variant('{op: equals, value: "12"}', expect)
    path = write_spec(text)
    where = "tests[0].expect" + (f".{field}" if field else "")
    assert_located(spec_error(path, registry), path, line_of(text, expect), where, fragment)


def test_valid_expectations_of_every_op(write_spec: WriteSpec, registry: TinyRegistry) -> None:
    cases = {
        "{op: absent}": {"op": "absent"},
        "{op: range, min: 1}": {"op": "range", "min": 1},
        "{op: range, value_from: mem}": {"op": "range", "value_from": "mem"},
        '{op: version, cmp: ">=", value: "2:1.0-1", scheme: debian}': {
            "op": "version",
            "cmp": ">=",
            "value": "2:1.0-1",
            "scheme": "debian",
        },
        "{op: same_across_hosts, group: cluster}": {"op": "same_across_hosts", "group": "cluster"},
        "{op: contains, value_from: ntp}": {"op": "contains", "value_from": "ntp"},
        "{op: equals, value: null}": {"op": "equals", "value": None},
    }
    for expect, as_json in cases.items():
        path = write_spec(variant('{op: equals, value: "12"}', expect))
        assert load_spec(path, registry=registry).tests[0].expect.to_json() == as_json


def test_missing_data_file(write_spec: WriteSpec, registry: TinyRegistry) -> None:
    text = variant("tests:\n", "data_files:\n  hcl: data/missing.yaml\ntests:\n")
    path = write_spec(text)
    assert_located(
        spec_error(path, registry),
        path,
        line_of(text, "hcl:"),
        "data_files.hcl",
        "data file not found",
    )


def test_absolute_data_file_path(write_spec: WriteSpec, registry: TinyRegistry) -> None:
    text = variant("tests:\n", "data_files:\n  hcl: /etc/hostname\ntests:\n")
    path = write_spec(text)
    assert_located(
        spec_error(path, registry),
        path,
        line_of(text, "hcl:"),
        "data_files.hcl",
        "must be relative to the spec file",
    )


def test_data_file_that_is_a_directory(
    write_spec: WriteSpec, registry: TinyRegistry, tmp_path: Path
) -> None:
    (tmp_path / "data").mkdir()
    text = variant("tests:\n", "data_files:\n  hcl: data\ntests:\n")
    path = write_spec(text)
    assert_located(
        spec_error(path, registry), path, line_of(text, "hcl:"), "data_files.hcl", "not found"
    )


@pytest.mark.parametrize(
    "text",
    [
        VALID_SPEC,
        variant("    protocol: IQ\n", "    protocol: IQ\n    protocol: OQ\n"),
        variant("    protocol: IQ\n", "    protocol: [IQ\n"),
        variant("kind: Protocol", "kind: Pro\x1ftocol"),
        variant("title: Kernel pointer restriction", "title: Kérnel pöinter\x1f"),
        VALID_SPEC + "---\nkind: Protocol\n",
        variant("{op: in, value: [1, 2]}", "{op: equal, value: [1, 2]}"),
    ],
)
def test_pure_python_parser_gives_the_same_answers(
    write_spec: WriteSpec, registry: TinyRegistry, monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    """PyYAML without libyaml falls back to its pure-Python parser: same data, same errors."""
    import yaml

    from qualification.spec import source

    path = write_spec(text)

    def outcome() -> object:
        try:
            return load_spec(path, registry=registry).tests
        except SpecError as err:
            return str(err)

    with_libyaml = outcome()
    monkeypatch.setattr(source, "_Loader", yaml.SafeLoader)
    pure = outcome()
    if isinstance(pure, str) and "not valid YAML" in pure and "character" not in pure:
        # the two parsers word syntax errors differently; the location must agree
        assert isinstance(with_libyaml, str)
        assert pure.split(" not valid YAML")[0] == with_libyaml.split(" not valid YAML")[0]
    else:
        assert pure == with_libyaml
