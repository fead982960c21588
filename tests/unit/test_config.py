import pytest

from sonoflow.config import (DEMO_NOTICE, ConfigKeyError, check_config_keys, data_source, load_schema, unknown_key_message,
                             unknown_keys, uses_demo)
from sonoflow.presets import DEFAULT_CONFIG, load_yaml, merge, preset_config, preset_paths

SCHEMA = load_schema()


def test_the_default_config_and_every_preset_hold_only_known_keys():
    check_config_keys(load_yaml(DEFAULT_CONFIG), SCHEMA)
    for path in preset_paths():
        check_config_keys(preset_config(path), SCHEMA)


@pytest.mark.parametrize("change, line", [
    ({"sample": "/path/my_sheet.csv"}, "unknown config key sample (did you mean samples?)"),
    ({"trian": {"epochs": 3}}, "unknown config key trian (did you mean train?)"),
    ({"train": {"epoch": 3}}, "unknown config key train.epoch (did you mean train.epochs?)"),
    ({"segment": {"augment": {"hflp": 0.5}}}, "unknown config key segment.augment.hflp (did you mean segment.augment.hflip?)"),
    ({"denoise": {"gaussian": {"ksz": 3}}}, "unknown config key denoise.gaussian.ksz (did you mean denoise.gaussian.ksize?)"),
    ({"data": {"layuot": "busi"}}, "unknown config key data.layuot (did you mean data.layout?)"),
])
def test_a_misspelt_key_at_any_level_fails_in_one_line_with_the_closest_known_key(change, line):
    config = merge(load_yaml(DEFAULT_CONFIG), change)
    with pytest.raises(ConfigKeyError) as error:
        check_config_keys(config, SCHEMA)
    assert str(error.value) == line


def test_free_mappings_admit_any_key_and_every_offender_is_named():
    config = merge(load_yaml(DEFAULT_CONFIG), {"train": {"weights": {"resnet50": "w.pth"}, "init_from": {"vgg16": "x.pt"}},
                                                "data": {"columns": {"patient_id": "Case"}}})
    assert unknown_keys(config, SCHEMA) == []
    config["zzz"], config["split"]["fold"] = 1, 2
    message = unknown_key_message(config, SCHEMA)
    assert "\n" not in message
    assert "split.fold (did you mean split.folds?)" in message
    assert "zzz (known keys at the top level: audit, cam, data," in message


def test_demo_is_named_when_neither_samples_nor_data_is_given():
    config = load_yaml(DEFAULT_CONFIG)
    assert uses_demo(config) and data_source(config) == {"demo": True, "notice": DEMO_NOTICE}
    assert "SYNTHETIC DEMO" in DEMO_NOTICE
    assert data_source({**config, "samples": "my.csv"}) == {"demo": False, "source": "my.csv"}
    busi = merge(config, {"data": {"layout": "busi", "folder": "/d"}})
    assert not uses_demo(busi) and data_source(busi)["source"] == "busi layout at /d"
