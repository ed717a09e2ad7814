"""lib.apps.experiments.show's table from DVC's own experiment records (dvc exp show --json)."""

from __future__ import annotations

from lib.apps.experiments import experiments_table


def _record(rev, name, params, scores):
    metrics = {
        f"outputs/evaluate/headline/{run}.json": {
            "data": {"macro_ap": v, "macro_ap_lo": v - 0.05, "macro_ap_hi": v + 0.05}
        }
        for run, v in scores.items()
    }
    return {"rev": rev, "name": name, "data": {"params": {"params.yaml": {"data": params}}, "metrics": metrics}}


def test_rows_for_commits_and_experiments_with_the_knobs_that_differ():
    base = {"study": {"models": ["cnn3d", "tsn"], "seeds": [42]}, "frames": {"step": 100, "size": 64}}
    head = _record("abcdef123456", "main", base, {"tsn-seed42": 0.694, "cnn3d-seed42": 0.199, "chance": 0.177})
    exp = _record("1234567abcdef", "step-25", {**base, "frames": {"step": 25, "size": 64}}, {"tsn-seed42": 0.733})
    head["experiments"] = [{"revs": [exp]}]
    table = experiments_table([_record("workspace", None, base, {}), head])
    assert list(table.index) == ["workspace", "main", "step-25"]
    assert "frames.step" in table and "frames.size" not in table  # only what differs, beside which runs a row has
    assert table.loc["step-25", "frames.step"] == 25 and table.loc["main", "frames.step"] == 100
    assert table.loc["main", "tsn-seed42"] == "0.694 [0.644, 0.744]"
    assert table.loc["step-25", "cnn3d-seed42"] == "-" and table.loc["workspace", "tsn-seed42"] == "-"
    assert "all_negative" not in table
