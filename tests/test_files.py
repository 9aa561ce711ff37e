"""Output files: paths checked before any work, several outputs written all or nothing."""

from __future__ import annotations

import os

import pytest

from patternlang.errors import InputError
from patternlang.files import OutputFiles, check_writable, suffix_of, writing


def test_suffix_of_is_case_insensitive_and_names_the_choices():
    assert suffix_of("a/B.HTML", (".png", ".html"), "a heatmap") == ".html"
    with pytest.raises(InputError, match=r"unknown file type \(\.gif\)") as caught:
        suffix_of("h.gif", (".png", ".html"), "a heatmap")
    assert caught.value.hint == "use one of .png, .html"


def test_check_writable_accepts_new_files_in_new_directories(tmp_path):
    assert check_writable(tmp_path / "a" / "b" / "c.json") == tmp_path / "a" / "b" / "c.json"
    assert not (tmp_path / "a").exists()  # checking writes nothing
    (tmp_path / "old.json").write_text("{}")
    check_writable(tmp_path / "old.json")


def a_directory(tmp_path):
    (tmp_path / "d").mkdir()
    return tmp_path / "d"


def under_a_file(*parts):
    def make(tmp_path):
        (tmp_path / "f").write_text("")
        return tmp_path.joinpath("f", *parts)
    return make


@pytest.mark.parametrize("make, message", [
    (a_directory, "it is a directory"),
    (under_a_file("x.json"), "is a file, not a directory"),
    (under_a_file("deeper", "x.json"), "is a file, not a directory"),
    (lambda tmp_path: tmp_path / ("x" * 5000 + ".json"), "cannot write"),
])
def test_check_writable_refuses_what_cannot_be_written(tmp_path, make, message):
    with pytest.raises(InputError, match=message):
        check_writable(make(tmp_path))


def test_check_writable_refuses_read_only_places(tmp_path, monkeypatch):
    locked, frozen = tmp_path / "locked", tmp_path / "frozen.json"
    locked.mkdir()
    frozen.write_text("{}")
    # Permission bits do not bind root, so the answer of os.access is what is tested here.
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: False if str(path) in (str(locked), str(frozen))
                        else real_access(path, mode, **kw))
    with pytest.raises(InputError, match="is not writable"):
        check_writable(locked / "new" / "x.png")
    with pytest.raises(InputError, match="read-only"):
        check_writable(frozen)


def test_plan_checks_suffix_and_refuses_one_file_twice(tmp_path):
    outputs = OutputFiles()
    outputs.plan(tmp_path / "s.json", (".json",), "scores")
    with pytest.raises(InputError, match="unknown file type"):
        outputs.plan(tmp_path / "s.txt", (".json",), "scores")
    with pytest.raises(InputError, match="two outputs would both write"):
        outputs.plan(tmp_path / "x" / ".." / "s.json")
    assert outputs.paths == [tmp_path / "s.json"]


def test_staged_outputs_appear_together_and_replace_old_files(tmp_path):
    (tmp_path / "a.json").write_text("old")
    outputs = OutputFiles()
    targets = [outputs.plan(tmp_path / "a.json"), outputs.plan(tmp_path / "new dir" / "b.csv")]
    with outputs.staged() as temporary:
        for target in targets:
            temp = temporary(target)
            assert temp.parent == target.parent and temp.suffix == target.suffix and temp.name.startswith(".")
            temp.write_text("new " + target.name)
            assert not target.exists() or target.read_text() == "old"  # nothing in place before the end
    assert [t.read_text() for t in targets] == ["new a.json", "new b.csv"]
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.json", "b.csv", "new dir"]


@pytest.mark.parametrize("failure", [InputError("no space left"), KeyboardInterrupt(), RuntimeError("a bug")])
def test_a_failure_removes_every_temporary_and_new_directory(tmp_path, failure):
    (tmp_path / "kept").mkdir()
    (tmp_path / "a.json").write_text("old")
    outputs = OutputFiles()
    targets = [outputs.plan(tmp_path / "a.json"), outputs.plan(tmp_path / "kept" / "new" / "deeper" / "b.png")]
    with pytest.raises(type(failure)):
        with outputs.staged() as temporary:
            temporary(targets[0]).write_text("new")
            temporary(targets[1]).write_bytes(b"\x89PNG half")
            raise failure
    assert (tmp_path / "a.json").read_text() == "old"
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == ["a.json", "kept"]


def test_errors_name_the_file_the_user_asked_for(tmp_path):
    outputs = OutputFiles()
    target = outputs.plan(tmp_path / "h.png")
    with pytest.raises(InputError) as caught:
        with outputs.staged() as temporary:
            with writing(temporary(target)) as out:  # `writing` reports the OSError with the path it got
                out.write_text("half")
                raise OSError(28, "No space left on device")
    assert f"cannot write {str(target)!r}: No space left on device" in str(caught.value)
    assert ".partial" not in str(caught.value) and not any(tmp_path.iterdir())


def test_a_writer_that_writes_nothing_is_an_error(tmp_path):
    outputs = OutputFiles()
    target = outputs.plan(tmp_path / "s.json")
    with pytest.raises(InputError, match="nothing was written"):
        with outputs.staged() as temporary:
            temporary(target)
    assert not any(tmp_path.iterdir())
