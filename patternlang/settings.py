"""Per-pattern settings that the scoring engine uses."""

from __future__ import annotations

from dataclasses import dataclass
EXCLUSIONS: tuple[str, ...] = ("bos", "current")
RANK_ORDERS: tuple[str, ...] = ("highest", "lowest")


@dataclass(frozen=True, slots=True)
class Requirement:
    """`require copying > 0`: a head is a candidate only where `measure op value` holds (same prompts)."""

    measure: str
    op: str
    value: float

    def holds(self, score: float) -> bool:
        """Whether a score meets the requirement (an undefined, NaN, score never does)."""
        if score != score:
            return False
        return {"==": score == self.value, "!=": score != self.value, "<": score < self.value,
                "<=": score <= self.value, ">": score > self.value, ">=": score >= self.value}[self.op]

    def __str__(self) -> str:
        return f"{self.measure} {self.op} {self.value:g}"


@dataclass(frozen=True, slots=True)
class ProbeSpec:
    """A prompt set by name, with its arguments: `probe repeated_random(length=64)`."""

    name: str
    args: tuple[tuple[str, int | float | str], ...] = ()

    def kwargs(self) -> dict[str, int | float | str]:
        return dict(self.args)

    def __str__(self) -> str:
        if not self.args:
            return self.name
        return f"{self.name}(" + ", ".join(f"{k}={v!r}" for k, v in self.args) + ")"


@dataclass(frozen=True, slots=True)
class Settings:
    measure: str | None = None
    exclude_bos: bool = False
    exclude_current: bool = False
    probe: ProbeSpec | None = None
    normalize: bool = False
    rank: str | None = None      # "lowest" or "highest"; None: the measure's own direction
    requires: tuple[Requirement, ...] = ()

    def __str__(self) -> str:
        """The settings as a pattern file writes them: `measure tv exclude bos probe natural`."""
        words = [f"measure {self.measure}"] if self.measure else []
        words += ["exclude bos"] * self.exclude_bos + ["exclude current"] * self.exclude_current
        words += [f"probe {self.probe}"] if self.probe else []
        words += ["normalize"] * self.normalize
        words += [f"rank {self.rank}"] if self.rank else []
        words += [f"require {r}" for r in self.requires]
        return " ".join(words)
