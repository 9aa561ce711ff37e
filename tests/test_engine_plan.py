"""The engine as a plan (issue 18): options checked once, a reader chosen per chunk, interventions
as hooks on the pass, typed settings, and the shape of the code (module sizes, a short loop)."""

import ast
import inspect
import json
from pathlib import Path

import pytest
import torch

import patternlang
from patternlang.engine import detect
from patternlang.engine.detection import detect_with
from patternlang.engine.options import DetectOptions
from patternlang.engine.pattern_tensors import resolve_patterns
from patternlang.engine.plan import RunPlan
from patternlang.engine.readers import BlockReader, DeferredReader, GivenReader, HookedReader, Intervention
from patternlang.engine.run import score_chunk
from patternlang.engine.scores import RunSettings, Scores
from patternlang.errors import InputError
from patternlang.testing import make_hand_set_model

PROMPTS = ["abcabcabc", "the cat sat. the cat sat.", "xyzzy xyzzy"]
PACKAGE = Path(patternlang.__file__).parent


@pytest.fixture(scope="module")
def model():
    return make_hand_set_model()


class AllOnKeyZero:
    """Replaces head L0H0's attention: every query puts all of it on key 0."""

    name = "L0H0 attends to key 0"

    def __init__(self):
        self.calls = 0

    def fwd_hooks(self, tokens):
        def hook(pattern, hook=None):
            self.calls += 1
            pattern = pattern.clone()
            pattern[:, 0] = 0.0
            pattern[:, 0, :, 0] = 1.0
            return pattern

        return [("blocks.0.attn.hook_pattern", hook)]


def test_an_intervention_changes_what_is_read_and_scored(model):
    plain = detect(model, PROMPTS, ["bos_head", "previous_token_head"], progress=False)
    ablation = AllOnKeyZero()
    assert isinstance(ablation, Intervention)
    changed = detect_with(model, PROMPTS, ["bos_head", "previous_token_head"],
                          DetectOptions(progress=False, interventions=(ablation,)))
    assert ablation.calls >= 1
    assert changed.get("bos_head")[0, 0].item() == pytest.approx(1.0)
    assert plain.get("bos_head")[0, 0].item() < 0.5
    assert changed.get("previous_token_head")[0, 0].item() < plain.get("previous_token_head")[0, 0].item()
    # other heads of layer 0 are untouched
    assert torch.equal(changed.get("bos_head")[0, 1:], plain.get("bos_head")[0, 1:])


def test_an_intervention_reaches_the_deferred_pass_too(model):
    ablation = AllOnKeyZero()
    scores = detect_with(model, PROMPTS, ["bos_head"], DetectOptions(progress=False, measures="mass,copying",
                                                                      interventions=(ablation,)))
    assert ablation.calls >= 1 and scores.settings.attention["path"] == "hook_pattern"
    assert scores.get("bos_head", "mass")[0, 0].item() == pytest.approx(1.0)


def test_the_block_path_refuses_an_intervention(model):
    with pytest.raises(InputError, match="an intervention changes the forward pass"):
        detect_with(model, PROMPTS, ["bos_head"], DetectOptions(progress=False, attention="blocks",
                                                                 interventions=(AllOnKeyZero(),)))


def test_the_plan_chooses_one_reader_per_path(model):
    detectors = resolve_patterns(["bos_head"])
    assert isinstance(RunPlan.build(model, detectors, DetectOptions()).reader(10), HookedReader)
    assert isinstance(RunPlan.build(model, detectors, DetectOptions(measures="copying")).reader(10), DeferredReader)
    given = RunPlan.of(model, detectors, ("mass",), [RunPlan.build(model, detectors, DetectOptions()).exclusions[0]],
                       {0: None}, DetectOptions(), given=lambda layer: None)
    assert isinstance(given.reader(10), GivenReader)
    blocks = RunPlan.build(model, detectors, DetectOptions(attention=lambda *a: None))
    assert isinstance(blocks.reader(10), BlockReader)


@pytest.mark.parametrize("options, message", [
    (dict(measures="mass,mas"), "unknown measure 'mas'"),
    (dict(batch_size=0), "batch_size must be a positive integer"),
    (dict(chunk_size=True), "chunk_size must be a positive integer"),
    (dict(heads=""), "no heads chosen"),
])
def test_options_are_checked_once_when_made(options, message):
    with pytest.raises(InputError, match=message):
        DetectOptions(**options)


def test_options_normalise_measures_and_are_frozen():
    options = DetectOptions(measures="mass, tv mass")
    assert options.measures == ("mass", "tv")
    with pytest.raises(AttributeError):
        options.measures = ("abs",)


def test_settings_are_typed_and_write_the_same_json(model):
    scores = detect(model, PROMPTS, ["bos_head"], progress=False, heads="L0H0")
    settings = scores.settings
    assert isinstance(settings, RunSettings)
    assert settings.heads == ["L0H0"] and settings.batch_size == "auto" and settings.prepend_bos is True
    assert settings["attention"] == settings.attention and settings.attention["path"] == "hook_pattern"
    assert list(dict(settings)) == ["exclusions", "batch_size", "n_batches", "prepend_bos", "heads",
                                    "pattern_measures", "attention", "pattern_ranks", "pattern_requires",
                                    "positional_patterns", "positional_baselines"]
    data = json.loads(scores.to_json())
    assert data["settings"]["pattern_measures"] == {"bos_head": "mass"}
    again = Scores.from_dict(data)
    assert dict(again.settings) == data["settings"] and again.settings.heads == ["L0H0"]
    assert json.loads(again.to_json()) == data


def test_settings_keep_the_keys_of_a_file_this_version_does_not_know():
    settings = RunSettings.from_dict({"heads": None, "future_key": [1, 2]})
    assert dict(settings) == {"heads": None, "future_key": [1, 2]} and settings.extra == {"future_key": [1, 2]}


def _lines(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def test_the_batch_loop_is_one_short_function():
    source = inspect.getsource(score_chunk)
    assert len(source.splitlines()) < 80


def test_engine_modules_and_the_cli_stay_small():
    # No engine module over 400 lines (issue 18).
    large = {p.name: _lines(p) for p in (PACKAGE / "engine").glob("*.py") if _lines(p) > 400}
    assert not large, large
    assert _lines(PACKAGE / "cli.py") < 500


def test_the_accumulator_is_not_written_from_outside():
    """No engine module sets an attribute of an accumulator (its state is its own)."""
    for path in (PACKAGE / "engine").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.Assign, ast.AugAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name):
                        assert target.value.id != "accumulator", f"{path.name}:{node.lineno}"
