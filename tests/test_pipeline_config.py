"""dvc.yaml, params.yaml and the notebooks' parameters cells agree with each other.

papermill's `-f params.yaml` replaces a notebook's section dict whole, so a key that
the smoke defaults have but params.yaml lacks (or the reverse) would silently change
what `dvc repro` runs compared with what nbval tested.
"""
from __future__ import annotations

import ast
import json
import re

import pytest
import yaml

from lib.paths import ROOT

DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())
STAGES = DVC["stages"]
# Stages that run a lib command, not a notebook (no report, no parameters cell).
COMMAND_STAGES = {name for name, s in STAGES.items() if s["cmd"].startswith("python -m lib.")}
NOTEBOOK_STAGES = [name for name in STAGES if name not in COMMAND_STAGES]


def _notebook_of(stage: dict) -> str:
    match = re.search(r"papermill (notebooks/\S+\.ipynb) (reports/\S+\.ipynb)", stage["cmd"])
    assert match, f"stage command does not run a notebook into reports/: {stage['cmd']}"
    return match.group(1)


def _parameters_cell_dicts(notebook: str) -> dict[str, dict]:
    nb = json.loads((ROOT / notebook).read_text())
    (cell,) = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    tree = ast.parse("".join(cell["source"]))
    return {
        node.targets[0].id: ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict)
    }


def test_stages_run_in_pipeline_order():
    assert list(STAGES) == ["prepare", "frames", "embed", "train", "evaluate"]
    assert COMMAND_STAGES == {"embed"}
    assert [_notebook_of(STAGES[n]) for n in NOTEBOOK_STAGES] == [
        "notebooks/01_prepare.ipynb", "notebooks/02_frames.ipynb", "notebooks/03_train.ipynb", "notebooks/04_evaluate.ipynb",
    ]


@pytest.mark.parametrize("name", list(STAGES))
def test_stage_dependencies_exist_or_come_from_an_earlier_stage(name):
    produced = {str(o if isinstance(o, str) else next(iter(o))) for s in STAGES.values() for o in s.get("outs", [])}
    for dep in STAGES[name]["deps"]:
        exists = (ROOT / dep).exists() or dep.startswith("data/")  # data/ comes from `dvc pull`
        made = any(dep == out or dep.startswith(out + "/") for out in produced)
        assert exists or made, f"stage {name}: dependency {dep} neither exists nor is produced by a stage"
    if name in COMMAND_STAGES:
        module = re.search(r"python -m (lib\.\w+)", STAGES[name]["cmd"]).group(1)
        assert module.replace(".", "/") + ".py" in STAGES[name]["deps"], "a stage must depend on its own code"
    else:
        assert _notebook_of(STAGES[name]) in STAGES[name]["deps"], "a stage must depend on its own notebook"


@pytest.mark.parametrize("name", list(STAGES))
def test_stage_params_name_keys_of_params_yaml(name):
    for key in STAGES[name].get("params", []):
        node = PARAMS
        for part in key.split("."):
            assert isinstance(node, dict) and part in node, f"stage {name} tracks {key}, which params.yaml lacks"
            node = node[part]


@pytest.mark.parametrize("name", NOTEBOOK_STAGES)
def test_smoke_defaults_have_the_same_keys_as_params_yaml(name):
    defaults = _parameters_cell_dicts(_notebook_of(STAGES[name]))
    assert name in defaults, f"the {name} notebook's parameters cell has no `{name} = {{...}}` dict"
    assert set(defaults[name]) == set(PARAMS[name]), (
        f"{name}: smoke defaults and params.yaml differ: only in notebook {sorted(set(defaults[name]) - set(PARAMS[name]))}, "
        f"only in params.yaml {sorted(set(PARAMS[name]) - set(defaults[name]))}"
    )
