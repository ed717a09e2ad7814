"""dvc.yaml, params.yaml and the notebooks' parameters cells agree with each other.

papermill's `-y "$(python -m lib.core.params SECTION...)"` replaces a notebook's section dict whole, so a key that
the smoke defaults have but params.yaml lacks (or the reverse) would silently change
what `dvc repro` runs compared with what nbval tested.
"""

from __future__ import annotations

import ast
import json
import re

import pytest
import yaml

from lib.core.paths import ROOT

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
    # no embed stage: the frames stage encodes on its own decode (lib/encoders/native.py)
    assert list(STAGES) == ["prepare", "frames", "train", "evaluate"]
    assert COMMAND_STAGES == set()
    assert [_notebook_of(STAGES[n]) for n in NOTEBOOK_STAGES] == [
        "notebooks/01_prepare.ipynb",
        "notebooks/02_frames.ipynb",
        "notebooks/03_train.ipynb",
        "notebooks/04_evaluate.ipynb",
    ]


@pytest.mark.parametrize("name", list(STAGES))
def test_stage_dependencies_exist_or_come_from_an_earlier_stage(name):
    produced = {str(o if isinstance(o, str) else next(iter(o))) for s in STAGES.values() for o in s.get("outs", [])}
    for dep in STAGES[name]["deps"]:
        exists = (ROOT / dep).exists() or dep.startswith("data/")  # data/ comes from `dvc pull`
        # A dep on a folder of outputs (evaluate on outputs/train) depends on every stage writing into it.
        made = any(dep == out or dep.startswith(out + "/") or out.startswith(dep + "/") for out in produced)
        assert exists or made, f"stage {name}: dependency {dep} neither exists nor is produced by a stage"
    if name in COMMAND_STAGES:
        module = re.search(r"python -m (lib\.[\w.]+)", STAGES[name]["cmd"]).group(1).replace(".", "/") + ".py"
        assert any(module == d or module.startswith(d + "/") for d in STAGES[name]["deps"]), (
            "a stage must depend on its own code"
        )
    else:
        assert _notebook_of(STAGES[name]) in STAGES[name]["deps"], "a stage must depend on its own notebook"


def _expand_matrix(key: str) -> list[str]:
    """``train.${item.model}`` names one key per model of the study."""
    return [key.replace("${item.model}", m) for m in PARAMS["study"]["models"]] if "${item.model}" in key else [key]


@pytest.mark.parametrize("name", list(STAGES))
def test_stage_params_name_keys_of_params_yaml(name):
    for key in (k for entry in STAGES[name].get("params", []) for k in _expand_matrix(entry)):
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


@pytest.mark.parametrize("name", NOTEBOOK_STAGES)
def test_a_stage_hands_its_notebook_exactly_the_sections_its_parameters_cell_takes(name):
    match = re.search(r'-y "\$\(python -m lib\.core\.params ([\w ]+)\)"', STAGES[name]["cmd"])
    assert match, f"stage {name} does not pass its own params.yaml sections: {STAGES[name]['cmd']}"
    assert "-f params.yaml" not in STAGES[name]["cmd"], "the whole params.yaml would be injected into the report"
    sections = match.group(1).split()
    assert set(sections) == set(_parameters_cell_dicts(_notebook_of(STAGES[name]))) & set(PARAMS), sections


def _parameters_cell_names(notebook: str) -> dict[str, object]:
    nb = json.loads((ROOT / notebook).read_text())
    (cell,) = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    tree = ast.parse("".join(cell["source"]))
    return {node.targets[0].id: ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)}


def test_train_is_a_matrix_over_the_study_and_writes_one_folder_per_run():
    from lib.evaluate.compare import run_name, study_runs

    train = STAGES["train"]
    assert train["matrix"] == {"model": "${study.models}", "seed": "${study.seeds}"}
    assert study_runs(PARAMS["study"]), "params.yaml's study lists at least one model and one seed"
    folder = "outputs/train/${item.model}-seed${item.seed}"
    assert run_name("MODEL", 7) == folder.rsplit("/", 1)[1].replace("${item.model}", "MODEL").replace(
        "${item.seed}", "7"
    )
    assert f"-p out_dir {folder}" in train["cmd"] and "-p model ${item.model} -p seed ${item.seed}" in train["cmd"]
    outs = [o if isinstance(o, str) else next(iter(o)) for o in train["outs"]]
    assert all(o.startswith(folder + "/") or "${item.model}-seed${item.seed}" in o for o in outs), outs
    # The pipeline sets these two per run: tracking them would retrain every run when one changes.
    assert "train.model" not in train["params"] and "train.seed" not in train["params"]


def test_evaluate_reads_every_run_and_the_study():
    evaluate = STAGES["evaluate"]
    assert "outputs/train" in evaluate["deps"] and "study" in evaluate["params"]
    assert "-p train_dir outputs/train" in evaluate["cmd"]
    names = _parameters_cell_names("notebooks/04_evaluate.ipynb")
    assert set(names["study"]) == set(PARAMS["study"]) == {"models", "seeds"}


def test_the_train_notebook_takes_the_run_and_its_smoke_folder_is_what_evaluate_reads():
    from lib.evaluate.compare import run_name

    train_nb = _parameters_cell_names("notebooks/03_train.ipynb")
    eval_nb = _parameters_cell_names("notebooks/04_evaluate.ipynb")
    assert train_nb["model"] is None and train_nb["seed"] is None
    (model,), (seed,) = eval_nb["study"]["models"], eval_nb["study"]["seeds"]
    assert train_nb["out_dir"] == f"{eval_nb['train_dir']}/{run_name(model, seed)}"
    assert train_nb["train"]["model"] == model and train_nb["train"]["seed"] == seed


def test_a_train_run_tracks_the_common_keys_and_its_own_model_section_only():
    """A tsn setting must not retrain cnn3d: each run tracks train.<its model>, and the
    common keys, never another model's section."""
    tracked = STAGES["train"]["params"]
    assert "train.${item.model}" in tracked
    models = {k for k, v in PARAMS["train"].items() if isinstance(v, dict)}
    assert models >= set(PARAMS["study"]["models"]), "every model of the study needs its train.<model> section"
    assert not any(t.split(".")[1] in models for t in tracked if t != "train.${item.model}")


def test_smoke_model_sections_have_the_keys_of_params_yaml():
    smoke = _parameters_cell_dicts("notebooks/03_train.ipynb")["train"]
    for model, section in PARAMS["train"].items():
        if isinstance(section, dict):
            assert set(smoke[model]) == set(section), f"train.{model}: smoke defaults and params.yaml differ"
