"""The collection passes the gates of its ecosystem (docs/collection.md, VQ-33).

Each gate runs on the collection as built by ``ansible-galaxy collection build`` from this
checkout and installed into a fresh collections path (tests/e2e/collection_gates.py):
galaxy-importer, ansible-lint's production profile and, marked slow, ansible-test sanity.
The declarations an execution environment is built from (``ansible-builder introspect``), the
changelog (antsibull-changelog) and what a build leaves out are checked here too.
"""

from __future__ import annotations

import json
import re
import shutil
import tarfile
import tomllib
import urllib.parse
from pathlib import Path

import pytest
import yaml

from tests.e2e.collection_gates import (
    BIN,
    COLLECTION,
    GET_PIP_OFFLINE,
    REPO,
    SANITY_HOME,
    Built,
    ansible_lint,
    build,
    build_and_install,
    galaxy_importer,
    gate_env,
    publication_readiness,
    run,
    sanity,
)

GALAXY = yaml.safe_load((COLLECTION / "galaxy.yml").read_text())
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    return build_and_install(tmp_path_factory.mktemp("gates"))


def test_galaxy_importer_accepts_the_tarball(built: Built) -> None:
    done = galaxy_importer(built)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "Importer processing completed successfully" in done.stdout + done.stderr
    result = json.loads((built.workdir / "importer_result.json").read_text())
    assert result["metadata"]["version"] == GALAXY["version"]
    # Every module's documentation was read (ansible-doc) and the role has its README.
    contents = result["docs_blob"]["contents"]
    modules = {c["content_name"]: c for c in contents if c["content_type"] == "module"}
    assert modules and all(c["doc_strings"] for c in modules.values())
    roles = [c for c in contents if c["content_type"] == "role"]
    assert roles and all(c["readme_file"] == "README.md" for c in roles)


def test_ansible_lint_production_profile_passes(built: Built) -> None:
    done = ansible_lint(built.root, built.collections)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "Profile 'production' was required, and it passed" in done.stdout + done.stderr


def test_ansible_lint_fails_a_collection_that_breaks_a_rule(tmp_path: Path) -> None:
    """The lint gate can fail: a copy of the collection with one badly indented playbook."""
    copy = tmp_path / "ansible_collections" / "vqual" / "qualification"
    shutil.copytree(COLLECTION, copy, ignore=shutil.ignore_patterns("tests", ".ansible"))
    (copy / "playbooks" / "bad.yml").write_text(
        "---\n- name: Bad\n  hosts: all\n  tasks:\n  - name: Unindented\n    ansible.builtin.ping:\n")
    done = ansible_lint(copy, tmp_path, "playbooks/bad.yml")
    assert done.returncode != 0
    assert "playbooks/bad.yml" in done.stdout and "yaml[indentation]" in done.stdout


@pytest.mark.slow  # about 120 s on the first run (it installs its virtualenvs), 15-30 s after
def test_ansible_test_sanity_passes_offline(built: Built) -> None:
    done = sanity(built)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-6000:]
    # Offline: ansible-test took the stand-in from its cache instead of fetching get-pip from
    # ci-files.testing.ansible.com (pip itself may still come from the machine's own index or
    # mirror, "Downloading pip-..." when the pip cache is cold).
    assert "ci-files.testing.ansible.com" not in done.stdout + done.stderr
    cached = SANITY_HOME / ".ansible" / "test" / "cache"
    assert [p.read_bytes() for p in cached.glob("get_pip_*.py")] == [GET_PIP_OFFLINE.read_bytes()]


def test_sanity_ignore_file_holds_only_what_certification_permits() -> None:
    from ansiblelint.rules.sanity import CheckSanityIgnoreFiles

    permitted = set(CheckSanityIgnoreFiles.allowed_ignores)
    ignore_files = sorted((COLLECTION / "tests" / "sanity").glob("ignore-*.txt"))
    # One per ansible-core the collection supports (pyproject pins ansible-core <2.20).
    assert [p.name for p in ignore_files] == ["ignore-2.19.txt"]
    for line in ignore_files[0].read_text().splitlines():
        path, test = line.split()
        assert (COLLECTION / path).is_file(), line
        assert test in permitted, line


def test_a_build_leaves_out_what_the_gates_write(tmp_path: Path) -> None:
    """A lint or sanity run inside the collection does not end up in the next build."""
    copy = tmp_path / "src" / "ansible_collections" / "vqual" / "qualification"
    shutil.copytree(COLLECTION, copy)
    written = ["tests/output/.tmp/sanity/x.json", ".ansible/collections/ansible_collections/x",
               "changelogs/.plugin-cache.yaml"]
    for name in written:
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        (copy / name).write_text("written by a gate\n")
    with tarfile.open(build(copy, tmp_path / "dist")) as tarball:
        names = tarball.getnames()
    assert "plugins/modules/host_probe.py" in names
    assert not [n for n in names if n.startswith(("tests/output", ".ansible", "changelogs/.plugin"))]


def test_introspect_lists_the_python_and_system_requirements(built: Built) -> None:
    done = run([BIN / "ansible-builder", "introspect", "--sanitize", built.collections],
               cwd=built.workdir, env=gate_env())
    assert done.returncode == 0, done.stderr
    found = yaml.safe_load(done.stdout)
    python = {re.split(r"[=<>!~ ]", line, maxsplit=1)[0]: line.split("#")[0].strip()
              for line in found["python"]}
    # The engine at the collection's version, which is the package's.
    assert python["vqual"] == f"vqual=={GALAXY['version']}" == f"vqual=={PYPROJECT['project']['version']}"
    # Each platform module's library, as the package's extra of that platform declares it.
    extras = PYPROJECT["project"]["optional-dependencies"]
    for extra in ("libvirt", "vsphere", "hyperv"):
        (requirement,) = extras[extra]
        name = re.split(r"[=<>!~]", requirement, maxsplit=1)[0]
        assert python[name] == requirement
    system = " ".join(found["system"])
    for package in ("libvirt0 [platform:dpkg]", "libvirt-libs [platform:rpm]",
                    "openssh-client [platform:dpkg]", "openssh-clients [platform:rpm]"):
        assert package in system


def test_changelog_is_kept_with_antsibull_changelog() -> None:
    done = run([BIN / "antsibull-changelog", "lint"], cwd=COLLECTION, env=gate_env())
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr
    changes = yaml.safe_load((COLLECTION / "changelogs" / "changelog.yaml").read_text())
    assert GALAXY["version"] in changes["releases"]
    assert f"v{GALAXY['version']}" in (COLLECTION / "CHANGELOG.rst").read_text()


def test_license_and_metadata() -> None:
    assert GALAXY["license"] == ["Apache-2.0"]
    text = (COLLECTION / "LICENSE").read_text()
    assert text.lstrip().startswith("Apache License") and "Version 2.0, January 2004" in text
    for role in (COLLECTION / "roles").iterdir():
        assert (role / "README.md").is_file(), role.name


def test_the_repository_is_real_or_the_documented_placeholder() -> None:
    # galaxy-importer refuses a collection without it; no address may be invented
    # (docs/collection.md, "Where it is published").
    repository = GALAXY.get("repository")
    assert isinstance(repository, str) and repository
    parts = urllib.parse.urlsplit(repository)
    assert parts.scheme == "https" and parts.hostname, repository
    readiness = publication_readiness()
    if parts.hostname == "invalid" or parts.hostname.endswith(".invalid"):
        assert readiness.startswith("not ready: ") and repository in readiness
        assert f"as `{repository}`" in (REPO / "docs" / "collection.md").read_text()
        # nothing else points nowhere: the optional addresses stay out until one exists
        assert not {"documentation", "homepage", "issues"} & set(GALAXY)
    else:
        assert readiness == f"ready: galaxy.yml repository {repository}"


def test_a_missing_package_names_the_wheel_and_the_extras() -> None:
    from ansible_collections.vqual.qualification.plugins.module_utils.vqual_controller import (
        MISSING_QUALIFICATION,
    )

    message = MISSING_QUALIFICATION.format(error="No module named 'qualification'")
    assert ".whl[libvirt,vsphere,hyperv]" in message and "docs/install.md" in message
    assert "pip install vqual)" not in message
