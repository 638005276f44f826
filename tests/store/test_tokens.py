"""Tokens and the audit trail in SQLite and PostgreSQL alike: hashes only, one live token per name, revocation,
expiry, and audit records that come back newest first."""

from __future__ import annotations

import time
import uuid

import pytest

from sheetstream.access import Grants, new_token, token_hash
from sheetstream.errors import Conflict
from sheetstream.store import TokenRecord, open_store


def test_a_token_is_kept_as_its_hash_and_found_by_it(store_url: str) -> None:
    tokens = open_store(store_url).tokens
    name, token = f"alice-{uuid.uuid4().hex[:6]}", new_token()
    tokens.add(TokenRecord.new(name, token_hash(token), Grants.parse("orders:read,append")))
    found = tokens.find(token_hash(token))
    assert found is not None and found.name == name and found.live
    assert found.parsed_grants.on("orders") == ["read", "append"] and not found.parsed_grants.admin
    assert all(token not in repr(r) for r in tokens.all())  # nowhere in what is stored
    assert tokens.get(found.id) == found and tokens.find(token_hash(new_token())) is None


def test_one_live_token_per_name_and_revocation_frees_it(store_url: str) -> None:
    tokens = open_store(store_url).tokens
    name = f"ci-{uuid.uuid4().hex[:6]}"
    first, second = new_token(), new_token()
    tokens.add(TokenRecord.new(name, token_hash(first), Grants(admin=True)))
    with pytest.raises(Conflict, match="already exists"):
        tokens.add(TokenRecord.new(name, token_hash(second), Grants(admin=True)))
    assert tokens.revoke(name) and not tokens.revoke(name)
    assert not tokens.find(token_hash(first)).live
    tokens.add(TokenRecord.new(name, token_hash(second), Grants(admin=True)))
    assert tokens.find(token_hash(second)).live


def test_an_expired_token_is_not_live(store_url: str) -> None:
    tokens = open_store(store_url).tokens
    token = new_token()
    tokens.add(TokenRecord.new(f"short-{uuid.uuid4().hex[:6]}", token_hash(token), Grants(), expires_in=0.2))
    assert tokens.find(token_hash(token)).live
    time.sleep(0.3)
    assert not tokens.find(token_hash(token)).live


def test_audit_records_come_back_newest_first(store_url: str) -> None:
    audit = open_store(store_url).audit
    who = f"token:{uuid.uuid4().hex[:6]}"
    for i in range(3):
        audit.record({"at": time.time(), "who": who, "table": "orders", "mode": "append", "rows_written": i})
    assert [r["rows_written"] for r in audit.recent(10, who=who)] == [2, 1, 0]
    assert audit.recent(1)[0]["who"] == who
