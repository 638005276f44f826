"""``sheetstream token create|list|revoke``, and the admin token ``serve`` makes at start: the commands of the
service that manage access, working on the database directly (no server needed)."""

from __future__ import annotations

import argparse
import time

from .access import Grants, new_token, parse_duration, token_hash
from .config import Settings
from .errors import ConfigError
from .server.auth import START_NAME
from .store import Store, TokenRecord, open_store


def start_token(settings: Settings, store: Store) -> tuple[Settings, str | None]:
    """With auth on, no admin token configured, no proxy sign-on and no live admin token in the database: a fresh
    admin token for this run (kept in memory only: it ends when the server stops), the way Jupyter prints its
    URL. Other tokens do not count: after handing a colleague a read-only token, the one who runs the server
    still needs a way in. Returns the settings to serve with and the token to print (None when nothing was
    made)."""
    access = settings.access
    if not access.auth or access.admin_token or access.user_header:
        return settings, None
    if any(record.live and record.parsed_grants.admin for record in store.tokens.all()):
        return settings, None
    token = new_token()
    return settings.with_(admin_token=token), token


def create(args: argparse.Namespace, settings: Settings) -> int:
    if args.name == START_NAME:
        raise ConfigError(f"the name {START_NAME!r} is the start token's; choose another")
    if not args.grant and not args.admin:
        raise ConfigError("give the token grants (--grant orders:read,append) or --admin")
    grants = Grants.parse([*args.grant, *(["admin"] if args.admin else [])])
    expires = parse_duration(args.expires) if args.expires else None
    token = new_token()
    store = open_store(settings.database)
    store.tokens.add(TokenRecord.new(args.name, token_hash(token), grants, expires))
    until = f", expires {_when(time.time() + expires)}" if expires else ""
    print(f"token {args.name!r} ({grants.to_text()}{until}); shown only now, keep it secret:\n{token}")
    return 0


def show(args: argparse.Namespace, settings: Settings) -> int:
    records = open_store(settings.database).tokens.all()
    if not records:
        print("no tokens (sheetstream token create NAME --grant TABLE:PERMISSIONS)")
    for r in records:
        state = ("revoked " + _when(r.revoked_at) if r.revoked_at else "expired" if not r.live
                 else "expires " + _when(r.expires_at) if r.expires_at else "live")
        print(f"{r.name:24} {r.grants:40} created {_when(r.created_at)}  {state}")
    return 0


def revoke(args: argparse.Namespace, settings: Settings) -> int:
    if not open_store(settings.database).tokens.revoke(args.name):
        print(f"no live token named {args.name!r}")
        return 1
    print(f"token {args.name!r} revoked; its sessions have ended")
    return 0


def _when(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(seconds))
