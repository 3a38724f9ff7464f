"""The sliced GitLab pipeline of docs/ci.md (docs/examples/gitlab-ci-sliced.yml) is valid
against GitLab's CI schema and passes only options its `vqual` commands have."""

from __future__ import annotations

import re

import yaml

from tests.unit.test_ci_examples import EXAMPLES, _check_jsonschema, _options

SLICED = EXAMPLES / "gitlab-ci-sliced.yml"


def test_the_sliced_pipeline_is_valid_against_gitlabs_ci_schema() -> None:
    done = _check_jsonschema(SLICED)
    assert done.returncode == 0, done.stdout + done.stderr


def test_each_slice_records_its_node_and_the_join_names_the_pipeline() -> None:
    pipeline = yaml.safe_load(SLICED.read_text())
    script = " ".join(pipeline["qualify"]["script"] + pipeline["join"]["script"])
    assert pipeline["qualify"]["parallel"] == 2 and pipeline["join"]["needs"] == ["qualify"]
    assert '--slice "$CI_NODE_INDEX/$CI_NODE_TOTAL"' in script
    assert script.count('"$CI_PIPELINE_ID"') == 2  # the slices' parent, and the join's
    calls = [found.groups() for line in pipeline["qualify"]["script"] + pipeline["join"]["script"]
             if (found := re.match(r"vqual (\w+)\b(.*)", line))]
    assert [c for c, _ in calls] == ["qualify", "join", "verify"]
    for command, rest in calls:
        given = set(re.findall(r"(?<![\w-])(--?[a-z][a-z-]*)", rest))
        assert given <= _options(command), (command, given - _options(command))
