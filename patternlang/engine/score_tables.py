"""`Scores` as flat records: one row per (pattern, measure, layer, head), for CSV and pandas."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

from patternlang.engine.score_records import finite_or_none
from patternlang.files import writing
from patternlang.heads import head_label

RECORD_FIELDS = ("pattern", "measure", "layer", "head", "label", "score", "ci_low", "ci_high", "baseline",
                 "n_rows", "n_prompts")


def score_records(scores: Any) -> list[dict[str, Any]]:
    """One dict per (pattern, measure, layer, head): pattern, measure, layer, head, label, score,
    its 95% interval (ci_low, ci_high), the pattern's chance baseline, n_rows and n_prompts
    (None where NaN or unknown)."""
    records = []
    for m in scores.measures:
        table = scores.values[m].tolist()
        lows = scores.ci_low[m].tolist() if scores.ci_low else None
        highs = scores.ci_high[m].tolist() if scores.ci_high else None
        for p, name in enumerate(scores.patterns):
            evidence = scores.evidence.get(name)
            shared = {
                "baseline": finite_or_none(evidence.baseline.get(m, math.nan)) if evidence else None,
                "n_rows": evidence.n_rows if evidence else None,
                "n_prompts": evidence.n_prompts if evidence else None,
            }
            for layer in range(scores.n_layers):
                for head in range(scores.n_heads):
                    records.append({
                        "pattern": name, "measure": m, "layer": layer, "head": head,
                        "label": head_label(layer, head), "score": finite_or_none(table[p][layer][head]),
                        "ci_low": finite_or_none(lows[p][layer][head]) if lows else None,
                        "ci_high": finite_or_none(highs[p][layer][head]) if highs else None,
                        **shared,
                    })
    return records

def write_csv(scores: Any, path: str | Path) -> None:
    """The records as CSV with a header row; NaN is an empty cell."""
    with writing(path) as target, open(target, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=RECORD_FIELDS)
        writer.writeheader()
        writer.writerows(score_records(scores))

def records_frame(scores: Any) -> Any:
    """The records as a pandas DataFrame (pandas is optional and imported only here)."""
    try:
        import pandas as pd
    except ImportError:
        raise ImportError("Scores.to_dataframe needs pandas: pip install pandas") from None
    frame = pd.DataFrame.from_records(score_records(scores), columns=list(RECORD_FIELDS))
    for column in ("score", "ci_low", "ci_high", "baseline"):
        frame[column] = frame[column].astype(float)
    return frame
