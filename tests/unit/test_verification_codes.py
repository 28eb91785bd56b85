"""Codes and their keyed hashes, without a database."""

from __future__ import annotations

import re
import uuid
from collections import Counter
from datetime import timedelta

from service.keys import derived_key
from service.operations.verification import VerificationSettings, new_code

CONFIG = {"SECRET_KEY": "secret", "VERIFICATION_CODE_TTL": 600, "VERIFICATION_RESEND_COOLDOWN": 30}


def test_a_code_is_six_ascii_digits_with_leading_zeros_kept() -> None:
    codes = [new_code() for _ in range(2000)]
    assert all(re.fullmatch(r"[0-9]{6}", code) for code in codes)
    first_digits = Counter(code[0] for code in codes)
    assert set(first_digits) == set("0123456789")  # a leading zero is as likely as any digit


def test_settings_come_from_configuration() -> None:
    settings = VerificationSettings.from_config(CONFIG)
    assert settings.code_ttl == timedelta(seconds=600)
    assert settings.resend_cooldown == timedelta(seconds=30)
    assert settings.hash_key == derived_key("secret", "email-verification-code")


def test_the_hash_is_keyed_by_the_secret_and_bound_to_session_and_address() -> None:
    settings = VerificationSettings.from_config(CONFIG)
    session_uuid = uuid.uuid4()
    reference = settings.code_hash(session_uuid, "ada@example.com", "042917")
    assert re.fullmatch(r"[0-9a-f]{64}", reference)
    assert settings.code_hash(session_uuid, "ADA@example.com", "042917") == reference
    others = {
        VerificationSettings.from_config({**CONFIG, "SECRET_KEY": "other"}).code_hash(
            session_uuid, "ada@example.com", "042917"
        ),
        settings.code_hash(uuid.uuid4(), "ada@example.com", "042917"),
        settings.code_hash(session_uuid, "eve@example.com", "042917"),
        settings.code_hash(session_uuid, "ada@example.com", "042918"),
    }
    assert reference not in others
    assert len(others) == 4


def test_derived_keys_differ_by_purpose_and_secret() -> None:
    keys = {derived_key("a", "one"), derived_key("a", "two"), derived_key("b", "one")}
    assert len(keys) == 3
    assert all(len(key) == 32 for key in keys)
