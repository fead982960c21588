"""Configuration checks the JSON schema cannot phrase well: a misspelt key is refused in one line
that names its path and the closest known key, before the schema's own (long) messages; and
whether a run uses the built-in synthetic demo rather than the user's data."""

from __future__ import annotations

import difflib
import os
from importlib.resources import files
from pathlib import Path
from typing import Any, Mapping

import yaml


def _resources() -> Path:
    """sonoflow/resources/, the package data: the one copy of the defaults, the config schema and
    the study presets, which the workflow reads too (Snakefile, workflow/rules/common.smk)."""
    folder = files("sonoflow") / "resources"
    if not isinstance(folder, Path):  # e.g. a zipped install: snakemake's --configfile needs real files
        raise ImportError(f"sonoflow's package data is not a folder on disk ({folder!r}); install sonoflow unzipped")
    return folder


RESOURCES = _resources()
DEFAULT_CONFIG = RESOURCES / "config.yaml"
CONFIG_SCHEMA = RESOURCES / "config.schema.yaml"
PRESET_DIR = RESOURCES / "presets"

DEMO_NOTICE = ("BUILT-IN SYNTHETIC DEMO: neither `samples` nor `data` is set, so this run generates and uses "
               "fake data (results/demo/), not yours; give your sheet with --config samples=my_sheet.csv")


class ConfigKeyError(ValueError):
    pass


def load_schema(path: str | os.PathLike = CONFIG_SCHEMA) -> dict:
    return yaml.safe_load(Path(path).read_text())


def _resolve(schema: Mapping, root: Mapping) -> Mapping:
    while isinstance(schema, Mapping) and "$ref" in schema:
        node: Any = root
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def unknown_keys(config: Any, schema: Mapping, root: Mapping | None = None, path: str = "") -> list[tuple[str, list[str]]]:
    """Every key of ``config`` that ``schema`` does not know, at every level: (dotted path, the keys
    known at that place). An object with ``properties`` admits only those (unless its
    ``additionalProperties`` is a schema, which then checks the others); an object with only an
    ``additionalProperties`` schema (a free mapping, e.g. model -> weights file) admits any key."""
    root = schema if root is None else root
    schema = _resolve(schema, root)
    found: list[tuple[str, list[str]]] = []
    if isinstance(config, Mapping) and isinstance(schema, Mapping):
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, value in config.items():
            where = f"{path}.{key}" if path else str(key)
            if key in properties:
                found += unknown_keys(value, properties[key], root, where)
            elif isinstance(extra, Mapping):
                found += unknown_keys(value, extra, root, where)
            elif properties or extra is False:
                found.append((where, sorted(properties)))
    elif isinstance(config, list) and isinstance(schema, Mapping) and isinstance(schema.get("items"), Mapping):
        for index, value in enumerate(config):
            found += unknown_keys(value, schema["items"], root, f"{path}[{index}]")
    return found


def unknown_key_message(config: Mapping, schema: Mapping) -> str:
    """One line naming every unknown key with its closest known one ("" when there is none)."""
    parts = []
    for path, known in unknown_keys(config, schema):
        key = path.rsplit(".", 1)[-1]
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        where = path.rsplit(".", 1)[0] if "." in path else "the top level"
        hint = f"did you mean {path[:-len(key)]}{close[0]}?" if close else f"known keys at {where}: {', '.join(known)}"
        parts.append(f"unknown config key {path} ({hint})")
    return "; ".join(parts)


def check_config_keys(config: Mapping, schema: Mapping | None = None) -> None:
    """Raise ConfigKeyError with one line when ``config`` holds a key the schema does not know."""
    message = unknown_key_message(config, load_schema() if schema is None else schema)
    if message:
        raise ConfigKeyError(message)


def uses_demo(config: Mapping) -> bool:
    """True when neither a sample sheet nor a folder layout is given: the built-in demo runs."""
    data = config.get("data") or {}
    return not config.get("samples") and not (data if isinstance(data, str) else data.get("layout"))


def data_source(config: Mapping) -> dict:
    """What the run's data is, for the manifest and the report."""
    if uses_demo(config):
        return {"demo": True, "notice": DEMO_NOTICE}
    data = config.get("data") or {}
    source = config.get("samples") or (data if isinstance(data, str) else
                                       f"{data.get('layout')} layout at {data.get('folder') or data.get('csv')}")
    return {"demo": False, "source": source}
