"""Who is calling, and whether the request may be believed.

Credentials, in this order: ``Authorization: Bearer <token>`` (an API token, or this process's admin token),
a user name set by a trusted reverse proxy (``--trust-user-header``, only from ``--trusted-proxies``), the
page's session cookie (signed with itsdangerous; it names the token it was opened with, which is looked up on
every request, so revoking the token ends its sessions; signing out ends the one session, on the server: its id
is recorded with the tokens, so every instance refuses the cookie). With auth off, everyone is the anonymous
admin.

A cookie, a proxy's sign-on and "no credential at all" are *ambient*: the browser sends them with requests
that any page it visits can make. Multipart forms are CORS "simple" requests, and two ports of one host are
the same *site* (so ``SameSite=Strict`` does not stop them). Such requests therefore have to prove that they
come from the page itself: no ``Sec-Fetch-Site`` other than same-origin (or none, for a typed URL), an
``Origin`` (when present) equal to this server's, and for state changes the ``X-Sheetstream-CSRF`` header
with the session's token, which a cross-site form cannot set and a cross-site script cannot read.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import secrets
from urllib.parse import urlsplit

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from starlette.requests import HTTPConnection

from ..access import ANONYMOUS, Grants, Identity, same_secret, token_hash
from ..config import LOOPBACK, AccessOptions
from ..errors import Forbidden, Unauthenticated
from ..store import TokenRecord, TokenTable

log = logging.getLogger("sheetstream.access")

SESSION_COOKIE = "sheetstream_session"
CSRF_HEADER = "X-Sheetstream-CSRF"
SESSION_SECONDS = 12 * 3600
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
#: The identity of this process's admin token (``token create`` refuses the name).
START_NAME = "admin"
_START = "@start:"

SIGN_IN = ("sign in: send 'Authorization: Bearer <token>' (sheetstream token create), or open the page with the "
           "URL the server printed at start")


class Gate:
    """The app's one authenticator: the access settings, the token table, the session signer."""

    def __init__(self, access: AccessOptions, tokens: TokenTable):
        self.access = access
        self.tokens = tokens
        secret = access.session_secret or secrets.token_urlsafe(32)
        self.signer = URLSafeTimedSerializer(secret, salt="sheetstream-session")
        self.csrf_key = hashlib.sha256(b"sheetstream-csrf:" + secret.encode()).digest()
        self.start_hash = token_hash(access.admin_token) if access.admin_token else None
        self.proxies = [ipaddress.ip_network(p, strict=False) for p in access.trusted_proxies]

    # -- who is calling (may read the token table: call from a worker thread) ---------------------------

    def identify(self, request: HTTPConnection) -> Identity:
        if not self.access.auth:
            return ANONYMOUS
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            if not token.strip():
                raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
            return self.token_identity(token.strip())
        # Another scheme (a proxy's Basic sign-on passed along) is not ours: the proxy's user header decides.
        user = self.proxy_user(request)
        if user is not None:
            return user
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            return self.session_identity(cookie)
        raise Unauthenticated(SIGN_IN)

    def token_identity(self, token: str, kind: str = "token") -> Identity:
        digest = token_hash(token)
        if self.start_hash and same_secret(digest, self.start_hash):
            return Identity(kind, START_NAME, Grants(admin=True), session=_START + digest[:16])
        record = self.tokens.find(digest)
        if record is None or not same_secret(record.hash, digest):
            raise Unauthenticated("this token is not known to the server; " + SIGN_IN)
        return self._live(record, kind)

    def session_identity(self, cookie: str) -> Identity:
        try:
            token_id, nonce = self.signer.loads(cookie, max_age=SESSION_SECONDS)
        except SignatureExpired:
            raise Unauthenticated("the session has expired; " + SIGN_IN) from None
        except (BadSignature, ValueError, TypeError):
            raise Unauthenticated("the session cookie is not valid here; " + SIGN_IN) from None
        if self.tokens.session_ended(session_id(nonce)):
            raise Unauthenticated("this session was signed out; " + SIGN_IN)
        if token_id.startswith(_START):
            if not self.start_hash or token_id != _START + self.start_hash[:16]:
                raise Unauthenticated("the server's start token has changed since this session began; " + SIGN_IN)
            return Identity("session", START_NAME, Grants(admin=True), session=nonce)
        record = self.tokens.get(token_id)
        if record is None:
            raise Unauthenticated("the session's token no longer exists; " + SIGN_IN)
        return Identity("session", record.name, self._live(record, "session").grants, session=nonce)

    def _live(self, record: TokenRecord, kind: str) -> Identity:
        if record.revoked_at is not None:
            raise Unauthenticated(f"the token {record.name!r} has been revoked")
        if not record.live:
            raise Unauthenticated(f"the token {record.name!r} has expired")
        return Identity(kind, record.name, record.parsed_grants, session=record.id)

    def proxy_user(self, request: HTTPConnection) -> Identity | None:
        """The user named by a trusted proxy; the header from anyone else is ignored (and logged)."""
        header = self.access.user_header
        name = request.headers.get(header, "").strip() if header else ""
        if not name:
            return None
        if not self.from_proxy(request):
            log.warning("ignored %s from %s: not a trusted proxy", header, peer(request))
            return None
        grants = self.access.user_grants.get(name) or self.access.user_grants.get("*") or Grants()
        return Identity("user", name, grants, session="user:" + name)

    def from_proxy(self, request: HTTPConnection) -> bool:
        address = peer(request)
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.proxies)

    # -- sessions ---------------------------------------------------------------------------------------

    def open_session(self, token: Identity) -> tuple[str, Identity]:
        """A session opened with ``token`` (an identity from :meth:`token_identity`): the signed cookie value, and
        the session's identity. The cookie holds the token's record id (never the token) and a random nonce."""
        nonce = secrets.token_urlsafe(16)
        session = Identity("session", token.name, token.grants, session=nonce)
        return self.signer.dumps([token.session, nonce]), session

    def end_session(self, identity: Identity, cookie: str) -> None:
        """Sign the session of ``identity`` (opened by ``cookie``) out, for every instance: recorded until the
        cookie would have expired by itself."""
        _, issued = self.signer.loads(cookie, max_age=SESSION_SECONDS, return_timestamp=True)
        assert identity.session is not None
        self.tokens.end_session(session_id(identity.session), issued.timestamp() + SESSION_SECONDS)

    def csrf_token(self, identity: Identity) -> str:
        """The value the page sends in ``X-Sheetstream-CSRF``: bound to this session (or proxy user) and to the
        server's secret, so it cannot be guessed or carried to another session."""
        material = (identity.session or identity.key).encode()
        return hmac.new(self.csrf_key, material, hashlib.sha256).hexdigest()

    def client_address(self, request: HTTPConnection) -> str:
        """Who connected: through a trusted proxy, the address it saw (the last X-Forwarded-For entry, the one
        it appended); otherwise the connection's own peer. Never what an untrusted client claims."""
        if self.from_proxy(request):
            forwarded = request.headers.get("x-forwarded-for", "").split(",")[-1].strip()
            if forwarded:
                return forwarded
        return peer(request)

    def secure(self, request: HTTPConnection) -> bool:
        """Whether the browser reached us over HTTPS (directly, or through a trusted proxy that says so)."""
        if request.url.scheme == "https":
            return True
        return self.from_proxy(request) and request.headers.get("x-forwarded-proto", "").lower() == "https"

    # -- whether an ambient credential's request comes from the page ------------------------------------

    def check_request(self, request: HTTPConnection, identity: Identity) -> None:
        if not identity.ambient:
            return  # a bearer token is never sent by the browser on its own
        problem = self.ambient_problem(request, identity)
        if problem:
            log.warning("refused %s %s for %s: %s", request.scope.get("method"), request.url.path, identity.key,
                        problem)
            raise Forbidden(f"refused: {problem}", reason="csrf")

    def ambient_problem(self, request: HTTPConnection, identity: Identity) -> str | None:
        site = request.headers.get("sec-fetch-site")
        origin = request.headers.get("origin")
        if site in ("same-site", "cross-site"):
            return f"the request comes from another site ({site}), not from this server's page"
        if identity.kind == "anonymous" and (site or origin) and not loopback(request.headers.get("host", "")):
            return "authentication is off, so browsers are served on a loopback address only (127.0.0.1)"
        if request.scope.get("method") in SAFE_METHODS:
            return None
        if origin is not None and not same_origin(origin, request):
            return f"the request's Origin ({origin[:100]}) is not this server"
        if identity.kind != "anonymous":
            given = request.headers.get(CSRF_HEADER, "")
            if not given or not same_secret(given, self.csrf_token(identity)):
                return f"a state-changing request with a cookie or a proxy's sign-on needs the {CSRF_HEADER} header"
        return None


def session_id(nonce: str) -> str:
    """What the server keeps of a signed-out session: a hash of its cookie's random part, not the part itself."""
    return hashlib.sha256(b"sheetstream-session:" + nonce.encode()).hexdigest()


def peer(request: HTTPConnection) -> str:
    """The address the connection comes from (not what a forwarded header claims)."""
    return request.client.host if request.client else ""


def same_origin(origin: str, request: HTTPConnection) -> bool:
    """Whether ``origin`` names this server as the browser reached it (its Host header)."""
    parts = urlsplit(origin)
    return bool(parts.netloc) and parts.netloc.lower() == request.headers.get("host", "").lower()


def loopback(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    return name.strip("[]").lower() in LOOPBACK
