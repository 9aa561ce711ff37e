"""Warm `load_model` time with no check of the weights cache, the sampled SHA-256 (the default) and
the full one, interleaved in one run (5 loads each):

    PYTHONPATH=. python bench/weights_check.py
"""

import os
import statistics
import time

from patternlang.models import clear_model_cache, load_model

NAMES = {"0": "no check", "1": "sampled SHA-256 (default)", "full": "full SHA-256"}


def main() -> None:
    load_model()  # warm (records the digests of an entry written before them)
    times: dict[str, list[float]] = {mode: [] for mode in NAMES}
    for _ in range(5):
        for mode in NAMES:
            os.environ["PATTERNLANG_CHECK_CACHE"] = mode
            clear_model_cache()
            started = time.perf_counter()
            load_model()
            times[mode].append(time.perf_counter() - started)
    for mode, seen in times.items():
        print(f"{NAMES[mode]:28s}", " ".join(f"{x:.2f}" for x in seen), f"median {statistics.median(seen):.2f} s")


if __name__ == "__main__":
    main()
