"""The command line: help, exit codes, JSON, and the compile/check/list commands."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import run


def test_help_and_usage_errors(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "compile" in out and "detect" in out
    code, _, err = run(capsys, "no-such-command")
    assert code == 2 and "No such command" in err
    code, _, err = run(capsys, "compile", "induction_head", "--tokens", "a b", "--bogus")
    assert code == 2


def test_compile_shows_a_grid_labelled_with_tokens(capsys):
    code, out, _ = run(capsys, "compile", "induction_head", "--tokens", "A B C A B C", "--show")
    assert code == 0
    lines = out.splitlines()
    row = next(line for line in lines if line.lstrip().startswith("4 B"))
    assert row.split()[2:] == ["·", "·", "█", "·", "·"]  # row 4 (the second B) attends to key 2 (C)


def test_compile_json_and_files(capsys, tmp_path):
    png, html = tmp_path / "m.png", tmp_path / "m.html"
    code, out, _ = run(capsys, "compile", "attend k where k == q - 1", "--tokens", "x y z", "--json",
                       "--out", str(png), "--out", str(html))
    assert code == 0
    data = json.loads(out)
    assert data["tokens"] == ["x", "y", "z"] and data["matrix"][2] == [0, 1, 0]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<table" in html.read_text()


def test_compile_pattern_from_a_file(capsys, tmp_path):
    path = tmp_path / "two.pattern"
    path.write_text("pattern a: attend k where k == 0\npattern b: attend k where k == q\n")
    code, out, _ = run(capsys, "compile", str(path), "--pattern", "b", "--tokens", "p q", "--json")
    assert code == 0 and json.loads(out)["matrix"] == [[1, 0], [0, 1]]


def test_user_errors_exit_1_with_a_caret(capsys):
    code, _, err = run(capsys, "compile", "attend k where tok[k] = tok[q]", "--tokens", "a b")
    assert code == 1
    assert "^" in err and "hint: compare with '=='" in err and "Traceback" not in err
    code, _, err = run(capsys, "compile", "induction_head")
    assert code == 1 and "--prompt" in err
    code, _, err = run(capsys, "compile", "nowhere.pattern", "--tokens", "a")
    assert code == 1 and "no such file" in err


def test_check_reports_every_problem(capsys, tmp_path):
    bad = tmp_path / "bad.pattern"
    bad.write_text(textwrap.dedent("""\
        pattern a: attend k where tok[k] < tok[q]
        pattern b: missing_head
        """))
    code, _, err = run(capsys, "check", str(bad))
    assert code == 1 and "2 problems found" in err and "bad.pattern:1:" in err and "bad.pattern:2:" in err
    code, out, _ = run(capsys, "check", str(bad), "--json")
    report = json.loads(out)
    assert code == 1 and not report["ok"] and {p["line"] for p in report["problems"]} == {1, 2}
    good = tmp_path / "good.pattern"
    good.write_text("pattern a: attend k where k == 0\n")
    code, out, _ = run(capsys, "check", str(good))
    assert code == 0 and "ok" in out


def test_list(capsys):
    code, out, _ = run(capsys, "list", "--json")
    names = [row["name"] for row in json.loads(out)]
    assert code == 0 and "induction_head" in names and "current_word_head" in names


def test_console_script_runs():
    result = subprocess.run([sys.executable, "-m", "patternlang.cli", "compile", "bos_head", "--tokens", "a b"],
                            capture_output=True, text=True)
    assert result.returncode == 0 and "bos_head" in result.stdout


@pytest.mark.model
def test_compile_a_prompt_with_the_embedded_tokenizer(capsys, tmp_path, monkeypatch):
    from patternlang import tokenization as tokenize

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    tokenize.default_tokenizer.cache_clear()
    code, out, err = run(capsys, "compile", "current_word_head", "--prompt", "The loquaciously multitoken", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["tokens"][0] == "<|im_start|>" and "".join(data["tokens"][1:]) == "The loquaciously multitoken"
    assert any(any(row) for row in data["matrix"])  # multi-token words mark earlier tokens of the word
    assert any(tmp_path.rglob("tokenizer_config.json")), "the tokenizer is cached for the next run"
    tokenize.default_tokenizer.cache_clear()
    assert tokenize.tokenize_prompt("The cat")[1] == ["<|im_start|>", "The", " cat"]  # read back from the cache
    tokenize.default_tokenizer.cache_clear()


# ---- compile: outputs checked first and written all or nothing; files in folders with spaces ------
@pytest.fixture
def no_tokenizer(monkeypatch):
    import patternlang.tokenization

    def no_loading(*args, **kwargs):
        raise AssertionError("nothing may be tokenized when an output path is wrong")

    monkeypatch.setattr(patternlang.tokenization, "tokenize_prompt", no_loading)


@pytest.mark.parametrize("name, message", [
    ("m.gif", "unknown file type (.gif)"), ("m", "unknown file type (no suffix)"), ("m.csv", "use one of .png"),
])
def test_compile_checks_out_suffixes_before_tokenizing(capsys, tmp_path, no_tokenizer, name, message):
    code, _, err = run(capsys, "compile", "bos_head", "--prompt", "a b", "--out", str(tmp_path / "ok.png"),
                       "--out", str(tmp_path / name))
    assert code == 1 and message in err and "Traceback" not in err
    assert not any(tmp_path.iterdir())


def test_compile_refuses_a_directory_as_out(capsys, tmp_path, no_tokenizer):
    code, _, err = run(capsys, "compile", "bos_head", "--prompt", "a b", "--out", str(tmp_path))
    assert code == 1 and "unknown file type" in err  # a directory has no suffix ...
    (tmp_path / "m.json").mkdir()
    code, _, err = run(capsys, "compile", "bos_head", "--prompt", "a b", "--out", str(tmp_path / "m.json"))
    assert code == 1 and "it is a directory" in err  # ... or is found out as one


def test_compile_writes_every_out_or_none(capsys, tmp_path, monkeypatch):
    import patternlang.report

    def broken(*args, **kwargs):
        raise patternlang.InputError("the disk is full")

    code, _, err = run(capsys, "compile", "bos_head", "--tokens", "a b", "--out", str(tmp_path / "m.json"),
                       "--out", str(tmp_path / "m.html"))
    assert code == 0 and sorted(p.name for p in tmp_path.iterdir()) == ["m.html", "m.json"], err
    for path in tmp_path.iterdir():
        path.unlink()
    real = patternlang.report.save_matrix
    monkeypatch.setattr(patternlang.report, "save_matrix",
                        lambda matrix, tokens, path, **kw: broken() if str(path).endswith(".html")
                        else real(matrix, tokens, path, **kw))
    code, _, err = run(capsys, "compile", "bos_head", "--tokens", "a b", "--out", str(tmp_path / "m.json"),
                       "--out", str(tmp_path / "m.html"))
    assert code == 1 and "the disk is full" in err
    assert not any(tmp_path.iterdir())  # m.json was written first, and is gone with the rest


def test_compile_a_pattern_file_in_a_directory_with_spaces(capsys, tmp_path):
    folder = tmp_path / "my patterns"
    folder.mkdir()
    path = folder / "two.pattern"
    path.write_text("pattern a: attend k where k == 0\npattern b: attend k where k == q\n")
    for args in ([str(path), "--pattern", "b"], [str(path), "-p", "b"], [f"{path}:b"]):
        code, out, err = run(capsys, "compile", *args, "--tokens", "p q", "--json")
        assert code == 0 and json.loads(out)["matrix"] == [[1, 0], [0, 1]], (args, err)
    code, _, err = run(capsys, "compile", str(path), "-p", "bb", "--tokens", "p q")
    assert code == 1 and "has no pattern 'bb'" in err and "did you mean 'b'" in err
    code, _, err = run(capsys, "compile", str(path), "--tokens", "p q")
    assert code == 1 and "holds 2 patterns" in err
    code, _, err = run(capsys, "compile", "bos_head", "-p", "b", "--tokens", "p q")
    assert code == 1 and "not a .pattern or YAML file" in err


def test_a_rule_that_mentions_a_pattern_file_stays_a_rule(capsys):
    code, out, err = run(capsys, "compile", 'attend k where str[k] == "x.pattern:b"', "--tokens", "x.pattern:b y",
                         "--json")
    assert code == 0 and json.loads(out)["matrix"][1] == [1, 0], err


def test_directories_as_patterns_say_so(capsys, tmp_path):
    folder = tmp_path / "my patterns"
    folder.mkdir()
    code, _, err = run(capsys, "compile", str(folder), "--tokens", "a")
    assert code == 1 and "is a directory, not a pattern file" in err
    code, _, err = run(capsys, "check", str(folder))
    assert code == 1 and "is a directory, not a pattern file" in err and "Traceback" not in err


def test_very_long_arguments_are_clear_errors(capsys, tmp_path):
    code, _, err = run(capsys, "compile", "x" * 5000 + ".pattern", "--tokens", "a")
    assert code == 1 and "Traceback" not in err
    code, _, err = run(capsys, "compile", "bos_head", "--tokens", "a", "--out", str(tmp_path / ("x" * 5000 + ".png")))
    assert code == 1 and "cannot write" in err and "Traceback" not in err


# ---- the quick exit of the console script (patternlang.cli.run) --------------------------------
def _run_script(tmp_path, body: str) -> subprocess.CompletedProcess:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(body))
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)


@pytest.mark.parametrize("args, code", [(["list", "--json"], 0), (["compile", "no_such_pattern", "--tokens", "a b"], 1),
                                        (["no-such-command"], 2), (["--help"], 0)])
def test_the_console_script_keeps_exit_codes_and_all_output(args, code):
    """`run` ends the process with os._exit after flushing: same codes and the same output as `main`."""
    quick = subprocess.run([sys.executable, "-m", "patternlang", *args], capture_output=True, text=True, timeout=120)
    plain = subprocess.run([sys.executable, "-c", f"from patternlang.cli import main; main({args!r})"],
                           capture_output=True, text=True, timeout=120)
    assert quick.returncode == plain.returncode == code
    assert quick.stdout == plain.stdout and quick.stdout.strip() or code != 0
    assert quick.stderr == plain.stderr


def test_the_quick_exit_runs_atexit_handlers_and_flushes_a_pipe(tmp_path):
    done = _run_script(tmp_path, """
        import atexit, pathlib, sys
        from patternlang.cli import run
        atexit.register(lambda: pathlib.Path("atexit-ran").write_text("yes"))
        sys.stdout.write("x" * 200_000)  # more than a pipe holds: still buffered when run ends
        run(["list", "--json"])
    """)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "atexit-ran").read_text() == "yes"
    assert done.stdout.startswith("x" * 200_000) and json.loads(done.stdout[200_000:])


def test_the_quick_exit_waits_for_other_threads(tmp_path):
    """A non-daemon thread still running (a user's plugin, a writer) gets the interpreter's usual wait."""
    done = _run_script(tmp_path, """
        import pathlib, threading, time
        from patternlang.cli import run
        def late():
            time.sleep(1.0)
            pathlib.Path("thread-finished").write_text("yes")
        threading.Thread(target=late).start()
        run(["list", "--json"])
    """)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "thread-finished").read_text() == "yes"


@pytest.mark.parametrize("code, status, message", [(None, 0, ""), (3, 3, ""), ("stopped: why", 1, "stopped: why")])
def test_exit_status_matches_sys_exit(code, status, message, capsys):
    from patternlang.cli import _exit_status

    assert _exit_status(code) == status
    assert capsys.readouterr().err.strip() == message
