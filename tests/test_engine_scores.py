"""`Scores`: lookup, ranking and every export form."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch

from patternlang.engine import Scores
from patternlang.errors import InputError


@pytest.fixture
def scores() -> Scores:
    mass = torch.tensor([[[0.1, 0.9, math.nan], [0.5, 0.2, 0.7]], [[0.0, 0.0, 0.3], [math.nan, 1.0, 0.4]]])
    tv = mass / 2
    return Scores(
        patterns=("induction_head", "bos_head"), measures=("mass", "tv"), values={"mass": mass, "tv": tv},
        model="tiny", n_prompts=4, n_tokens=40, n_layers=2, n_heads=3,
        settings={"batch_size": "auto", "heads": None, "exclusions": {"induction_head": {"bos": False}}},
    )


def test_get_and_top(scores):
    assert scores.get("induction_head").shape == (2, 3)
    torch.testing.assert_close(scores.get(1, "tv"), scores.values["tv"][1], equal_nan=True)
    assert scores.top("induction_head", k=2) == [("L0H1", pytest.approx(0.9)), ("L1H2", pytest.approx(0.7))]
    ranked = scores.top("bos_head", k=10)
    assert [label for label, _ in ranked] == ["L1H1", "L1H2", "L0H2", "L0H0", "L0H1"]  # NaN never ranked; ties stable
    assert scores.top("induction_head", k=1, measure="tv")[0] == ("L0H1", pytest.approx(0.45))


def test_lookup_errors_name_what_exists(scores):
    with pytest.raises(InputError, match="no scores for pattern 'nope'") as caught:
        scores.get("nope")
    assert "induction_head, bos_head" in str(caught.value)
    with pytest.raises(InputError, match="no scores for measure 'abs'"):
        scores.get("bos_head", "abs")
    with pytest.raises(InputError, match="pattern index 5"):
        scores.get(5)


def test_to_dict_and_json_shape(scores, tmp_path):
    data = scores.to_dict()
    assert data["model"] == "tiny" and data["measures"] == ["mass", "tv"]
    assert data["patterns"]["induction_head"]["scores"]["mass"][0][2] is None  # NaN -> null
    assert data["patterns"]["bos_head"]["scores"]["tv"][1][1] == pytest.approx(0.5)
    assert data["n_prompts"] == 4 and data["n_tokens"] == 40 and data["n_layers"] == 2 and data["n_heads"] == 3
    assert data["settings"]["batch_size"] == "auto"
    path = tmp_path / "scores.json"
    text = scores.to_json(path)
    assert json.loads(path.read_text()) == json.loads(text) == json.loads(json.dumps(data))
    back = Scores.from_json(path)
    assert back.patterns == scores.patterns and back.measures == scores.measures
    for m in scores.measures:
        torch.testing.assert_close(back.values[m], scores.values[m], equal_nan=True)


def test_records_csv_and_dataframe(scores, tmp_path):
    records = scores.to_records()
    assert len(records) == 2 * 2 * 2 * 3
    first = records[0]
    assert first == {"pattern": "induction_head", "measure": "mass", "layer": 0, "head": 0, "label": "L0H0",
                     "score": pytest.approx(0.1), "ci_low": None, "ci_high": None, "baseline": None,
                     "n_rows": None, "n_prompts": None}  # Scores built by hand carry no evidence
    assert records[2]["score"] is None
    path = tmp_path / "scores.csv"
    scores.to_csv(path)
    rows = list(csv.DictReader(path.open()))
    assert len(rows) == len(records) and rows[2]["score"] == "" and rows[1]["label"] == "L0H1"
    pandas = pytest.importorskip("pandas")
    frame = scores.to_dataframe()
    assert isinstance(frame, pandas.DataFrame) and len(frame) == len(records)
    assert frame["score"].isna().sum() == 4


def test_repr_is_short(scores):
    text = repr(scores)
    assert "2 patterns x 2 layers x 3 heads" in text and len(text) < 150


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="expected"):
        Scores(("a",), ("mass",), {"mass": torch.zeros(2, 2, 2)}, n_layers=2, n_heads=2)
