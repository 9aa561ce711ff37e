"""bench/describe_record.py runs (tiny: the hand-set model, seconds) and says only what it measured;
`run_all --merge` reruns some modules into an existing results.json and keeps the others."""

from __future__ import annotations

import json
import re

import pytest


@pytest.fixture(scope="module")
def record(import_bench):
    return import_bench("describe_record")


@pytest.fixture(scope="module")
def tiny_results(record):
    return record.run(tiny=True, log=lambda line: None)


def test_describe_record_runs_tiny_and_renders_its_own_numbers(record, tiny_results):
    r = tiny_results
    assert r["n_heads"] > 0 and r["n_mixtures"] > 0 and r["seconds"] > 0
    assert r["replacement_rule"] is not None and r["replacement_mixture"] is not None
    assert len(r["replacement_mixture"]["heads"]) == max(1, round(0.25 * r["n_heads"]))
    assert record.target_rows(r) == []  # no targets on the tiny model
    text = record.render(r)
    assert text.startswith("## describe: against the record")
    assert f"{r['replacement_mixture']['increase']:+.1%}" in text
    assert " ".join(r["replacement_mixture"]["heads"]) in text
    assert not re.search(r"\bnan\b", text)


def test_describe_record_target_rows_say_met_or_not_as_measured(record, tiny_results):
    full = dict(tiny_results, iou_target=0.75, perplexity_target=0.16, mean_iou=0.31, mean_mixture_iou=0.8,
                replacement_rule={**tiny_results["replacement_rule"], "increase": 2.17},
                replacement_mixture={**tiny_results["replacement_mixture"], "increase": 0.1})
    rows = record.target_rows(full)
    assert [met for _, _, met in rows] == [False, True, False, True]
    assert "0.310" in rows[0][1] and "+10.0%" in rows[3][1]
    assert record.target_rows(dict(full, mean_mixture_iou=None))[1][2] is None  # not measured, not "met"


def test_describe_record_is_in_run_alls_list(import_bench):
    assert "describe_record" in import_bench("run_all").MODULES


def test_merge_reruns_one_module_and_keeps_the_others(import_bench, tmp_path):
    run_all = import_bench("run_all")
    run_all.run_all(tiny=True, modules=["describe"], out=tmp_path, command="python bench/run_all.py --tiny",
                    log=lambda line: None)
    before = json.loads((tmp_path / "results.json").read_text())
    run_all.main(["--tiny", "--merge", "--modules", "describe_record", "--out", str(tmp_path)])
    after = json.loads((tmp_path / "results.json").read_text())
    assert list(after["modules"]) == ["describe", "describe_record"]
    assert after["modules"]["describe"] == before["modules"]["describe"]  # kept as it was
    assert after["modules"]["describe_record"]["status"] == "ok"
    assert after["header"]["date"] == before["header"]["date"]
    merged = after["header"]["merged"]
    assert len(merged) == 1 and merged[0]["modules"] == ["describe_record"] and "--merge" in merged[0]["command"]
    report = (tmp_path / "RESULTS.md").read_text()
    assert "## describe: family scoring" in report and "## describe: against the record" in report
    assert "Rerun and merged later:** `describe_record`" in report
    # A second merge of the same module replaces its entry and adds a line to the header.
    run_all.main(["--tiny", "--merge", "--modules", "describe_record", "--out", str(tmp_path)])
    again = json.loads((tmp_path / "results.json").read_text())
    assert list(again["modules"]) == ["describe", "describe_record"] and len(again["header"]["merged"]) == 2


def test_merge_refuses_what_would_spoil_the_results(import_bench, tmp_path, capsys):
    run_all = import_bench("run_all")
    with pytest.raises(SystemExit, match="does not exist"):  # before any module runs
        run_all.main(["--tiny", "--merge", "--modules", "describe_record", "--out", str(tmp_path)])
    with pytest.raises(SystemExit):
        run_all.main(["--tiny", "--merge", "--modules", "describe_record"])  # --tiny without --out
    assert "--out" in capsys.readouterr().err
    full = {"header": {"tiny": False, "model": "SmolLM2"}, "modules": {"describe": {"status": "ok", "results": {}}}}
    (tmp_path / "results.json").write_text(json.dumps(full))
    with pytest.raises(SystemExit, match="do not mix"):
        run_all.main(["--tiny", "--merge", "--modules", "no_such_module", "--out", str(tmp_path)])
    (tmp_path / "results.json").write_text(json.dumps(dict(full, header=dict(full["header"], tiny=True))))
    with pytest.raises(SystemExit, match="nothing merged"):
        run_all.main(["--tiny", "--merge", "--modules", "no_such_module", "--out", str(tmp_path)])
    assert json.loads((tmp_path / "results.json").read_text())["modules"] == full["modules"]  # untouched
