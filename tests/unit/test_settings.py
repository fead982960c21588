"""The settings base (sonoflow.settings) and which config keys become each rule's params."""

import copy
from dataclasses import dataclass, field

import pytest
import yaml

from sonoflow import denoise
from sonoflow.audit import AuditSettings
from sonoflow.cam import CamSettings
from sonoflow.config import DEFAULT_CONFIG
from sonoflow.dedup import DedupSettings
from sonoflow.demo import DemoSettings, make_demo
from sonoflow.evaluate import EvaluateSettings
from sonoflow.frames import IngestSettings
from sonoflow.plan import apply_plan
from sonoflow.presets import preset_config, preset_paths
from sonoflow.segment import SegmentSettings
from sonoflow.settings import Settings
from sonoflow.split import SplitSettings
from sonoflow.train import AugmentSettings, TrainSettings


@dataclass(frozen=True)
class Inner(Settings):
    SECTION = "outer.inner"

    depth: int = 1


@dataclass(frozen=True)
class Outer(Settings):
    SECTION = "outer"
    NOT_SETTINGS = frozenset({"threads"})
    NESTED = {"inner": Inner}
    CASTS = {"size": int}

    size: int = 8
    names: tuple[str, ...] = ("a",)
    prior: tuple[float, float] | None = None
    inner: Inner = field(default_factory=Inner)


def test_unknown_keys_are_one_error_naming_them_and_the_section():
    with pytest.raises(ValueError, match=r"unknown outer setting\(s\): sise, zzz \(known: inner, names, prior, size\)"):
        Outer.from_config({"sise": 3, "zzz": 1, "size": 4})
    with pytest.raises(ValueError, match=r"unknown outer.inner setting\(s\): deep"):
        Outer.from_config({"inner": {"deep": 2}})


def test_declared_non_settings_are_accepted_and_left_out_of_params():
    assert Outer.from_config({"threads": 4, "size": 2}) == Outer(size=2)
    assert Outer.params({"threads": 4, "size": 2}) == {"size": 2}


def test_lists_become_tuples_for_tuple_fields_and_nulls_keep_the_default():
    settings = Outer.from_config({"names": ["x", "y"], "prior": [0.5, 0.25], "size": None})
    assert settings.names == ("x", "y") and settings.prior == (0.5, 0.25) and settings.size == 8
    assert Outer.from_config({"names": "x"}).names == ("x",)
    assert Outer.from_config(None) == Outer() == Outer.from_config({})


def test_nested_settings_casts_and_overrides():
    settings = Outer.from_config({"inner": {"depth": 3}, "size": "16"}, names=("z",))
    assert settings == Outer(size=16, names=("z",), inner=Inner(depth=3))
    assert Outer.from_config({}, inner=Inner(depth=5)).inner == Inner(depth=5)  # an instance stays as given


def planned_config(config: dict) -> dict:
    config = copy.deepcopy(config)
    apply_plan(config, demo=True)
    return config


CONFIGS = {"default": yaml.safe_load(DEFAULT_CONFIG.read_text()),
           **{path.stem: preset_config(path) for path in preset_paths()}}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_every_section_as_the_workflow_passes_it_is_accepted(name):
    """The rules' params (workflow/rules/*.smk) read back by the scripts: no key is rejected."""
    config = planned_config(CONFIGS[name])
    IngestSettings.from_config(config["ingest"])
    SplitSettings.from_config(config["split"])
    DedupSettings.from_config(config["dedup"])
    AuditSettings.from_config(config["audit"])
    AuditSettings.from_config(AuditSettings.params(config["audit"], AuditSettings.DETECTOR_KEYS))
    AuditSettings.from_config(AuditSettings.params(config["audit"], AuditSettings.PROBE_KEYS))
    CamSettings.from_config(config["cam"])
    EvaluateSettings.from_config(EvaluateSettings.params(config["evaluate"]))
    EvaluateSettings.from_config(config["evaluate"])
    DemoSettings.from_config(config["demo"])
    config["segment"]["weights"] = None  # (the planned packaged weights are resolved by the script)
    SegmentSettings.from_config(SegmentSettings.params(config["segment"]))
    for model in config["train"]["models"]:
        for mode in config["train"]["inputs"]:
            settings = TrainSettings.from_config(TrainSettings.params(config["train"], model, mode), model=model)
            assert settings.input == mode and isinstance(settings.augment, AugmentSettings)
            assert settings.weights == config["train"]["weights"].get(model)


def test_train_params_hold_one_jobs_settings():
    section = {"models": ["a", "b"], "inputs": ["full"], "weights": {"a": "a.pt"}, "init_from": {"b": "run/best.pt"},
               "gpu": True, "threads": 4, "epochs": 3, "tta": ["hflip"]}
    assert TrainSettings.params(section, "a", "roi") == {"epochs": 3, "tta": ["hflip"], "weights": "a.pt",
                                                          "init_from": None, "input": "roi"}
    assert TrainSettings.params(section, "b", "full")["init_from"] == "run/best.pt"
    settings = TrainSettings.from_config(TrainSettings.params(section, "a", "roi"), model="a")
    assert (settings.model, settings.weights, settings.input, settings.tta) == ("a", "a.pt", "roi", ("hflip",))


def test_segment_params_leave_out_run_keys_and_check_the_decoder():
    section = {"enabled": True, "per_fold": "auto", "gpu": False, "threads": 2, "epochs": 4, "encoder_depth": 4,
               "decoder_channels": [64, 32, 16, 8]}
    assert SegmentSettings.params(section) == {"epochs": 4, "encoder_depth": 4, "decoder_channels": [64, 32, 16, 8]}
    with pytest.raises(ValueError, match="one entry per encoder stage"):
        SegmentSettings.params({**section, "decoder_channels": [64, 32]})


def test_evaluate_audit_and_denoise_params():
    assert EvaluateSettings.params({"readers": "calls.csv", "n_boot": 10}) == {"n_boot": 10}
    audit = yaml.safe_load(DEFAULT_CONFIG.read_text())["audit"]
    assert set(AuditSettings.params(audit, AuditSettings.DETECTOR_KEYS)) == set(AuditSettings.DETECTOR_KEYS)
    section = {"method": "median", "median": {"ksize": 3}, "gaussian": {"ksize": 5}}
    assert denoise.params(section) == {"method": "median", "median": {"ksize": 3}}
    assert denoise.params({"method": "none"}) == {"method": "none", "none": {}}


def test_the_demo_defaults_are_the_configs():
    assert DemoSettings.from_config(yaml.safe_load(DEFAULT_CONFIG.read_text())["demo"]) == DemoSettings()
    defaults = make_demo.__kwdefaults__
    assert (defaults["n_patients_per_class"], defaults["images_per_patient"], defaults["clips_per_patient"],
            defaults["frames_per_clip"], defaults["seed"]) == (
        DemoSettings.patients_per_class, DemoSettings.images_per_patient, DemoSettings.clips_per_patient,
        DemoSettings.frames_per_clip, DemoSettings.seed)
    with pytest.raises(ValueError, match="unknown demo setting"):
        DemoSettings.from_config({"patients": 3})
