"""Grants, identities and tokens as values; when ``serve`` makes its start token."""

from __future__ import annotations

import pytest

from sheetstream.access import ANONYMOUS, TOKEN_PREFIX, Grants, Identity, new_token, parse_duration, token_hash
from sheetstream.errors import ConfigError
from sheetstream.store.sqlite import SqliteStore
from sheetstream.tokens import start_token

from .helpers import add_token, make_settings


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


def test_the_start_token_is_made_whenever_no_live_admin_token_exists(tmp_path) -> None:
    """Other tokens do not count: after handing a colleague a read-only token, the one who runs the server still
    gets a way in; an expired or revoked admin token is no way in either."""
    store = SqliteStore(tmp_path / "db.sqlite")
    settings = make_settings(auth=True, data_dir=tmp_path / "data")
    assert start_token(settings, store)[1]  # an empty database
    add_token(store, "colleague", "orders:read")
    add_token(store, "loader", "*:read,append,upsert,replace")
    add_token(store, "old", "admin", expires_in=-1)
    add_token(store, "gone", "admin")
    store.tokens.revoke("gone")
    served, token = start_token(settings, store)
    assert token and token.startswith(TOKEN_PREFIX) and served.access.admin_token == token
    assert start_token(settings, store)[1] != token  # a new one each run
    add_token(store, "ops", "admin")
    assert start_token(settings, store) == (settings, None)
    empty = SqliteStore(tmp_path / "empty.sqlite")
    assert start_token(make_settings(auth=False), empty)[1] is None  # --no-auth: nobody signs in
    assert start_token(make_settings(auth=True, admin_token="sst_" + "x" * 43), empty)[1] is None  # configured
