"""Who may do what: grants, identities, and API tokens as values. No HTTP and no database here: the store keeps
tokens (:mod:`sheetstream.store.tokens`), the server decides who is calling (:mod:`sheetstream.server.auth`).

A grant names a table and what may be done to it: ``read`` (export), ``append``, ``upsert``, ``replace``
(destructive: never implied by another). ``admin`` is a grant of its own: every table, every job, the
metrics, the status and the audit trail. Written as text: ``orders:read,append customers:read`` or ``admin``;
``*`` stands for every served table (``*:read``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .errors import ConfigError

#: What a grant may allow on a table. The import modes are permissions of the same names.
PERMISSIONS = ("read", "append", "upsert", "replace")
WRITES = ("append", "upsert", "replace")
#: Every API token starts so: easy to recognise in a leaked file or a secret scanner's rule.
TOKEN_PREFIX = "sst_"


@dataclass(frozen=True)
class Grants:
    tables: Mapping[str, frozenset[str]] = field(default_factory=dict)
    admin: bool = False

    def allows(self, table: str, permission: str) -> bool:
        if self.admin:
            return True
        return permission in self.tables.get(table, ()) or permission in self.tables.get("*", ())

    def on(self, table: str) -> list[str]:
        """What these grants allow on ``table``, in the order of :data:`PERMISSIONS`."""
        return [p for p in PERMISSIONS if self.allows(table, p)]

    def to_text(self) -> str:
        parts = ["admin"] if self.admin else []
        parts += [f"{t}:{','.join(p for p in PERMISSIONS if p in perms)}" for t, perms in sorted(self.tables.items())]
        return " ".join(parts)

    @classmethod
    def parse(cls, text: str | Iterable[str]) -> Grants:
        """``"orders:read,append customers:read"``, ``"admin"``, or several such texts; ConfigError names a bad one."""
        words = text.split() if isinstance(text, str) else [w for t in text for w in t.split()]
        tables: dict[str, set[str]] = {}
        admin = False
        for word in words:
            if word == "admin":
                admin = True
                continue
            table, _, perms = word.partition(":")
            chosen = {p.strip() for p in perms.split(",") if p.strip()}
            unknown = chosen - set(PERMISSIONS)
            if not table or not chosen or unknown:
                raise ConfigError(f"grant {word!r} is not TABLE:PERMISSION[,PERMISSION...] with permissions from "
                                  f"{', '.join(PERMISSIONS)} (or 'admin')")
            tables.setdefault(table, set()).update(chosen)
        return cls({t: frozenset(p) for t, p in tables.items()}, admin)


@dataclass(frozen=True)
class Identity:
    """Who is calling. ``key`` is unique across kinds (``token:alice``, ``user:alice``): jobs belong to it.
    ``ambient`` is true when the browser sends the credential on its own (a cookie, a proxy's sign-on, or no
    credential at all): such requests must prove they come from the page (CSRF defence)."""

    kind: str  # token, session, user (from a trusted proxy), anonymous (auth off)
    name: str
    grants: Grants
    session: str | None = None  # the session's random id, for its CSRF token

    @property
    def key(self) -> str:
        return f"{'token' if self.kind == 'session' else self.kind}:{self.name}"

    @property
    def admin(self) -> bool:
        return self.grants.admin

    @property
    def ambient(self) -> bool:
        return self.kind != "token"

    def allows(self, table: str, permission: str) -> bool:
        return self.grants.allows(table, permission)

    def can_see(self, owner: str | None) -> bool:
        """Whether a job of ``owner`` is visible to this identity (its own, or any for an admin)."""
        return self.admin or owner == self.key


ANONYMOUS = Identity("anonymous", "anonymous", Grants(admin=True))


def new_token() -> str:
    """A fresh API token: 256 random bits, URL-safe, with the recognisable prefix."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """What the database keeps instead of the token (SHA-256: the token is random, so no salt or stretching is
    needed: there is nothing to guess from its hash)."""
    return hashlib.sha256(token.encode()).hexdigest()


def same_secret(given: str, expected: str) -> bool:
    """Constant-time comparison of two secrets (or their hashes)."""
    return hmac.compare_digest(given.encode(), expected.encode())


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> float:
    """``90s``, ``15m``, ``12h``, ``30d``, ``2w`` -> seconds; ConfigError otherwise."""
    match = _DURATION.match(text)
    if not match or float(match[1]) <= 0:
        raise ConfigError(f"duration {text!r} is not a positive number followed by s, m, h, d or w (such as 30d)")
    return float(match[1]) * _SECONDS[match[2]]


def parse_user_grants(text: str) -> dict[str, Grants]:
    """``"alice=orders:read,append customers:read; bob=admin"`` -> grants by user name (``*`` for any other)."""
    users: dict[str, Grants] = {}
    for entry in (e.strip() for e in text.split(";")):
        if not entry:
            continue
        user, sep, grants = entry.partition("=")
        if not sep or not user.strip():
            raise ConfigError(f"user grant {entry!r} is not USER=GRANT[ GRANT...]")
        users[user.strip()] = Grants.parse(grants)
    return users
