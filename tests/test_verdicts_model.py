"""The issue's checks on the real embedded model (SmolLM2-135M): `attend last`, the negative name
mover ranked lowest first, `require` on the name movers, and the verdicts of known heads."""

from __future__ import annotations

import pytest

from patternlang.cli import main
from patternlang.engine import detect
from patternlang.heads import parse_head
from patternlang.probes import make_probe

pytestmark = pytest.mark.model


def _run(capsys, *args: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exited:
        main(list(args))
    return exited.value.code or 0, capsys.readouterr().out


def test_attend_last_marks_the_second_comma_only_in_the_row_of_figs(capsys):
    code, out = _run(capsys, "compile", 'attend last k where str[k] == ","', "--prompt",
                     "She bought apples, pears, and figs.")
    assert code == 0
    rows = [line for line in out.splitlines() if "figs" in line]
    assert len(rows) == 1
    cells = rows[0].split("figs", 1)[1].split()
    assert cells == ["·", "·", "·", "·", "·", "·", "█", "·", "·"]  # keys 0..8: the comma at 6 only


def test_negative_name_mover_lists_l24h4_first_and_name_movers_require_copying(embedded_model):
    scores = detect(embedded_model, make_probe("ioi", (), model=embedded_model),
                    ["negative_name_mover_head", "name_mover_head"])
    assert scores.top("negative_name_mover_head", 1)[0][0] == "L24H4"
    assert scores.ranks_lowest("negative_name_mover_head")
    failed = scores.requirement_failures("name_mover_head")
    assert bool(failed[24, 4]) and not bool(failed[23, 1])  # L24H4 lowers the name: no name mover
    best = [head for head, _ in scores.top("name_mover_head", 10) if not failed[parse_head(head)]]
    assert best[0] == "L23H1"


def test_verdicts_of_known_heads(embedded_model):
    scores = detect(embedded_model, make_probe("natural", (), model=embedded_model),
                    ["previous_token_head", "bos_head", "current_token_head"], measures=("mass", "sink", "offsink"))
    found = scores.verdict("L16H0")
    assert found.label == "previous_token_head" and found.sink_share < 0.5
