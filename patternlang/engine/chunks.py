"""A prompt source read in chunks: a bounded number of this process's prompts at a time.

`detect` tokenizes, buckets and scores one chunk before it reads the next, so neither the
prompts, nor their tokens, nor the batch plan of a long stream ever sit in memory whole; the
running sums carry over from chunk to chunk (scores do not depend on how prompts are batched).
In a distributed run each process reads the whole source and keeps its own share (`Shard`).
For checkpoints the reader hashes every prompt it reads, so that a resumed run can prove it
reads the same prompts, and skips what the checkpoint says is done.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from patternlang.engine.checkpoint import prompt_digest_update, prompts_mismatch
from patternlang.errors import InputError

DEFAULT_CHUNK_PROMPTS = 4096
"""Prompts read, tokenized and planned at a time (per process)."""


@dataclass(slots=True)
class Chunk:
    """Some of this process's prompts: their global `indices` in the source, the prompts, their spans."""

    indices: list[int]
    items: list[Any]
    spans: list[Any]
    start: int  # prompts of the source read before this chunk's first one
    start_digest: str  # SHA-256 of those prompts ("" when not hashing)


@dataclass(slots=True)
class ChunkReader:
    """Reads `source` (an iterable of `(prompt, spans)`) in chunks of `size` prompts owned by `shard`.

    `resume_at` (prompts already read, their digest) and `skip` (global indices already scored)
    come from a checkpoint: the first `resume_at[0]` prompts are read and hashed only, and the
    digest compared, before anything is scored.
    """

    source: Any
    size: int = DEFAULT_CHUNK_PROMPTS
    shard: Any = None
    hashing: bool = False
    resume_at: tuple[int, str] | None = None
    skip: set[int] = field(default_factory=set)
    checkpoint_dir: Any = None
    position: int = 0  # prompts read so far (all processes' prompts)
    _digest: Any = None

    def digest(self) -> str:
        """SHA-256 of the prompts read so far ("" when not hashing)."""
        return self._digest.hexdigest() if self.hashing and self._digest is not None else ""

    def __iter__(self) -> Iterator[Chunk]:
        self._digest = hashlib.sha256()
        resume_position, resume_digest = self.resume_at or (0, "")
        verified = resume_position == 0
        entries = iter(self.source)
        exhausted = False
        while not exhausted:
            start, start_digest = self.position, self._digest.hexdigest() if self.hashing else ""
            indices: list[int] = []
            items: list[Any] = []
            spans: list[Any] = []
            while len(items) < self.size:
                try:
                    prompt, labelled = next(entries)
                except StopIteration:
                    exhausted = True
                    break
                index = self.position
                if self.hashing:
                    prompt_digest_update(self._digest, prompt, labelled)
                self.position += 1
                if not verified and self.position == resume_position:
                    if self._digest.hexdigest() != resume_digest:
                        raise prompts_mismatch(self.checkpoint_dir, resume_position, self.position)
                    verified = True
                    start, start_digest = self.position, self._digest.hexdigest()
                # `skip` stays whole: a save later in this chunk lists these as done again
                # (a run interrupted twice would otherwise score them twice).
                if index < resume_position or index in self.skip:
                    continue
                if self.shard is not None and not self.shard.owns(index):
                    continue
                indices.append(index)
                items.append(prompt)
                spans.append(labelled)
            if not verified:  # the source ended before the checkpoint's place in it
                raise prompts_mismatch(self.checkpoint_dir, resume_position, self.position)
            if items:
                yield Chunk(indices, items, spans, start, start_digest)


class StreamedPrompts:
    """The prompts of a streamed run, as a sequence that reads prompt i again from its source when
    asked (`Scores.show(pattern, head, i)`), instead of keeping them all."""

    def __init__(self, source: Any, length: int, part: int = 0):
        self.source, self.length, self.part = source, length, part  # part 1: each prompt's labelled spans

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> Any:
        if not isinstance(index, int) or not -self.length <= index < self.length:
            raise IndexError(index)
        index %= self.length
        if not getattr(self.source, "rereadable", True):
            raise InputError(f"prompt {index} came from an iterator, which cannot be read again",
                             hint="pass the prompt's text or token ids instead of its index")
        for position, entry in enumerate(self.source):
            if position == index:
                return entry[self.part]
        raise IndexError(index)
