"""Grants, identities and tokens as values."""

from __future__ import annotations

import pytest

from sheetstream.access import ANONYMOUS, TOKEN_PREFIX, Grants, Identity, new_token, parse_duration, token_hash
from sheetstream.errors import ConfigError


def test_grants_allow_what_they_name_and_replace_only_on_its_own() -> None:
    grants = Grants.parse("orders:read,append,upsert customers:read")
    assert grants.on("orders") == ["read", "append", "upsert"] and grants.on("customers") == ["read"]
    assert not grants.allows("orders", "replace") and grants.on("other") == []
    assert Grants.parse(grants.to_text()) == grants
    assert Grants.parse("*:read").on("anything") == ["read"]
    assert Grants.parse("admin").on("x") == ["read", "append", "upsert", "replace"]
    with pytest.raises(ConfigError, match="'orders:delete' is not TABLE:PERMISSION"):
        Grants.parse("orders:delete")


def test_identities_own_jobs_by_key() -> None:
    alice = Identity("token", "alice", Grants.parse("orders:read"))
    assert alice.key == "token:alice" and not alice.ambient and alice.can_see("token:alice")
    assert not alice.can_see("user:alice") and not alice.can_see(None)
    assert Identity("session", "alice", alice.grants).key == "token:alice"  # the token's jobs, through the page
    assert ANONYMOUS.admin and ANONYMOUS.ambient


def test_tokens_are_random_prefixed_and_stored_as_hashes() -> None:
    one, two = new_token(), new_token()
    assert one != two and one.startswith(TOKEN_PREFIX) and len(one) > 40
    assert token_hash(one) != one and len(token_hash(one)) == 64 and token_hash(one) == token_hash(one)


def test_durations() -> None:
    assert parse_duration("30d") == 30 * 86400 and parse_duration("12h") == 43200 and parse_duration("90s") == 90
    with pytest.raises(ConfigError, match="such as 30d"):
        parse_duration("soon")
