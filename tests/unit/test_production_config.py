"""The production guard, the start-up warnings and the settings this issue adds."""

from __future__ import annotations

import logging

import pytest

from service import create_app
from service.config import ConfigurationError, load_config, parse_api_keys

SQLITE = "sqlite://"
STRONG = "s" * 32


def test_production_refuses_to_start_without_api_keys_or_secret_key() -> None:
    with pytest.raises(ConfigurationError, match=r"without API_KEYS and SECRET_KEY"):
        load_config({"ENV": "production"})
    with pytest.raises(ConfigurationError, match=r"without API_KEYS; set them"):
        load_config({"ENV": "production", "SECRET_KEY": "s"})
    with pytest.raises(ConfigurationError, match=r"without SECRET_KEY; set them"):
        load_config({"ENV": "production", "API_KEYS": "key"})
    with pytest.raises(ConfigurationError, match=r"API_KEYS"):
        load_config({"ENV": "production", "SECRET_KEY": "s", "API_KEYS": " , ,"})


@pytest.mark.parametrize("env", ["Production", "prod", "staging", "PRODUCTION", "production "[:-1] + "\u200b"])
def test_an_env_it_does_not_know_is_refused_at_start(env: str) -> None:
    with pytest.raises(ConfigurationError, match=r"ENV must be development or production"):
        load_config({"ENV": env, "SECRET_KEY": STRONG, "API_KEYS": "k" * 32})


@pytest.mark.parametrize("secret_key", [" ", "x", "s" * 31, " " * 40, "s" * 31 + " "])
def test_production_needs_a_secret_key_of_32_characters(secret_key: str) -> None:
    with pytest.raises(ConfigurationError, match=r"SECRET_KEY of at least 32 characters"):
        load_config({"ENV": "production", "SECRET_KEY": secret_key, "API_KEYS": "k" * 32})
    assert load_config({"ENV": "production", "SECRET_KEY": STRONG, "API_KEYS": "k" * 32})["ENV"] == "production"


@pytest.mark.parametrize(
    "api_keys", ["Zq9secret,Zq9secret:ro", "Zq9secret:ro,Zq9secret", " Zq9secret , x, Zq9secret:ro "]
)
def test_a_key_listed_twice_with_different_rights_is_refused_without_echoing_it(api_keys: str) -> None:
    with pytest.raises(ConfigurationError, match=r"lists a key twice") as refused:
        load_config({"API_KEYS": api_keys})
    assert "Zq9" not in str(refused.value)


def test_a_key_listed_twice_with_the_same_rights_is_one_key() -> None:
    assert parse_api_keys("k,k, r:ro,r:ro") == {"k": True, "r": False}


def test_production_refuses_through_the_factory_too() -> None:
    with pytest.raises(ConfigurationError, match="API_KEYS"):
        create_app({"ENV": "production", "SECRET_KEY": "s", "DATABASE_URL": SQLITE})


def test_production_starts_with_both_and_says_nothing_about_them(caplog: pytest.LogCaptureFixture) -> None:
    writer, reader = "w" * 32, "r" * 32
    with caplog.at_level(logging.WARNING):
        app = create_app(
            {"ENV": "production", "SECRET_KEY": STRONG, "API_KEYS": f"{writer},{reader}:ro", "DATABASE_URL": SQLITE}
        )
    assert app.config["API_KEYS"] == {writer: True, reader: False}
    assert not [record for record in caplog.records if "API_KEYS" in record.getMessage()]
    assert not [record for record in caplog.records if "SECRET_KEY" in record.getMessage()]


def test_development_without_keys_warns_at_start_naming_api_keys(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        create_app({"DATABASE_URL": SQLITE})
    messages = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert any("API_KEYS is not set" in message for message in messages)
    assert any("SECRET_KEY is not set" in message for message in messages)


def test_a_short_key_is_accepted_with_a_warning_that_names_only_its_fingerprint(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        create_app({"DATABASE_URL": SQLITE, "SECRET_KEY": "s", "API_KEYS": "shortkey"})
    warnings = [record.getMessage() for record in caplog.records if "is short" in record.getMessage()]
    assert len(warnings) == 1
    assert "shortkey" not in warnings[0]


def test_api_keys_parse_read_write_and_read_only_keys() -> None:
    assert parse_api_keys(None) == {}
    assert parse_api_keys("") == {}
    assert parse_api_keys(" a , b:ro ,, c ") == {"a": True, "b": False, "c": True}


@pytest.mark.parametrize("value", ["100/second", "10 per minute", "5/minute;100/hour", "1/2 seconds"])
def test_rate_limit_accepts_the_usual_forms(value: str) -> None:
    assert load_config({"RATE_LIMIT": value})["RATE_LIMIT"] == value


@pytest.mark.parametrize("value", ["fast", "0/second", "-1/second", "100/fortnight", "100"])
def test_rate_limit_refuses_what_it_cannot_read(value: str) -> None:
    with pytest.raises(ConfigurationError, match="RATE_LIMIT"):
        load_config({"RATE_LIMIT": value})


def test_rate_limit_is_off_by_default() -> None:
    assert load_config({})["RATE_LIMIT"] is None
    assert load_config({"RATE_LIMIT": "  "})["RATE_LIMIT"] is None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("REDIS_TIMEOUT_MS", "0"),
        ("REDIS_RETRY_INTERVAL", "-1"),
        ("TRUSTED_PROXY_COUNT", "x"),
        ("LOG_LEVEL", "LOUD"),
        ("CACHE_MIN_READS", "0"),
        ("CACHE_MIN_READS", "101"),
    ],
)
def test_bad_operational_settings_are_refused_by_name(name: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        load_config({name: value})


def test_log_level_is_case_insensitive() -> None:
    assert load_config({"LOG_LEVEL": "debug"})["LOG_LEVEL"] == "DEBUG"
