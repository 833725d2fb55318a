from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from pathlib import Path

import pytest

from moksha.config import KEYS, Config, find_config_file, load_config
from moksha.errors import ConfigError


def write_ini(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def load(
    path: Path | None = None,
    overrides: Mapping[str, object] | None = None,
    environ: dict[str, str] | None = None,
) -> Config:
    """Load with nothing from the real environment or the real file system."""
    return load_config(path, overrides, environ=environ or {}, search=False)


def test_defaults_with_nothing_configured() -> None:
    config = load()
    assert config.amqp_broker is None
    assert config.amqp_exchange == "amq.topic"
    assert config.stomp_port == 61613
    assert config.zmq_enabled is False
    assert config.zmq_publish_endpoints == ()
    assert (config.zmq_strict, config.zmq_metadata_frame) == (False, False)  # as the original
    assert config.workers_per_consumer == 1
    assert config.shutdown_timeout == 5.0
    assert config.extras == {}
    assert config == load_config(environ={}, search=False)


def test_every_key_has_an_attribute_and_a_distinct_environment_variable() -> None:
    attrs = {f.name for f in dataclasses.fields(Config)} - {
        "extras",
        "_sources",
        "_misspelt_variables",
    }
    assert {key.attr for key in KEYS} == attrs
    assert len({key.env_var for key in KEYS}) == len(KEYS)
    by_name = {key.name: key.env_var for key in KEYS}
    assert by_name["amqp_broker"] == "MOKSHA_AMQP_BROKER"
    assert by_name["moksha.workers_per_consumer"] == "MOKSHA_WORKERS_PER_CONSUMER"
    assert by_name["moksha.livesocket.websocket.port"] == "MOKSHA_LIVESOCKET_WEBSOCKET_PORT"


def test_ini_reads_app_main_with_default_as_fallback(tmp_path: Path) -> None:
    ini = write_ini(
        tmp_path / "development.ini",
        """\
[DEFAULT]
amqp_exchange = from.default
stomp_port = 1000

[app:main]
stomp_port = 2000
zmq_enabled = true
""",
    )
    config = load(ini)
    assert config.amqp_exchange == "from.default"
    assert config.stomp_port == 2000
    assert config.zmq_enabled is True


def test_ini_uses_moksha_section_when_there_is_no_app_main(tmp_path: Path) -> None:
    ini = write_ini(tmp_path / "hub.ini", "[moksha]\nmoksha.max_retries = 7\n")
    assert load(ini).max_retries == 7


def test_ini_interpolates_here_and_file(tmp_path: Path) -> None:
    ini = write_ini(
        tmp_path / "development.ini",
        """\
[app:main]
stomp_ssl_key = %(here)s/certs/client.key
my.plugin.config = %(__file__)s
""",
    )
    config = load(ini)
    assert config.stomp_ssl_key == f"{tmp_path}/certs/client.key"
    assert config["my.plugin.config"] == str(ini)
    assert "here" not in config


def test_precedence_is_file_then_environment_then_code(tmp_path: Path) -> None:
    ini = write_ini(tmp_path / "development.ini", "[app:main]\nmoksha.workers_per_consumer = 2\n")
    environ = {"MOKSHA_WORKERS_PER_CONSUMER": "3"}
    assert load(ini).workers_per_consumer == 2
    assert load(ini, environ=environ).workers_per_consumer == 3
    config = load(ini, {"moksha.workers_per_consumer": 4}, environ=environ)
    assert config.workers_per_consumer == 4
    assert config.source("moksha.workers_per_consumer") == "code"


def test_source_names_where_each_value_came_from(tmp_path: Path) -> None:
    ini = write_ini(tmp_path / "development.ini", "[app:main]\nstomp_port = 1234\nmine = x\n")
    config = load(ini, {"zmq_enabled": "yes"}, environ={"MOKSHA_STOMP_USER": "bob"})
    assert config.source("stomp_port") == str(ini)
    assert config.source("mine") == str(ini)
    assert config.source("stomp_user") == "environment MOKSHA_STOMP_USER"
    assert config.source("zmq_enabled") == "code"
    assert config.source("amqp_exchange") == "default"
    with pytest.raises(KeyError):
        config.source("never.set")


@pytest.mark.parametrize(
    ("spelling", "expected"),
    [
        ("true", True),
        ("True", True),
        ("YES", True),
        ("on", True),
        ("1", True),
        (True, True),
        ("false", False),
        ("False", False),
        ("no", False),
        ("OFF", False),
        ("0", False),
        (False, False),
    ],
)
def test_every_boolean_spelling(spelling: str | bool, expected: bool) -> None:
    assert load(overrides={"zmq_strict": spelling}).zmq_strict is expected
    if isinstance(spelling, str):
        assert load(environ={"MOKSHA_ZMQ_STRICT": spelling}).zmq_strict is expected


def test_a_bad_boolean_says_what_is_accepted() -> None:
    with pytest.raises(ConfigError, match=r"zmq_enabled \(from code\): expected true or false"):
        load(overrides={"zmq_enabled": "maybe"})


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("tcp://a:1,tcp://b:2", ("tcp://a:1", "tcp://b:2")),
        ("tcp://a:1, tcp://b:2", ("tcp://a:1", "tcp://b:2")),
        ("tcp://a:1\n  tcp://b:2", ("tcp://a:1", "tcp://b:2")),
        ("", ()),
        (["tcp://a:1"], ("tcp://a:1",)),
        (("tcp://a:1", "tcp://b:2"), ("tcp://a:1", "tcp://b:2")),
    ],
)
def test_list_parsing(raw: object, expected: tuple[str, ...]) -> None:
    assert load(overrides={"zmq_subscribe_endpoints": raw}).zmq_subscribe_endpoints == expected


def test_optional_text_left_empty_means_unset() -> None:
    config = load(environ={"MOKSHA_AMQP_BROKER": ""})
    assert config.amqp_broker is None
    assert "amqp_broker" not in config


def test_typed_and_string_overrides_are_validated_alike() -> None:
    assert load(overrides={"stomp_port": 61614}).stomp_port == 61614
    assert load(overrides={"stomp_port": "61614"}).stomp_port == 61614
    assert load(overrides={"moksha.shutdown_timeout": "2.5"}).shutdown_timeout == 2.5
    for bad in (0, "0", 70000, True, "61613.5"):
        with pytest.raises(ConfigError, match="from 1 to 65535"):
            load(overrides={"stomp_port": bad})


def test_a_bad_int_from_a_file_names_the_key_and_the_file(tmp_path: Path) -> None:
    ini = write_ini(tmp_path / "production.ini", "[app:main]\nmoksha.workers_per_consumer = many\n")
    with pytest.raises(ConfigError) as caught:
        load(ini)
    assert str(caught.value) == (
        f"moksha.workers_per_consumer (from {ini}): expected a whole number >= 1, got 'many'."
    )
    assert caught.value.key == "moksha.workers_per_consumer"
    assert caught.value.source == str(ini)


def test_a_bad_value_from_the_environment_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="environment MOKSHA_STOMP_ACK_MODE") as caught:
        load(environ={"MOKSHA_STOMP_ACK_MODE": "sometimes"})
    assert "'auto', 'client-individual'" in str(caught.value)


def test_unknown_environment_variables_are_ignored() -> None:
    config = load(environ={"MOKSHA_NOT_A_KEY": "1", "MOKSHA_CONFIG": "/nowhere.ini"})
    assert config == load()


def test_unknown_keys_are_kept_as_raw_values(tmp_path: Path) -> None:
    ini = write_ini(tmp_path / "development.ini", "[app:main]\nmy.plugin.interval = 30\n")
    config = load(ini, {"other.plugin": [1, 2]})
    assert config.get("my.plugin.interval") == "30"
    assert config.get("other.plugin") == [1, 2]
    assert config.get("missing.key", "fallback") == "fallback"
    assert dict(config.extras) == {"my.plugin.interval": "30", "other.plugin": [1, 2]}


def test_config_is_a_read_only_mapping_of_original_key_names() -> None:
    config = load(overrides={"amqp_broker": "amqp://localhost/", "my.key": "v"})
    assert config["amqp_broker"] == "amqp://localhost/"
    assert config.get("moksha.workers_per_consumer") == 1
    assert config.get("zmq_publish_endpoints") == ()
    assert "zmq_enabled" in config
    assert "stomp_user" not in config
    assert config.get("stomp_user", "guest") == "guest"
    assert "my.key" in config
    assert list(config) == [k for k in (key.name for key in KEYS) if k in config] + ["my.key"]
    assert len(config) == len(list(config))
    with pytest.raises(TypeError):
        config["zmq_enabled"] = True  # type: ignore[index]


def test_config_is_frozen() -> None:
    config = load()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.zmq_enabled = True  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.extras["new"] = 1  # type: ignore[index]


def test_with_overrides_returns_a_new_validated_config(tmp_path: Path) -> None:
    ini = write_ini(tmp_path / "development.ini", "[app:main]\nstomp_port = 1234\nmine = x\n")
    config = load(ini)
    changed = config.with_overrides({"zmq_enabled": "on", "theirs": "y"})
    assert (changed.zmq_enabled, config.zmq_enabled) == (True, False)
    assert changed.source("zmq_enabled") == "code"
    assert changed.source("stomp_port") == str(ini)
    assert dict(changed.extras) == {"mine": "x", "theirs": "y"}
    with pytest.raises(ConfigError, match=r"moksha\.max_retries"):
        config.with_overrides({"moksha.max_retries": -1})


def test_repr_and_redacted_hide_secrets() -> None:
    config = load(
        overrides={
            "stomp_pass": "hunter2",
            "amqp_broker": "amqp://guest:s3cret@broker.example/",
            "my.plugin.password": "opensesame",
        }
    )
    for shown in (repr(config), str(config.redacted())):
        assert "hunter2" not in shown
        assert "s3cret" not in shown
        assert "opensesame" not in shown
    assert config.redacted()["amqp_broker"] == "amqp://guest:***@broker.example/"
    assert config.redacted()["stomp_pass"] == "***"
    assert config.stomp_pass == "hunter2"


def test_redacted_masks_the_original_user_slash_password_broker_form() -> None:
    config = load(overrides={"amqp_broker": "guest/s3cret@localhost:5672"})
    assert config.redacted()["amqp_broker"] == "guest/***@localhost:5672"


def test_missing_explicit_path_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.ini"
    message = f"the config file {missing} does not exist"
    with pytest.raises(ConfigError, match=re.escape(message)):
        load(missing)


def test_missing_file_named_by_moksha_config_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.ini"
    with pytest.raises(ConfigError, match="MOKSHA_CONFIG"):
        load_config(environ={"MOKSHA_CONFIG": str(missing)})


def test_unparseable_ini_names_the_file(tmp_path: Path) -> None:
    ini = write_ini(tmp_path / "development.ini", "no section header here\n")
    with pytest.raises(ConfigError, match=re.escape(f"config file {ini} cannot be parsed")):
        load(ini)


def test_find_config_file_order(tmp_path: Path) -> None:
    if Path("/etc/moksha").exists():
        pytest.skip("/etc/moksha exists on this machine")
    assert find_config_file(tmp_path, environ={}) is None
    production = write_ini(tmp_path / "production.ini", "[app:main]\n")
    assert find_config_file(tmp_path, environ={}) == production
    development = write_ini(tmp_path / "development.ini", "[app:main]\n")
    assert find_config_file(tmp_path, environ={}) == development
    chosen = write_ini(tmp_path / "chosen.ini", "[app:main]\n")
    assert find_config_file(tmp_path, environ={"MOKSHA_CONFIG": str(chosen)}) == chosen


def test_load_config_uses_the_file_moksha_config_names(tmp_path: Path) -> None:
    chosen = write_ini(tmp_path / "chosen.ini", "[app:main]\nzmq_enabled = yes\n")
    assert load_config(environ={"MOKSHA_CONFIG": str(chosen)}).zmq_enabled is True


def test_misspelt_zmq_published_endpoints_is_accepted(tmp_path: Path) -> None:
    ini = write_ini(
        tmp_path / "development.ini", "[app:main]\nzmq_published_endpoints = tcp://*:1\n"
    )
    config = load(ini)
    assert config.zmq_publish_endpoints == ("tcp://*:1",)
    assert "zmq_published_endpoints" not in config.extras
    both = {"zmq_published_endpoints": "tcp://old:1", "zmq_publish_endpoints": "tcp://new:1"}
    assert load(overrides=both).zmq_publish_endpoints == ("tcp://new:1",)


def test_coerce(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no development.ini here; coerce reads the real environment
    for name in [name for name in os.environ if name.startswith("MOKSHA_")]:
        monkeypatch.delenv(name)
    config = load()
    assert Config.coerce(config) is config
    coerced = Config.coerce({"zmq_enabled": False, "moksha.workers_per_consumer": "2"})
    assert coerced.zmq_enabled is False
    assert coerced.workers_per_consumer == 2
    with pytest.raises(TypeError, match="mapping"):
        Config.coerce(42)  # type: ignore[arg-type]


# -- misspelt keys and lines without a separator ------------------------------


@pytest.mark.parametrize(
    ("written", "meant"),
    [
        ("amqp_brokr", "amqp_broker"),
        ("moksha.worker_per_consumer", "moksha.workers_per_consumer"),
        ("moksha.livesocket.websocket.prot", "moksha.livesocket.websocket.port"),
        ("moksha.livesocket.histroy.size", "moksha.livesocket.history.size"),
        ("feed.url", "feed.urls"),
        ("stomp_usr", "stomp_user"),
    ],
)
def test_a_key_close_to_a_known_one_gets_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, written: str, meant: str
) -> None:
    ini = write_ini(tmp_path / "development.ini", f"[app:main]\n{written} = 1\nmyapp.key = 2\n")
    config = load(ini)
    [warning] = [record for record in caplog.records if record.levelname == "WARNING"]
    assert f"unknown key {written!r} in {ini}: did you mean {meant!r}?" in warning.getMessage()
    [misspelling] = config.misspellings()
    assert (misspelling.key, misspelling.source, misspelling.meant) == (written, str(ini), meant)
    assert config.get(written) == "1"  # still kept, in case a plugin reads it


@pytest.mark.parametrize(
    "key",
    [
        "myapp.database_url",
        "moksha.auth.allow.app.billing",
        "moksha.app_db.inventory.url",
        "sqlalchemy.url",
        "debug",
        "weather_alerts.topic",
    ],
)
def test_plugin_keys_and_key_families_are_not_taken_for_typos(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, key: str
) -> None:
    ini = write_ini(tmp_path / "development.ini", f"[app:main]\n{key} = x\n")
    assert load(ini).misspellings() == []
    assert not [record for record in caplog.records if record.levelname == "WARNING"]


def test_a_misspelt_environment_variable_gets_a_warning_naming_the_right_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    environ = {"MOKSHA_AMQP_BROKR": "amqp://x", "MOKSHA_HUB_URL": "http://x", "HOME": "/"}
    config = load_config(environ=environ, search=False)
    assert config.amqp_broker is None  # the variable set nothing: say so
    [misspelling] = config.misspellings()
    assert (misspelling.key, misspelling.meant) == ("MOKSHA_AMQP_BROKR", "MOKSHA_AMQP_BROKER")
    [warning] = [record for record in caplog.records if record.levelname == "WARNING"]
    assert warning.getMessage() == (
        "unknown environment variable MOKSHA_AMQP_BROKR: did you mean MOKSHA_AMQP_BROKER? "
        "Moksha ignores it; rename it"
    )


def test_a_misspelt_key_in_code_names_code_as_its_source() -> None:
    [misspelling] = load(overrides={"amqp_brokr": "amqp://x"}).misspellings()
    assert misspelling.source == "code"


@pytest.mark.parametrize(
    ("line", "fix"),
    [
        ("amqp_broker amqp://127.0.0.1/", "write 'amqp_broker = amqp://127.0.0.1/'"),
        ("moksha.workers_per_consumer", "write 'moksha.workers_per_consumer = VALUE'"),
    ],
)
def test_a_line_without_separator_is_an_error_naming_the_line(
    tmp_path: Path, line: str, fix: str
) -> None:
    ini = write_ini(tmp_path / "development.ini", f"[app:main]\n# broker\n{line}\n")
    with pytest.raises(ConfigError) as raised:
        load(ini)
    message = str(raised.value)
    assert f"config file {ini}, line 3: {line!r} has no '='" in message
    assert fix in message


def test_other_sections_and_continuation_lines_are_left_alone(tmp_path: Path) -> None:
    ini = write_ini(
        tmp_path / "development.ini",
        "[server:main]\nuse egg:waitress\n[app:main]\nfeed.urls = https://a.example/feed\n"
        "    https://b.example/feed\nmoksha.workers_per_consumer: 2\n",
    )
    config = load(ini)
    assert config.feed_urls == ("https://a.example/feed", "https://b.example/feed")
    assert config.workers_per_consumer == 2


def test_the_spelling_examples_hold() -> None:
    import doctest

    import moksha.config.spelling

    assert doctest.testmod(moksha.config.spelling).failed == 0
