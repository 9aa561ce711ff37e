"""Head labels: one parser (`patternlang.heads`) for the engine's `heads=` and the report's labels."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from patternlang.errors import InputError
from patternlang.heads import head_label, heads_labels, parse_head, parse_heads


@pytest.mark.parametrize("text, pair", [
    ("L5H1", (5, 1)), ("l5h1", (5, 1)), ("5.1", (5, 1)), ("5:1", (5, 1)), (" L12H30 ", (12, 30)), ("0.0", (0, 0)),
])
def test_parse_head_reads_both_spellings(text, pair):
    assert parse_head(text) == pair


@pytest.mark.parametrize("text", ["", "L5", "H1", "5", "5.", "L5H", "LxH1", "5.1.2", "L-1H0", "5,1", "L5 H1x"])
def test_parse_head_rejects_near_misses(text):
    with pytest.raises(InputError, match="cannot read a head"):
        parse_head(text)


def test_parse_head_rejects_non_strings():
    with pytest.raises(InputError, match="cannot read a head"):
        parse_head(5)  # type: ignore[arg-type]


@given(st.integers(0, 10_000), st.integers(0, 10_000))
def test_label_and_parse_round_trip(layer, head):
    assert parse_head(head_label(layer, head)) == (layer, head)
    assert parse_head(f"{layer}.{head}") == (layer, head)


def test_engine_and_report_share_the_parser():
    import patternlang.engine as engine
    import patternlang.report.data as report_data
    import patternlang.report.text as report_text

    assert engine.parse_heads is parse_heads and engine.head_label is head_label
    assert report_data.parse_head is parse_head and report_text.parse_head is parse_head


def test_heads_labels_lists_every_chosen_head():
    chosen = parse_heads("L1H0, 0.2", n_layers=2, n_heads=3)
    assert heads_labels(chosen, 3) == ["L0H2", "L1H0"]
    assert heads_labels(parse_heads(None, 1, 2), 2) == ["L0H0", "L0H1"]


def test_a_layer_mapped_to_none_means_every_head_of_it_as_parse_heads_writes_it():
    from patternlang.errors import InputError
    from patternlang.heads import parse_heads

    assert parse_heads({0: None, 1: [2]}, 2, 4) == {0: None, 1: (2,)}
    assert parse_heads(parse_heads("L1H2", 2, 4), 2, 4) == {1: (2,)}  # its own result reads back
    with pytest.raises(InputError, match="layer 5 is out of range"):
        parse_heads({5: None}, 2, 4)
