"""pyproject.toml and environment.yml must name the same runtime dependencies (conda cannot run here)."""

import re
from pathlib import Path

import tomllib
import yaml

ROOT = Path(__file__).resolve().parent.parent
# conda-forge names that differ from PyPI names
CONDA_TO_PYPI = {"pysoundfile": "soundfile"}


def _name(spec: str) -> str:
    return re.split(r"[<>=!~ \[]", spec.strip(), maxsplit=1)[0].lower()


def test_environment_yml_mirrors_pyproject():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    wanted = {_name(d): d for d in pyproject["project"]["dependencies"]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    have: dict[str, str] = {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            for pip_dep in dep.get("pip", []):
                if not pip_dep.startswith("-"):
                    have[_name(pip_dep)] = pip_dep
        elif _name(dep) not in ("python", "pip"):
            have[CONDA_TO_PYPI.get(_name(dep), _name(dep))] = dep
    assert set(have) == set(wanted), (
        f"only in pyproject: {set(wanted) - set(have)}; only in environment.yml: {set(have) - set(wanted)}")
    for name, spec in wanted.items():
        # same lower bound on both sides
        lower = re.search(r">=([\d.]+)", spec)
        if lower:
            assert f">={lower.group(1)}" in have[name], f"{name}: pyproject says {spec}, environment.yml {have[name]}"


def test_python_floor_matches():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    floor = pyproject["project"]["requires-python"].lstrip(">=")
    assert f"python>={floor}" in env["dependencies"]
