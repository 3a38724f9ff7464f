"""Whatever is wrong with a spec, load_spec answers with a SpecError naming file:line and a
field, never with another exception."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from qualification.errors import SpecError
from qualification.spec import load_spec
from tests.unit.spec.spec_testlib import VALID_SPEC, TinyRegistry

LINES = VALID_SPEC.splitlines()
# YAML-significant characters and words, so mutations hit the parser, the schema and the
# semantic checks rather than only producing odd strings
FRAGMENTS = st.sampled_from(
    [
        ":",
        "- ",
        "[",
        "]",
        "{",
        "}",
        "&a ",
        "*a",
        "!!str ",
        "<<: ",
        "#",
        "'",
        '"',
        "\t",
        "null",
        "yes",
        "1.0",
        "2026-01-01",
        ".nan",
        "IQ",
        "OQ",
        "op: equals",
        "value_from: x",
        "id: X-1",
        "equal",
        "high",
        "kvm_host",
        "URS-HV-02",
        "  ",
        "\n",
        "---",
        "%YAML 1.1",
        "\u00e9",
    ]
)
MUTATED_LINE = st.lists(st.one_of(FRAGMENTS, st.text(max_size=6)), max_size=6).map("".join)
_QUOTED = r'\["(?:[^"\\]|\\.)*"\]'
_NAME = r"[A-Za-z_][A-Za-z0-9_-]*"
FIELD = re.compile(rf"^(\(root\)|({_NAME}|{_QUOTED})(\[\d+\]|\.{_NAME}|{_QUOTED})*): ")


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, len(LINES) - 1),
            st.sampled_from(["replace", "insert", "drop", "append"]),
            MUTATED_LINE,
        ),
        min_size=1,
        max_size=3,
    )
)
def test_every_failure_is_a_located_spec_error(edits: list[tuple[int, str, str]]) -> None:
    lines = list(LINES)
    for index, action, text in edits:
        index = min(index, len(lines) - 1) if lines else 0
        if action == "replace" and lines:
            lines[index] = text
        elif action == "insert":
            lines.insert(index, text)
        elif action == "drop" and lines:
            del lines[index]
        elif lines:
            lines[index] = lines[index] + text
    content = "\n".join(lines) + "\n"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.yaml"
        path.write_text(content, encoding="utf-8")
        try:
            load_spec(path, registry=TinyRegistry())
        except SpecError as err:
            assert err.where is not None
            match = re.fullmatch(re.escape(str(path)) + r":(\d+)", err.where)
            assert match, err.where
            assert 1 <= int(match.group(1)) <= content.count("\n") + 1
            assert FIELD.match(err.message), err.message
            assert "\n" not in str(err)
