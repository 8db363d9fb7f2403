"""app.security: argon2 password hashes, generated passwords, token hashes, signatures."""

from __future__ import annotations

import hashlib
import hmac
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from app import security
from app.security import (
    constant_time_equal,
    generate_password,
    hash_password,
    needs_rehash,
    new_token,
    sign,
    token_hash,
    verify_password,
)

ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
GROUP = f"[{ALPHABET}]{{5}}"
GENERATED = re.compile(rf"^{GROUP}-{GROUP}-{GROUP}-{GROUP}$")
PRODUCTION_PARAMETERS = "$argon2id$v=19$m=65536,t=3,p=4$"


@pytest.fixture(autouse=True)
def real_hasher() -> Iterator[None]:
    """The rest of the suite hashes with the cheap parameters (tests/conftest.py); these tests
    are of hashing itself, so they use the real ones."""
    security.use_cheap_hasher_for_tests(False)
    yield
    security.use_cheap_hasher_for_tests(True)


def test_passwords_are_hashed_with_the_production_parameters() -> None:
    assert hash_password("a password").startswith(PRODUCTION_PARAMETERS)


def test_a_process_outside_pytest_hashes_with_the_production_parameters_and_cannot_switch(
    tmp_path: Path,
) -> None:
    # What a server does: build the app from its settings (whatever SMILEY_* says), hash, then
    # try the test-only switch.
    script = """
import os
os.environ["SMILEY_SECRET_KEY"] = "s" * 40
from app.main import create_app
from app.security import hash_password, use_cheap_hasher_for_tests
from app.settings import Settings
create_app(Settings(data_dir=os.environ["DATA"]))
print(hash_password("a password"))
try:
    use_cheap_hasher_for_tests()
except RuntimeError as error:
    print(error)
print(hash_password("a password"))
"""
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env={"DATA": str(tmp_path / "data"), "PATH": "/usr/bin:/bin"},
    )
    first, refusal, second = done.stdout.splitlines()
    assert first.startswith(PRODUCTION_PARAMETERS)
    assert refusal == "the cheap password hasher is for the test suite only"
    assert second.startswith(PRODUCTION_PARAMETERS)


def test_argon2_hash_verifies_the_right_password_only() -> None:
    hashed = hash_password("correct horse battery")
    assert hashed.startswith("$argon2id$")
    assert "correct horse battery" not in hashed
    assert verify_password(hashed, "correct horse battery") is True
    assert verify_password(hashed, "correct horse batterY") is False
    assert verify_password(hashed, "") is False


def test_same_password_hashes_differently_each_time() -> None:
    first, second = hash_password("same password"), hash_password("same password")
    assert first != second
    assert verify_password(first, "same password") is True
    assert verify_password(second, "same password") is True


def test_verify_without_a_hash_is_false() -> None:
    # No user: still runs a full verification against a dummy hash, and still says no.
    assert verify_password(None, "anything") is False
    assert verify_password(None, "") is False


def test_verify_against_a_malformed_hash_is_false() -> None:
    assert verify_password("not-an-argon2-hash", "anything") is False


def test_needs_rehash_only_for_weaker_parameters() -> None:
    assert needs_rehash(hash_password("a password")) is False
    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash("a password")
    assert needs_rehash(weak) is True
    assert verify_password(weak, "a password") is True


def test_generate_password_is_four_groups_of_five_from_the_alphabet() -> None:
    passwords = [generate_password() for _ in range(200)]
    for password in passwords:
        assert GENERATED.match(password), password
        groups = password.split("-")
        assert [len(group) for group in groups] == [5, 5, 5, 5]
        assert len(password) == 23
    used = set("".join(passwords).replace("-", ""))
    assert used <= set(ALPHABET)
    # No look-alikes.
    assert used.isdisjoint("01ilo")
    assert len(set(passwords)) == 200


def test_token_hash_is_sha256_hex() -> None:
    assert token_hash("abc") == ("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    token = new_token()
    assert token_hash(token) == hashlib.sha256(token.encode()).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", token_hash(token))


def test_new_token_is_random_and_keeps_its_prefix() -> None:
    token = new_token("smy_")
    assert token.startswith("smy_")
    # 32 random bytes, URL-safe base64 without padding.
    assert re.fullmatch(r"smy_[A-Za-z0-9_-]{43}", token)
    assert new_token() != new_token()


def test_sign_is_hmac_sha256_and_comparison_is_exact() -> None:
    signature = sign("k" * 32, "value")
    expected = hmac.new(b"k" * 32, b"value", hashlib.sha256).hexdigest()
    assert signature == expected
    assert sign("k" * 32, "other") != signature
    assert sign("j" * 32, "value") != signature
    assert constant_time_equal(signature, expected) is True
    assert constant_time_equal(signature, expected[:-1]) is False
