"""Password hashing (argon2) and random tokens stored only as hashes."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sys
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError


@dataclass(frozen=True)
class _Hashing:
    hasher: PasswordHasher
    # A valid hash of a random password: verifying against it when the user does not exist
    # keeps the answer time the same, so timing does not reveal which usernames exist.
    dummy_hash: str


def _hashing(hasher: PasswordHasher) -> _Hashing:
    return _Hashing(hasher, hasher.hash(secrets.token_urlsafe(16)))


# argon2-cffi's defaults (RFC 9106's second recommendation: t=3, m=64 MiB, p=4).
PRODUCTION = _hashing(PasswordHasher())
_current = PRODUCTION


def use_cheap_hasher_for_tests(cheap: bool = True) -> None:
    """Switch this process to argon2's cheapest parameters (t=1, m=8 KiB, p=1), or back.

    Only the test suite calls this: thousands of tests make users, and the real parameters cost
    about 0.2 s of CPU per hash. No setting or environment variable reaches it, and it refuses to
    run outside pytest, so a server can never hash with it; a cheap hash that somehow reached a
    real database is rehashed with the real parameters at the next login (`needs_rehash`)."""
    global _current
    if cheap and "pytest" not in sys.modules:
        raise RuntimeError("the cheap password hasher is for the test suite only")
    cheap_hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    _current = _hashing(cheap_hasher) if cheap else PRODUCTION


def hash_password(password: str) -> str:
    return _current.hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    hashing = _current
    try:
        verified = hashing.hasher.verify(password_hash or hashing.dummy_hash, password)
    except (VerificationError, InvalidHashError):
        return False
    return verified and password_hash is not None


def needs_rehash(password_hash: str) -> bool:
    return _current.hasher.check_needs_rehash(password_hash)


def new_token(prefix: str = "") -> str:
    return prefix + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def generate_password() -> str:
    """A password people can type: 4 groups of 5 characters without look-alikes."""
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
    return "-".join("".join(secrets.choice(alphabet) for _ in range(5)) for _ in range(4))


def sign(secret_key: str, value: str) -> str:
    return hmac.new(secret_key.encode(), value.encode(), hashlib.sha256).hexdigest()


def constant_time_equal(left: str, right: str) -> bool:
    return hmac.compare_digest(left.encode(), right.encode())
