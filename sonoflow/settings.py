"""One base for the settings classes: a frozen dataclass built from its section of the config.

``Settings.from_config(section, **overrides)`` takes the section's keys that are fields, skips
null values (the field's default applies), turns lists into tuples for tuple-typed fields, builds
nested settings (``NESTED``: field -> settings class, e.g. ``augment``) and rejects any other key
with one error naming the keys and the section. Keys the workflow keeps in the same section but
that are not settings of the class (``train.models``, ``segment.gpu``) are declared in
``NOT_SETTINGS``: accepted and ignored by ``from_config``, and left out of the rule's params by
``params`` (so that changing one reruns no job of this stage).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Callable, ClassVar, Mapping


class Settings:
    """Mixin for ``@dataclass(frozen=True)`` settings classes of one config section."""

    SECTION: ClassVar[str] = ""  # the config section, for messages (e.g. "train")
    NOT_SETTINGS: ClassVar[frozenset[str]] = frozenset()  # keys of the section that are not settings of this class
    NESTED: ClassVar[Mapping[str, type[Settings]]] = {}  # field -> the settings class of its sub-mapping
    CASTS: ClassVar[Mapping[str, Callable]] = {}  # field -> conversion of a non-null value (e.g. int for --config strings)

    @classmethod
    def from_config(cls, config: Mapping | None = None, **overrides: Any):
        """The settings from the section ``config``; ``overrides`` (fields) win over it."""
        config = dict(config or {})
        names = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(config) - names - cls.NOT_SETTINGS)
        if unknown:
            raise ValueError(f"unknown {cls.SECTION or cls.__name__} setting(s): {', '.join(map(str, unknown))} "
                             f"(known: {', '.join(sorted(names))})")
        values = {key: value for key, value in config.items() if key in names and value is not None}
        values.update(overrides)
        tuples = _tuple_fields(cls)
        for key, value in values.items():
            if key in cls.NESTED and not isinstance(value, cls.NESTED[key]):
                values[key] = cls.NESTED[key].from_config(value)
            elif key in tuples and isinstance(value, (list, str)):
                values[key] = tuple([value] if isinstance(value, str) else value)
            elif key in cls.CASTS and value is not None:
                values[key] = cls.CASTS[key](value)
        return cls(**values)

    @classmethod
    def params(cls, config: Mapping) -> dict:
        """The section as a rule's params: without the keys that are not settings of this class."""
        return {key: value for key, value in config.items() if key not in cls.NOT_SETTINGS}


def _tuple_fields(cls: type) -> set[str]:
    """Fields annotated with a tuple type (``tuple[int, ...]``, ``tuple[float, ...] | None``)."""
    hints = typing.get_type_hints(cls)
    found = set()
    for field in dataclasses.fields(cls):
        hint = hints.get(field.name)
        options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
        if any(option is tuple or typing.get_origin(option) is tuple for option in options):
            found.add(field.name)
    return found
