import math

import jsonschema
import pytest
from hypothesis import example, given, settings, strategies as st

from mnist_monitor.config import (MAX_TRAINING_BYTES, SHARED_KEYS, TOP_LEVEL_KEYS, ConfigError, TrainConfig,
                    estimate_training_bytes, form_settings, parse_kernels, parse_train_config, request_schema)


def test_defaults_are_the_two_reference_models():
    config = parse_train_config({})
    assert isinstance(config, TrainConfig)
    assert [m.kernels for m in config.models] == [(32, 64, 64, 64), (16, 32, 32, 32)]
    assert [m.name for m in config.models] == ["Model 1", "Model 2"]
    assert (config.epochs, config.optimizer, config.learning_rate, config.batch_size) == (3, "adam", 0.004, 128)
    assert (config.warmup, config.label_smoothing) == (0.3, 0.1)
    assert config.train_samples is None and config.precision == "auto" and config.lr_schedule == "onecycle"


def test_the_constant_schedule_is_called_constant_and_its_old_name_none_still_means_it():
    assert parse_train_config({"lr_schedule": "constant"}).lr_schedule == "constant"
    assert parse_train_config({"lr_schedule": "none"}).lr_schedule == "constant"  # config.json files from before
    assert form_settings()["choices"]["lr_schedule"] == ["constant", "onecycle"]  # the page offers the new word
    jsonschema.validate({"lr_schedule": "none"}, request_schema())


def test_model_entries_inherit_and_override_the_shared_settings():
    config = parse_train_config({"optimizer": "sgd", "learning_rate": 0.05, "batch_size": 64, "models": [
        {"kernels": [8, 8, 8, 8]},
        {"kernels": [4, 4, 4, 4], "optimizer": "adam", "learning_rate": 0.002, "batch_size": 32, "name": "tiny"}]})
    a, b = config.models
    assert (a.optimizer, a.learning_rate, a.batch_size, a.name) == ("sgd", 0.05, 64, "Model 1")
    assert (b.kernels, b.optimizer, b.learning_rate, b.batch_size, b.name) == ((4, 4, 4, 4), "adam", 0.002, 32, "tiny")


def test_config_round_trips_through_its_dict():
    config = parse_train_config({"epochs": 3, "train_samples": 100, "models": [{"kernels": [1, 2, 3, 4], "name": "a"}]})
    data = config.to_dict()
    assert data["models"][0]["kernels"] == [1, 2, 3, 4]
    assert parse_train_config(data) == config


BAD = [
    ({"epochs": 0}, "epochs"),
    ({"epochs": 101}, "epochs"),
    ({"epochs": 2.5}, "epochs"),
    ({"epochs": "10"}, "epochs"),
    ({"epochs": True}, "epochs"),
    ({"epochs": None}, "epochs"),
    ({"batch_size": 0}, "batch_size"),
    ({"batch_size": 4097}, "batch_size"),
    ({"learning_rate": 0}, "learning_rate"),
    ({"learning_rate": -1e-3}, "learning_rate"),
    ({"learning_rate": 10.5}, "learning_rate"),
    ({"learning_rate": float("nan")}, "learning_rate"),
    ({"learning_rate": float("inf")}, "learning_rate"),
    ({"learning_rate": "0.1"}, "learning_rate"),
    ({"optimizer": "Adam"}, "optimizer"),
    ({"optimizer": "lion"}, "optimizer"),
    ({"precision": "fp16"}, "precision"),
    ({"lr_schedule": "cosine"}, "lr_schedule"),
    ({"device": "tpu"}, "device"),
    ({"train_samples": 0}, "train_samples"),
    ({"train_samples": 55_001}, "train_samples"),
    ({"seed": -1}, "seed"),
    ({"bogus": 1}, "bogus"),
    ({"models": []}, "models"),
    ({"models": [{"kernels": [8, 8, 8, 8]}] * 5}, "models"),
    ({"models": {"kernels": [8, 8, 8, 8]}}, "models"),
    ({"models": [[8, 8, 8, 8]]}, "models[0]"),
    ({"models": [{}]}, "models[0].kernels"),
    ({"models": [{"kernels": [8, 8, 8]}]}, "models[0].kernels"),
    ({"models": [{"kernels": [8, 8, 8, 257]}]}, "models[0].kernels[3]"),
    ({"models": [{"kernels": [8, 0, 8, 8]}]}, "models[0].kernels[1]"),
    ({"models": [{"kernels": [8, 8.5, 8, 8]}]}, "models[0].kernels[1]"),
    ({"models": [{"kernels": "8,8,x,8"}]}, "models[0].kernels"),
    ({"models": [{"kernels": [8, 8, 8, 8], "dropout": 0.1}]}, "models[0].dropout"),
    ({"models": [{"kernels": [8, 8, 8, 8], "batch_size": 0}]}, "models[0].batch_size"),
    ({"models": [{"kernels": [8, 8, 8, 8], "learning_rate": 11}]}, "models[0].learning_rate"),
    ({"models": [{"kernels": [8, 8, 8, 8], "optimizer": "x"}]}, "models[0].optimizer"),
    ({"models": [{"kernels": [8, 8, 8, 8], "name": ""}]}, "models[0].name"),
    ({"models": [{"kernels": [8, 8, 8, 8], "name": "<script>"}]}, "models[0].name"),
    ({"models": [{"kernels": [8, 8, 8, 8], "name": "a"}, {"kernels": [8, 8, 8, 8], "name": "a"}]}, "models[1].name"),
    ({"models": [{"kernels": [256, 256, 256, 256], "batch_size": 4096}]}, "models[0].batch_size"),
    ({"models": [{"kernels": [8, 8, 8, 8], "color": 4}]}, "models[0].color"),
    ({"models": [{"kernels": [8, 8, 8, 8], "color": 1}, {"kernels": [8, 8, 8, 8], "color": 1, "name": "b"}]},
     "models[1].color"),
]


@pytest.mark.parametrize("body, field", BAD, ids=[f"{i}-{f}" for i, (_, f) in enumerate(BAD)])
def test_bad_values_name_their_field(body, field):
    with pytest.raises(ConfigError) as info:
        parse_train_config(body)
    assert info.value.field == field
    assert str(info.value).startswith(field + ":")


@pytest.mark.parametrize("body", [None, [], "epochs=1", 3])
def test_body_must_be_an_object(body):
    with pytest.raises(ConfigError) as info:
        parse_train_config(body)
    assert info.value.field == "body"


def test_memory_limit_admits_the_defaults_and_refuses_the_extreme():
    assert estimate_training_bytes((32, 64, 64, 64), 512) < MAX_TRAINING_BYTES / 4
    assert estimate_training_bytes((256,) * 4, 4096) > MAX_TRAINING_BYTES
    parse_train_config({"models": [{"kernels": [256] * 4, "batch_size": 128}]})  # large but fits


def test_kernels_are_a_list_in_json_and_comma_separated_only_in_text():
    from mnist_monitor.config import parse_kernels_text

    assert parse_kernels_text("32,64, 64 ,64") == (32, 64, 64, 64)
    assert parse_kernels([1, 2, 3, 4]) == (1, 2, 3, 4)
    with pytest.raises(ConfigError) as err:
        parse_train_config({"models": [{"kernels": "8,16,16,16"}]})  # a string is the wrong JSON type
    assert err.value.field == "models[0].kernels" and "list of 4 integers" in str(err.value)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12)
keys = st.sampled_from(["epochs", "optimizer", "learning_rate", "batch_size", "models", "train_samples",
                        "precision", "lr_schedule", "seed", "device", "extra"])
model_entries = st.fixed_dictionaries({"kernels": st.lists(st.integers(-2, 300), min_size=3, max_size=5)},
                                      optional={"batch_size": st.integers(-1, 5000), "learning_rate": json_values,
                                                "optimizer": st.sampled_from(["adam", "sgd", "x"]),
                                                "name": st.text(max_size=45)})
bodies = st.dictionaries(keys, json_values | st.lists(model_entries, max_size=5), max_size=6)


@settings(max_examples=100, deadline=None)
@given(bodies)
@pytest.mark.slow  # over 2 s on a 2-core CPU: the whole suite runs it
def test_validator_accepts_only_configs_inside_every_limit(body):
    try:
        config = parse_train_config(body)
    except ConfigError as exc:
        assert exc.field and exc.problem  # refused with a named field, never another exception
        return
    assert 1 <= config.epochs <= 100 and 1 <= config.batch_size <= 4096
    assert math.isfinite(config.learning_rate) and 0 < config.learning_rate <= 10
    assert 1 <= len(config.models) <= 4
    for m in config.models:
        assert len(m.kernels) == 4 and all(type(k) is int and 1 <= k <= 256 for k in m.kernels)
        assert 1 <= m.batch_size <= 4096 and 0 < m.learning_rate <= 10
        assert estimate_training_bytes(m.kernels, m.batch_size) <= MAX_TRAINING_BYTES
    assert config.train_samples is None or 1 <= config.train_samples <= 55_000


@pytest.mark.parametrize("key, bad", [("warmup", 0), ("warmup", 0.95), ("warmup", "0.3"), ("label_smoothing", -0.1),
                                      ("label_smoothing", 0.6), ("label_smoothing", True)])
def test_warmup_and_label_smoothing_are_checked(key, bad):
    with pytest.raises(ConfigError) as err:
        parse_train_config({key: bad})
    assert err.value.field == key


@pytest.mark.parametrize("name", ["x" * 40 + "\n", "Model 1\n", "a\nb"])
def test_a_name_with_a_newline_is_refused(name):
    with pytest.raises(ConfigError) as err:
        parse_train_config({"models": [{"kernels": [2, 2, 2, 2], "name": name}]})
    assert err.value.field == "models[0].name"


@pytest.mark.parametrize("text", ["٣,4,4,4", "²,4,4,4", "+4,4,4,4", "4,4,4," + "9" * 5000])
def test_kernels_as_text_take_ascii_digits_only(text):
    from mnist_monitor.config import parse_kernels_text

    with pytest.raises(ConfigError, match="4 comma-separated integers"):
        parse_kernels_text(text)


@settings(max_examples=200, deadline=None)
@given(bodies)
@example({})
@example({"models": [{"kernels": [4, 8, 8, 8], "name": "Modèle 1"}], "epochs": 2, "train_samples": None})
@example({"models": [{"kernels": [4, 8, 8, 8], "name": "a"}, {"kernels": [4, 8, 8, 8], "name": "A "}]})
@example({"epochs": 2.0})
@pytest.mark.slow  # over 2 s on a 2-core CPU: the whole suite runs it
def test_the_published_schema_and_the_validator_agree(body):
    """The start body's JSON Schema (in the OpenAPI document) refuses nothing the validator takes,
    and takes nothing the validator refuses except for the rules a schema cannot say."""
    valid_by_schema = jsonschema.Draft202012Validator(request_schema()).is_valid(body)
    try:
        parse_train_config(body)
    except ConfigError as exc:
        if valid_by_schema:
            assert ("duplicate model name" in exc.problem or "GiB per step" in exc.problem or "is taken by" in exc.problem
                    or "must be an integer" in exc.problem), exc  # 2.0 is an integer to JSON Schema
        return
    assert valid_by_schema


def test_the_schema_describes_every_config_field_with_its_default():
    properties = request_schema()["properties"]
    assert set(properties) == TOP_LEVEL_KEYS
    defaults = form_settings()["defaults"]
    assert {key: properties[key]["default"] for key in SHARED_KEYS} == {key: defaults[key] for key in SHARED_KEYS}
    assert properties["models"]["default"] == [{"kernels": m["kernels"]} for m in defaults["models"]]
    assert properties["models"]["items"]["required"] == ["kernels"]


def test_a_model_keeps_the_colour_it_was_given_and_the_others_take_the_free_ones():
    body = {"models": [{"kernels": [8, 8, 8, 8], "name": "Model 2", "color": 1},
                       {"kernels": [8, 8, 8, 8], "name": "new"}, {"kernels": [8, 8, 8, 8], "name": "Model 4", "color": 0}]}
    assert [m.color for m in parse_train_config(body).models] == [1, 2, 0]
    assert [m.color for m in parse_train_config({}).models] == [0, 1]  # none given: by position, as before
    again = parse_train_config(parse_train_config(body).to_dict())  # config.json says it
    assert [m.color for m in again.models] == [1, 2, 0]
