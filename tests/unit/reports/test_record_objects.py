"""The renderers take the reader's record objects as well as mappings."""

from __future__ import annotations

import hashlib
import json

from qualification.evidence.reader import Record
from qualification.reports.html import render_report
from qualification.reports.junit import render_junit
from qualification.reports.matrix import traceability
from tests.unit.reports.reports_testlib import DECLARED, EXECUTOR


def _objects(records):
    out = []
    for index, rec in enumerate(records):
        line = json.dumps(rec, sort_keys=True, separators=(",", ":")).encode()
        out.append(
            Record(line=index + 1, digest=hashlib.sha256(line).hexdigest(), keyid=EXECUTOR, **rec)
        )
    return out


def test_record_objects_render_exactly_like_their_mappings(run):
    objects = _objects(run.records)
    assert render_junit(objects) == render_junit(run.records)
    assert traceability(objects, DECLARED) == traceability(run.records, DECLARED)


def test_seal_digest_comes_from_the_run_end_line_when_the_reader_gives_it(run):
    objects = _objects(run.records)
    seal = next(o.digest for o in objects if o.kind == "run.end")
    html = render_report(objects)
    assert f'<td class="value" id="seal">{seal}</td>' in html
    assert 'id="seal"' not in render_report(run.records)
