"""Who is asking, and whether they may see an app, a widget or a dashboard.

The original used repoze.what; this is the same idea in three small parts:

* an **identity source** turns a request into an :class:`Identity` (a user
  name and groups).  Built in: a header a reverse proxy sets after it has
  authenticated the user (``moksha.auth.header = X-Remote-User``, groups in
  ``moksha.auth.groups_header``) — only safe when every request goes through
  that proxy — and the session (an app logs a user in with
  ``request.session["user"] = "alice"`` and ``request.session["groups"] = [...]``);
* **authorizers** answer ``may_see(identity, kind, name)``: the allow lists of
  the configuration (``moksha.auth.allow.app.admin = admins, ops``; the name
  ``*`` covers every app/widget/dashboard without its own entry; the group
  ``*`` lets everyone in) and any ``moksha.authorizer`` entry point (an
  object with ``may_see``, a class making one, or a plain function).  All
  must agree; what no rule names is open;
* the :class:`Guard` asks them and answers a refusal: a redirect to
  ``moksha.auth.login_url`` for an anonymous visitor when one is set, else
  401 for anonymous visitors and 403 for known ones.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable
from urllib.parse import quote

from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from moksha.plugins import installed
from moksha.web.errors import error_page

__all__ = [
    "ANONYMOUS",
    "AllowList",
    "Authorizer",
    "Guard",
    "Identity",
    "IdentitySource",
    "header_identity",
    "load_authorizers",
    "session_identity",
]

log = logging.getLogger("moksha.web")

AUTHORIZER_GROUP = "moksha.authorizer"
_IDENTITY_KEY = "moksha.identity"  # the scope key caching a request's identity


@dataclass(frozen=True, slots=True)
class Identity:
    """A visitor: a user name (None when unknown) and the groups they belong to."""

    user: str | None = None
    groups: frozenset[str] = frozenset()

    @property
    def anonymous(self) -> bool:
        """Nobody said who this is."""
        return self.user is None


ANONYMOUS = Identity()

IdentitySource = Callable[[Scope], Identity]
"""Turns a request's scope into an identity (:data:`ANONYMOUS` when it names nobody)."""


def _split(value: Any) -> frozenset[str]:
    if isinstance(value, str):
        return frozenset(word.strip() for word in value.split(",") if word.strip())
    if isinstance(value, list | tuple | set | frozenset):
        return frozenset(str(word) for word in value)
    return frozenset()


def header_identity(header: str, groups_header: str | None = None) -> IdentitySource:
    """An identity source reading headers set by an authenticating reverse proxy.

    Args:
        header: the header naming the user (``X-Remote-User``).
        groups_header: the header listing the user's groups, separated by commas.

    Returns:
        The identity source (:data:`ANONYMOUS` when the header is absent or empty).
    """
    user_key = header.lower().encode("latin-1")
    groups_key = groups_header.lower().encode("latin-1") if groups_header else None

    def identify(scope: Scope) -> Identity:
        headers = dict(scope.get("headers", []))
        user = headers.get(user_key, b"").decode("latin-1").strip()
        if not user:
            return ANONYMOUS
        groups = headers.get(groups_key, b"").decode("latin-1") if groups_key else ""
        return Identity(user, _split(groups))

    return identify


def session_identity(scope: Scope) -> Identity:
    """The user an app stored in the session (``session["user"]``, ``session["groups"]``)."""
    session = scope.get("session") or {}
    user = session.get("user")
    if not isinstance(user, str) or not user:
        return ANONYMOUS
    return Identity(user, _split(session.get("groups")))


@runtime_checkable
class Authorizer(Protocol):
    """Decides who may see what; ``kind`` is ``app``, ``widget`` or ``dashboard``."""

    def may_see(self, identity: Identity, kind: str, name: str) -> bool: ...


class AllowList:
    """The allow lists of the configuration: ``(kind, name)`` → the groups let in.

    A kind's ``*`` entry covers its names without an entry of their own; the
    group ``*`` lets everyone in, even anonymous visitors.
    """

    def __init__(self, rules: Mapping[tuple[str, str], frozenset[str]]) -> None:
        self.rules = dict(rules)

    def may_see(self, identity: Identity, kind: str, name: str) -> bool:
        groups = self.rules.get((kind, name), self.rules.get((kind, "*")))
        if groups is None or "*" in groups:
            return True
        return bool(groups & identity.groups)


@dataclass(frozen=True, slots=True)
class _FunctionAuthorizer:
    function: Callable[[Identity, str, str], bool]

    def may_see(self, identity: Identity, kind: str, name: str) -> bool:
        return bool(self.function(identity, kind, name))


def load_authorizers() -> list[Authorizer]:
    """The authorizers of the ``moksha.authorizer`` entry points.

    An entry that fails to load is logged; it is not skipped silently, since a
    missing authorizer would open what it protects: everything is refused instead.

    Returns:
        One authorizer per entry point.
    """
    found: list[Authorizer] = []
    for ep in installed(AUTHORIZER_GROUP):
        try:
            value = ep.load()
            if isinstance(value, type):
                value = value()
            if not isinstance(value, Authorizer):
                if not callable(value):
                    raise TypeError(f"{value!r} has no may_see and is not callable")
                value = _FunctionAuthorizer(value)
        except Exception as exc:
            log.error("cannot load authorizer %r (%s): %s; refusing all", ep.name, ep.value, exc)
            value = _FunctionAuthorizer(lambda identity, kind, name: False)
        found.append(value)
    return found


class Guard:
    """Asks the identity source and the authorizers; answers refusals.

    Args:
        identify: the identity source.
        authorizers: all must allow.
        login_url: where anonymous visitors of a protected page are sent.
    """

    def __init__(
        self,
        identify: IdentitySource,
        authorizers: Sequence[Authorizer],
        *,
        login_url: str | None = None,
    ) -> None:
        self._identify = identify
        self.authorizers = list(authorizers)
        self.login_url = login_url

    def identity(self, scope: Scope) -> Identity:
        """The request's identity (found once per request)."""
        identity = scope.get(_IDENTITY_KEY)
        if not isinstance(identity, Identity):
            identity = self._identify(scope)
            scope[_IDENTITY_KEY] = identity
        return identity

    def may_see(self, scope: Scope, kind: str, name: str) -> bool:
        """Whether the visitor of this request may see ``kind`` ``name``.

        An authorizer that raises counts as a refusal (and is logged).
        """
        identity = self.identity(scope)
        for authorizer in self.authorizers:
            try:
                if not authorizer.may_see(identity, kind, name):
                    return False
            except Exception:
                log.exception("authorizer %r failed on %s %s; refused", authorizer, kind, name)
                return False
        return True

    def refusal(self, scope: Scope, kind: str, name: str) -> Response | None:
        """None when allowed; else the response a refused visitor gets."""
        if self.may_see(scope, kind, name):
            return None
        if not self.identity(scope).anonymous:
            return error_page(403, "Not allowed", f"You may not see the {kind} {name}.")
        if self.login_url:
            # Modern servers and Starlette keep the full path in "path", root_path included.
            path = scope["path"]
            query = scope.get("query_string", b"").decode("latin-1")
            target = path + (f"?{query}" if query else "")
            joiner = "&" if "?" in self.login_url else "?"
            return RedirectResponse(f"{self.login_url}{joiner}next={quote(target)}", 303)
        return error_page(401, "Please log in", f"The {kind} {name} needs you to log in.")

    def protect(self, app: ASGIApp, kind: str, name: str) -> ASGIApp:
        """``app``, served only to visitors who may see ``kind`` ``name``."""

        async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
            refusal = self.refusal(scope, kind, name)
            if refusal is None:
                await app(scope, receive, send)
            elif scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
            else:
                await refusal(scope, receive, send)

        return guarded
