"""environment.yml (conda users) installs the same pinned set as pyproject.toml."""

from __future__ import annotations

import re
import tomllib

import yaml

from notebook_utils import ROOT


def _normalise(req: str) -> tuple[str, str]:
    name, _, version = req.partition("==")
    assert version, f"{req!r} is not pinned exactly (name==version)"
    return re.sub(r"[-_.]+", "-", name.strip().lower()), version.strip()


def _pyproject() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        reqs.extend(extra)
    pins = dict(_normalise(r) for r in reqs)
    assert len(pins) == len(reqs), "a package is listed twice in pyproject.toml"
    return pins


def _environment() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_sections) == 1, "environment.yml needs exactly one pip section"
    return dict(_normalise(r) for r in pip_sections[0])


def test_environment_yml_matches_pyproject():
    py, env = _pyproject(), _environment()
    missing = sorted(set(py) - set(env))
    extra = sorted(set(env) - set(py))
    differ = sorted(f"{k}: pyproject {py[k]} vs environment.yml {env[k]}" for k in set(py) & set(env) if py[k] != env[k])
    assert not (missing or extra or differ), f"missing in environment.yml: {missing}; only in environment.yml: {extra}; {differ}"


def test_makefile_installs_torch_from_the_pyproject_pin():
    makefile = (ROOT / "Makefile").read_text()
    assert "grep -o '\"torch==[^\"]*\"' pyproject.toml" in makefile
    assert _pyproject()["torch"] == "2.13.0"
