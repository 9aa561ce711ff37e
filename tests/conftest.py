"""Shared fixtures and helpers: every test module takes what it shares from here (or from
`patternlang.testing`), never from another test module. The embedded model loads once per test
session (load_model caches it)."""

from __future__ import annotations

import importlib
import json
import random
import sys
from pathlib import Path

import pytest
import torch

from patternlang.cli import main
from patternlang.models import weights_cache

BENCH = Path(__file__).resolve().parents[1] / "bench"
REAL_MODEL_FIXTURES = {"embedded_model"}  # a test taking one of these loads a real model

# The `slow` tests, by file: each took over half a second (setup + call; `pytest --durations=0 -m "not model"`,
# 2 cores shared with other work) when this list was made: subprocesses and torchrun, the benchmarks
# at tiny size, the fuzz run, the hypothesis oracles (300 examples each), Chromium. `make test-fast`
# (-m "not model and not slow") leaves them out; `make test` runs them. Listed here rather than
# decorated, so the list is one place to keep; tests/test_architecture.py checks every name exists.
SLOW_FILES = {  # every test of these is slow: a module-scoped fixture runs for seconds, or each test does
    "test_bench_tiny.py", "test_bench_long_context.py", "test_bench_model_aware.py", "test_fuzz.py",
    "test_scale_distributed.py", "test_scale_checkpoint.py", "test_atlas.py", "test_attention_blocks.py",
}
SLOW_TESTS: dict[str, tuple[str, ...]] = {  # measured over 0.5 s each (setup + call), on 2 busy cores
    "test_architecture.py": (
        "test_the_cli_lists_and_checks_without_torch",
    ),
    "test_atlas.py": (
        "test_document_holds_scores_with_their_evidence",
        "test_gemma_is_claimed_by_its_short_name",
        "test_pages_in_chromium",
        "test_rerun_with_one_more_pattern_scores_only_it",
    ),
    "test_atlas_site.py": (
        "test_search_and_sorts_live_in_the_url_on_index_and_pattern_pages",
        "test_the_model_page_draws_a_signed_pattern_two_sided_without_chance",
        "test_the_model_page_view_lives_in_the_url",
        "test_the_script_strength_equals_the_python_one",
    ),
    "test_attention_blocks.py": (
        "test_a_bridge_with_processed_weights_is_refused",
        "test_blocks_equal_hook_pattern_in_bfloat16",
        "test_blocks_equal_hook_pattern_on_tiny_bridges",
        "test_capturing_in_a_loop_keeps_nothing_and_a_dropped_bridge_is_freed",
        "test_route_final_residual_equals_the_bridge",
        "test_route_logits_equal_the_bridge_logits",
        "test_softcapped_gemma_is_refused",
    ),
    "test_effects_atlas.py": (  # the module's atlas fixture builds an atlas with effects (about 6 s)
        "test_an_existing_document_gains_effects_without_scoring_its_patterns_again",
        "test_cli_adds_the_default_effects_to_an_existing_atlas",
        "test_the_document_records_what_was_measured_on_what",
        "test_the_model_page_maps_each_metric_and_says_its_probe",
        "test_verdicts_say_what_each_head_matters_for",
    ),
    "test_verdicts.py": (
        "test_detect_verdicts_with_effects_say_what_heads_matter_for",
    ),
    "test_attention_blocks_detect.py": (
        "test_detect_by_the_route_equals_hook_pattern_on_a_tiny_gemma3",
    ),
    "test_bench_engine.py": (
        "test_every_measure_matches_the_oracle_when_long_prompts_go_by_query_blocks",
    ),
    "test_bench_long_context.py": (
        "test_long_context_runs_tiny_and_renders_from_its_results",
        "test_the_capture_path_computes_every_block",
    ),
    "test_bench_model_aware.py": (
        "test_model_aware_runs_renders_its_results_and_writes_json",
    ),
    "test_bench_tiny.py": (
        "test_gpu_benchmark_says_it_needs_cuda",
        "test_gpu_script_runs_every_step_on_the_cpu",
        "test_run_all_announces_a_failing_module_and_keeps_the_others",
        "test_scaling_gives_every_curve_and_draws_the_plots",
        "test_vs_transformer_lens_checks_every_side_and_gives_each_the_same_repeats",
    ),
    "test_blocked.py": (
        "test_block_sums_equal_whole_sums_on_random_attention_and_patterns",
        "test_blocks_equal_hook_pattern_for_every_measure_and_exclusion",
        "test_blocks_equal_hook_pattern_for_fixed_tensors_and_per_prompt_functions",
        "test_blocks_equal_hook_pattern_on_a_subset_of_heads_and_larger_blocks",
        "test_padded_query_rows_are_never_read",
        "test_runs_needing_the_models_outputs_stay_on_hook_pattern",
        "test_the_memory_benchmark_runs_tiny_and_agrees_with_the_hook_pattern_path",
        "test_without_a_route_auto_falls_back_and_blocks_is_an_error_naming_why",
    ),
    "test_cli.py": (
        "test_compile_json_and_files",
        "test_console_script_runs",
        "test_the_console_script_keeps_exit_codes_and_all_output",
        "test_the_quick_exit_runs_atexit_handlers_and_flushes_a_pipe",
        "test_the_quick_exit_waits_for_other_threads",
    ),
    "test_cli_detect.py": (
        "test_all_outputs_are_written_together",
        "test_detect_writes_json_csv_and_heatmap",
        "test_pattern_files_in_a_directory_with_spaces",
        "test_survey_keeps_patterns_of_the_same_name_and_every_exclusion",
        "test_unreadable_prompt_files_exit_1_before_the_model_loads",
    ),
    "test_compare.py": (
        "test_compare_writes_json_and_difference_heatmaps",
        "test_public_functions_stay_functions_when_their_modules_are_imported_first",
    ),
    "test_compiler.py": (
        "test_program_equals_reference_on_padded_batches",
    ),
    "test_compiler_windows.py": (
        "test_windows_equal_the_full_rows_on_parser_features",
        "test_windows_equal_the_full_rows_on_random_rules",
        "test_windows_equal_the_full_rows_on_spans_and_predictions",
    ),
    "test_engine_detect.py": (
        "test_detect_matches_the_per_prompt_oracle",
        "test_engine_detect_is_the_function_after_its_submodule_is_imported",
        "test_public_functions_stay_functions_after_their_submodules_are_imported",
        "test_scores_do_not_depend_on_batching_or_order",
    ),
    "test_engine_measures.py": (
        "test_every_measure_matches_the_loop_oracle_with_padding",
        "test_measures_match_oracle_property",
    ),
    "test_engine_tl_compat.py": (
        "test_parity_with_transformerlens_on_a_fake_model",
    ),
    "test_evidence.py": (
        "test_intervals_equal_a_direct_computation_over_per_prompt_sums",
        "test_lift_is_the_measure_over_its_baseline_whatever_the_head",
        "test_the_baseline_is_the_uniform_head_of_the_definitions",
        "test_the_t_quantile_agrees_with_the_density",
    ),
    "test_explain.py": (
        "test_cli_show_prints_the_grids_and_writes_files",
        "test_explain_holds_the_real_attention_the_scored_matrix_and_detects_scores",
        "test_html_hover_script_fills_the_info_box",
        "test_png_has_the_two_panels",
        "test_scores_show_draws_a_scored_prompt_as_it_was_scored",
    ),
    "test_explain_model_aware.py": (
        "test_a_prediction_pattern_is_drawn_on_the_models_own_predictions",
        "test_a_span_pattern_is_drawn_on_the_prompts_labels",
        "test_cli_show_draws_a_labelled_prompt_of_a_jsonl_file",
        "test_copy_suppression_head_is_drawn_on_the_top_10_predictions",
        "test_scores_show_draws_a_labelled_prompt_with_its_own_labels",
        "test_the_atlas_draws_span_and_prediction_patterns_as_explain_does",
    ),
    "test_fuzz.py": (
        "test_corpus_command_line",
        "test_corpus_file",
        "test_generated_inputs",
        "test_mutations_of_valid_rules",
        "test_random_text",
        "test_random_token_soup",
    ),
    "test_library.py": (
        "test_hostile_yaml_is_a_quick_pattern_error",
    ),
    "test_model_engine.py": (
        "test_a_model_aware_pattern_still_costs_one_pass_per_batch_run_to_the_logits",
        "test_runs_without_model_aware_patterns_cost_exactly_one_stopped_pass_per_batch",
        "test_top_n_and_the_logit_lens_read_what_the_residual_stream_predicts",
    ),
    "test_model_features.py": (
        "test_program_equals_reference_on_random_predictions_and_spans",
    ),
    "test_models.py": (
        "test_a_mistyped_model_fails_before_torch_is_imported",
        "test_an_unreachable_hub_still_loads_a_model_from_the_local_cache",
        "test_collector_paused_restores_the_collector_and_still_frees_cycles",
        "test_hf_directory_cache",
        "test_hf_directory_loads_and_matches_hf_attention",
        "test_legacy_checkpoint_matches_hooked_transformer",
        "test_load_model_uses_a_registered_loader_and_records_quantisation",
        "test_misspelt_names_fail_fast_with_a_did_you_mean",
        "test_model_facts_are_cached_per_model_and_follow_changes",
        "test_model_facts_of_the_hand_set_model",
        "test_models_and_tokenize_import_without_transformers",
        "test_the_collector_is_paused_while_a_model_loads",
    ),
    "test_pipeline.py": (
        "test_a_chain_of_ten_thousand_references_gives_a_result",
        "test_a_deep_chain_of_shifts_is_a_clear_error_not_a_recursion_error",
        "test_sentence_feature_equals_its_reference",
        "test_unparse_reads_back_as_the_same_rule",
    ),
    "test_probes.py": (
        "test_blank_lines_are_skipped_fast_and_lines_keep_their_numbers",
    ),
    "test_report.py": (
        "test_heatmap_html_marks_missing_and_best_heads",
        "test_heatmap_png_with_all_nan_panel_and_signed_scores",
        "test_heatmap_png_with_nans",
        "test_matrix_png_of_40_tokens_is_large_enough_to_read",
        "test_matrix_png_thins_labels_for_long_prompts",
        "test_top_heads_table_lists_top_heads_with_every_measure",
        "test_top_heads_tables_fit_80_columns_without_cutting_a_number",
    ),
    "test_reprs.py": (
        "test_detect_stays_the_function_after_detect_head_is_used",
        "test_scores_heatmaps_stay_bounded_for_any_model_size",
        "test_scores_html_of_a_run_shows_evidence_and_intervals",
    ),
    "test_scale_checkpoint.py": (
        "test_a_checkpoint_of_another_run_is_refused",
        "test_a_checkpoint_saved_halfway_records_the_attention_path_and_a_resume_on_another_says_mixed",
        "test_a_killed_cli_run_resumes_to_the_uninterrupted_scores",
        "test_a_run_interrupted_twice_inside_one_chunk_counts_every_prompt_once",
        "test_an_interrupted_run_resumes_to_the_same_scores",
    ),
    "test_scale_distributed.py": (
        "test_a_failing_rank_fails_the_others_instead_of_hanging",
        "test_a_rank_whose_prompts_have_no_spans_still_scores_a_labelled_file",
        "test_torchrun_cli_two_processes",
        "test_two_ranks_give_the_single_process_scores",
    ),
    "test_scale_streaming.py": (
        "test_a_labelled_file_whose_first_chunk_has_no_spans_scores_like_the_whole_file",
        "test_a_span_pattern_on_a_streamed_file_without_spans_is_an_error",
        "test_a_streamed_file_scores_like_the_list",
        "test_chunks_and_batches_change_no_score",
        "test_detect_reads_at_most_a_chunk_ahead_of_what_it_scored",
        "test_state_dict_covers_every_sum_and_resumes_exactly",
        "test_streamed_bad_prompts_name_their_line_or_number",
    ),
    "test_syntax.py": (
        "test_checking_and_listing_never_import_spacy",
        "test_program_equals_reference_on_random_annotations",
        "test_spacy_alignment_on_hand_written_sentences",
    ),
    "test_testing.py": (
        "test_bench_and_tests_do_not_import_the_tests_folder",
        "test_importing_the_package_and_cli_leaves_testing_unloaded",
        "test_no_module_outside_testing_imports_it",
    ),
    "test_tiny_models.py": (
        "test_attention_mask_keeps_padding_keys_out",
        "test_every_head_matches_its_oracle",
        "test_head_kind_table",
        "test_hook_names_and_shapes",
        "test_induction_head_on_repeated_random_tokens",
        "test_induction_needs_the_previous_token_head",
        "test_previous_token_head_is_exact",
    ),
    "test_tl_parity.py": (
        "test_design_card_rule_is_the_induction_pattern",
        "test_shipped_patterns_equal_transformer_lens",
    ),
    "test_weights_cache.py": (
        "test_read_model_gives_what_from_pretrained_gives",
        "test_the_cache_is_used_on_the_second_load_and_rebuilt_when_the_file_changes",
    ),
}


def pytest_collection_modifyitems(config, items):
    """Markers by rule: a test taking the embedded model is a `model` test, whether or not it says so
    (so that `make test-fast` never loads a real model); a test in SLOW_TESTS is a `slow` one."""
    for item in items:
        if REAL_MODEL_FIXTURES & set(getattr(item, "fixturenames", ())) and not item.get_closest_marker("model"):
            item.add_marker(pytest.mark.model)
        name = getattr(item, "originalname", item.name)
        slow = item.path.name in SLOW_FILES or name in SLOW_TESTS.get(item.path.name, ())
        if slow and not item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.slow)


# ---- the CLI ----------------------------------------------------------------------------------
def run(capsys, *args: str) -> tuple[int, str, str]:
    """`patternlang ARGS...` in this process: (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exited:
        main(list(args))
    captured = capsys.readouterr()
    return exited.value.code or 0, captured.out, captured.err


def serve_instead_of_loading(monkeypatch, model) -> list:
    """The CLI gets `model` whenever it loads one; the returned list records each name asked for."""
    loads = []

    def load_model(name=None, **kwargs):
        loads.append(name)
        return model

    monkeypatch.setattr("patternlang.models.load_model", load_model)
    return loads


# ---- small TransformerLens legacy checkpoints on disk ------------------------------------------------
def tiny_tokenizer(vocab_size: int):
    from tokenizers import Tokenizer, models as tok_models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["<bos>", "<eos>", "<pad>", "<unk>"] + [f"w{i}" for i in range(vocab_size - 4)]
    backend = Tokenizer(tok_models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<bos>", eos_token="<eos>",
                                   pad_token="<pad>", unk_token="<unk>")


def legacy_config(**overrides) -> dict:
    config = dict(d_model=32, d_head=8, n_heads=4, n_layers=2, n_ctx=24, d_vocab=50, attn_only=True,
                  normalization_type=None, positional_embedding_type="standard", act_fn="relu")
    config.update(overrides)
    return config


def legacy_state_dict(cfg: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights under HookedTransformer's state-dict keys and shapes."""
    g = torch.Generator().manual_seed(seed)
    H, D, E, V, C = cfg["n_heads"], cfg["d_model"], cfg["d_head"], cfg["d_vocab"], cfg["n_ctx"]
    M = cfg.get("d_mlp", 4 * D)

    def r(*shape):
        return torch.randn(*shape, generator=g)

    rotary = cfg["positional_embedding_type"] == "rotary"
    state = {"embed.W_E": r(V, D)} if rotary else {"embed.W_E": r(V, D), "pos_embed.W_pos": r(C, D)}
    for layer in range(cfg["n_layers"]):
        a = f"blocks.{layer}.attn."
        state.update({a + "W_Q": r(H, D, E), a + "W_K": r(H, D, E), a + "W_V": r(H, D, E), a + "W_O": r(H, E, D) / 4,
                      a + "b_Q": r(H, E), a + "b_K": r(H, E), a + "b_V": r(H, E), a + "b_O": r(D),
                      a + "mask": torch.tril(torch.ones(C, C, dtype=torch.bool)), a + "IGNORE": torch.tensor(-1e5)})
        if rotary:  # buffers HookedTransformer saves; the loader recomputes them
            state.update({a + "rotary_sin": r(C, cfg["rotary_dim"]), a + "rotary_cos": r(C, cfg["rotary_dim"])})
        if cfg["normalization_type"] == "LN":
            state.update({f"blocks.{layer}.ln1.w": 1 + r(D) / 4, f"blocks.{layer}.ln1.b": r(D) / 4})
        if not cfg["attn_only"]:
            m = f"blocks.{layer}.mlp."
            state.update({m + "W_in": r(D, M) / 4, m + "b_in": r(M), m + "W_out": r(M, D) / 4, m + "b_out": r(D)})
            if cfg["normalization_type"] == "LN":
                state.update({f"blocks.{layer}.ln2.w": 1 + r(D) / 4, f"blocks.{layer}.ln2.b": r(D) / 4})
    if cfg["normalization_type"] == "LN":
        state.update({"ln_final.w": 1 + r(D) / 4, "ln_final.b": r(D) / 4})
    state["unembed.W_U"] = r(D, V)
    state["unembed.b_U"] = r(V)
    return state


def write_checkpoint(directory: Path, cfg: dict, state: dict, stem: str = "model") -> Path:
    torch.save(state, directory / f"{stem}.pt")
    (directory / f"{stem}.json").write_text(json.dumps(cfg))
    return directory / f"{stem}.pt"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """An ARENA-style attention-only 2-layer model.pt + model.json, with a word-level tokenizer."""
    directory = tmp_path_factory.mktemp("ckpt")
    cfg = legacy_config(positional_embedding_type="shortformer")
    tiny_tokenizer(cfg["d_vocab"]).save_pretrained(directory)
    return str(write_checkpoint(directory, cfg, legacy_state_dict(cfg)))


@pytest.fixture
def prompts(tmp_path):
    """A prompt file of the checkpoint's words (one blank line, which is skipped)."""
    path = tmp_path / "prompts.txt"
    path.write_text("w1 w2 w3 w1 w2 w3\nw5 w6 w7 w8 w5 w6 w7 w8\n\nw9 w9 w9\n")
    return str(path)


@pytest.fixture(scope="session")
def embedded_model():
    from patternlang.models import load_model

    return load_model()


@pytest.fixture(scope="session")
def import_bench():
    """`import_bench(name)`: the module `bench/name.py` (bench/ is on sys.path while the tests run)."""
    sys.path.insert(0, str(BENCH))
    try:
        yield importlib.import_module
    finally:
        sys.path.remove(str(BENCH))


@pytest.fixture(scope="module")
def tl_checkpoint(tmp_path_factory):
    """A TransformerLens legacy model.pt + model.json (2 layers) with a word-level tokenizer beside it."""
    directory = tmp_path_factory.mktemp("model")
    cfg = legacy_config()
    tiny_tokenizer(cfg["d_vocab"]).save_pretrained(directory)
    return str(write_checkpoint(directory, cfg, legacy_state_dict(cfg)))


@pytest.fixture
def no_model(monkeypatch):
    """`load_model` fails the test if called: for what must be refused before the model loads."""
    import patternlang.models

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the arguments were checked")

    monkeypatch.setattr(patternlang.models, "load_model", refuse)


# ---- streamed, checkpointed and distributed runs (test_scale_*) ---------------------------------------
SCALE_PATTERNS = ["previous_token_head", "induction_head", "attend k where tok[k] == tok[q] and k < q"]
SPAN_RULES = ['attend k where span[q] == "END" and span[k] == "IO"', "previous_token_head"]
LABELLED_TEXT = "abcabdcabfe"  # one token per character (the CharTokenizer)
LABELLED_SPANS = {"IO": [[1, 2]], "END": [[10, 11]]}


def texts(n: int, seed: int = 0) -> list[str]:
    """`n` short random texts over a few letters (the hand-set model's CharTokenizer)."""
    rng = random.Random(seed)
    return ["".join(rng.choice("abcdefg ") for _ in range(rng.randrange(2, 30))).strip() or "a" for _ in range(n)]


def word_prompts(n: int) -> str:
    """`n` lines of the legacy checkpoint's words (`w0` .. `w39`), as a prompt file's text."""
    rng = random.Random(5)
    return "".join(" ".join(f"w{rng.randrange(40)}" for _ in range(rng.randrange(3, 18))) + "\n" for _ in range(n))


def assert_same_scores(a, b, *, atol=1e-6):
    """Two `Scores` agree: values, intervals and evidence."""
    assert a.patterns == b.patterns and a.measures == b.measures and a.n_prompts == b.n_prompts
    for measure in a.measures:
        for grid in ("values", "ci_low", "ci_high"):
            torch.testing.assert_close(getattr(a, grid)[measure], getattr(b, grid)[measure], atol=atol, rtol=0,
                                       equal_nan=True)
    for name in a.patterns:
        ea, eb = a.evidence[name], b.evidence[name]
        assert (ea.n_rows, ea.n_prompts, ea.n_prompts_run) == (eb.n_rows, eb.n_prompts, eb.n_prompts_run)


# ---- the weights cache (test_weights_cache, test_security) ----
@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(weights_cache.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(weights_cache.SWITCH_ENV, raising=False)
    return tmp_path / "cache" / "weights"


@pytest.fixture
def tiny_gguf(tmp_path, monkeypatch, cache_dir):
    """A '.gguf' file whose de-quantising is a tiny random Llama (seeded by the file's bytes)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig

    from patternlang.models import loaders

    reads = []
    tiny_tokenizer(40).save_pretrained(tmp_path / "tokenizer")  # read back, it knows its name_or_path

    def read_gguf(path, dtype):
        reads.append(path.read_bytes())
        torch.manual_seed(len(reads))
        config = LlamaConfig(vocab_size=40, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                             tie_word_embeddings=True, bos_token_id=0, eos_token_id=1, pad_token_id=2)
        model = AutoModelForCausalLM.from_config(config, attn_implementation="eager", dtype=dtype)
        return model.eval(), AutoTokenizer.from_pretrained(tmp_path / "tokenizer")

    monkeypatch.setattr(loaders, "_read_gguf", read_gguf)
    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"version one")
    return gguf, reads


@pytest.fixture(scope="module")
def chromium():
    """A headless Chromium (tests/browser.py) for the atlas pages' scripts; the test is skipped
    where none is installed (test_payloads.py overrides this: there, a missing browser fails)."""
    browser = pytest.importorskip("browser", reason="tests/browser.py")
    if browser.find_chromium() is None:
        pytest.skip("no chromium (apt-get install chromium)")
    with browser.Browser() as running:
        yield running
