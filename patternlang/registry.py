"""A registry: the named entries at one extension point.

Every extension point is one `Registry` instance, read live (nothing copies its entries at
import, so an entry registered later is seen everywhere):

| registry | where |
| --- | --- |
| features | `syntax/features.py` (`FEATURES`, `register_feature`) |
| measures (metadata, torch-free) | `measure_table.py` (`MEASURE_TABLE`); their torch implementations in `engine/measures.py` (`MEASURES`, `register_measure`) |
| model loaders | `models/registry.py` (`MODEL_LOADERS`, `register_model_loader(..., before=...)`: order matters) |
| probes | `probes/registry.py` (`PROBES`) |

The API, the same for each:

>>> from dataclasses import dataclass
>>> @dataclass(frozen=True)
... class Colour:
...     name: str
>>> colours = Registry[Colour]("colour")
>>> red = colours.register(Colour("red"))
>>> blue = colours.register(Colour("blue"), before="red")   # ordered insertion
>>> colours.names(), "red" in colours, len(colours)
(('blue', 'red'), True, 2)
>>> [c.name for c in colours.entries()] == list(colours)   # iteration: names, in order
True
>>> colours.get("rde")
Traceback (most recent call last):
  ...
patternlang.errors.UnknownNameError: error: unknown colour 'rde'; colours are blue, red
hint: did you mean 'red'?

`register` also works as a decorator (`@colours.register`, `@colours.register(before="red")`) on
anything with the key attribute (`name` unless the registry says otherwise: loaders use `source`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar, overload

from patternlang.errors import UnknownNameError, did_you_mean

Entry = TypeVar("Entry")


class Registry(Generic[Entry]):
    """Named entries of one kind, in registration order (or the order `before=` places them).

    `what` names one entry in messages ("measure", "model loader"); `key` is the attribute of an
    entry that holds its name.
    """

    def __init__(self, what: str, *, key: str = "name", plural: str | None = None):
        self.what = what
        self.key = key
        self.plural = plural or f"{what}s"
        self._entries: dict[str, Entry] = {}

    def name_of(self, entry: Entry) -> str:
        name = getattr(entry, self.key, None)
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.what} needs a non-empty string {self.key!r}, got {name!r}")
        return name

    @overload
    def register(self, entry: Entry, *, before: str | None = None) -> Entry: ...

    @overload
    def register(self, entry: None = None, *, before: str | None = None) -> Callable[[Entry], Entry]: ...

    def register(self, entry: Entry | None = None, *, before: str | None = None) -> Entry | Callable[[Entry], Entry]:
        """Add `entry` (last, or just before the entry called `before`) and return it.

        Without an entry, a decorator that registers what it decorates. Raises `ValueError` when
        an entry of that name is already registered or `before` names none.
        """
        if entry is None:
            return lambda decorated: self.register(decorated, before=before)
        name = self.name_of(entry)
        if name in self._entries:
            raise ValueError(f"{self.what} {name!r} is registered twice: a {self.what} called {name!r} "
                             f"is already registered")
        if before is None:
            self._entries[name] = entry
            return entry
        if before not in self._entries:
            raise ValueError(f"cannot register {name!r} before {before!r}: no {self.what.split()[-1]} has that "
                             f"name (registered: {', '.join(self._entries)})")
        items = list(self._entries.items())
        at = list(self._entries).index(before)
        items.insert(at, (name, entry))
        self._entries = dict(items)
        return entry

    def unregister(self, name: str) -> Entry:
        """Remove the entry called `name` and return it (for tests and plug-ins that replace one)."""
        self.get(name)
        return self._entries.pop(name)

    def get(self, name: str) -> Entry:
        """The entry called `name`; an unknown name raises `UnknownNameError` with a did-you-mean."""
        if isinstance(name, str) and name in self._entries:
            return self._entries[name]
        raise UnknownNameError(f"unknown {self.what} {name!r}; {self.plural} are " + ", ".join(self._entries),
                               hint=did_you_mean(str(name), self._entries))

    def __getitem__(self, name: str) -> Entry:
        return self._entries[name]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        """The names, in order."""
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def entries(self) -> tuple[Entry, ...]:
        return tuple(self._entries.values())

    def copy(self) -> Registry[Entry]:
        """A registry with the same entries (a test changes the copy, the original stays)."""
        twin: Registry[Entry] = Registry(self.what, key=self.key, plural=self.plural)
        twin._entries = dict(self._entries)
        return twin

    def __repr__(self) -> str:
        return f"Registry({self.what!r}: {', '.join(self._entries)})"
