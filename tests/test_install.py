"""What the tests run on is what the lock pins: ``requirements/test.lock`` (made by ``uv pip compile``)
is what the README's test command and ``.ci/run`` install, so a green run today is a green run next
month. The package's own dependencies stay ranges (it is a library too); the lock must satisfy them."""

from __future__ import annotations

import os
import re
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parent.parent
LOCK = REPO / "requirements" / "test.lock"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)\s*(?:;\s*(.+))?$")


def lock_pins() -> dict[str, str]:
    """The lock's pins that apply to this interpreter and platform (markers evaluated)."""
    pins = {}
    for line in LOCK.read_text().splitlines():
        m = PIN.match(line.strip())
        if m and (m.group(3) is None or Marker(m.group(3)).evaluate()):
            pins[canonicalize_name(m.group(1))] = m.group(2)
    return pins


def declared() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["test"]]


def test_lock_pins_every_declared_dependency_within_its_range():
    pins = lock_pins()
    assert len(pins) > 20
    for req in declared():
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is declared in pyproject.toml but not pinned in {LOCK.name}"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"{LOCK.name} pins {req.name}=={pins[name]}, outside pyproject's {req.specifier}: "
            "refresh the lock (README, 'Development')")


def test_readme_and_ci_install_from_the_lock():
    readme = (REPO / "README.md").read_text()
    assert "pip install -c requirements/test.lock -e '.[test]'" in readme
    ci = (REPO / ".ci" / "run").read_text()
    assert "-c requirements/test.lock -e '.[test]'" in ci
    assert "uv pip compile pyproject.toml --extra test --universal" in LOCK.read_text()


def test_installed_versions_are_the_locked_ones():
    """CI installs from the lock, so there every pinned package must be installed at its pin."""
    wrong = []
    for name, version in sorted(lock_pins().items()):
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            wrong.append(f"{name}: not installed (lock: {version})")
            continue
        if installed != version:
            wrong.append(f"{name}: {installed} installed, lock says {version}")
    if wrong:
        message = "the environment differs from requirements/test.lock:\n" + "\n".join(wrong)
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message + "\n(install with the README's test command to match)")
