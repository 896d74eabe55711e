"""Who is logged in: server-side sessions behind an opaque cookie, and login throttling.

A session is a random 256-bit token in an HttpOnly, SameSite=Strict cookie;
everything else (the principal, the form token, the expiry) stays in this
process's memory, so a cookie reveals nothing and a restart logs everyone
out. Every form carries the session's own form token (``csrf``), checked
on every POST beside the SameSite cookie.

Logins are throttled per user name: after :data:`MAX_FAILURES` wrong
passwords within :data:`FAILURE_WINDOW_S` that name is refused for
:data:`LOCKOUT_S`, whatever the password, which makes guessing slow.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from broker.console.users import Principal

__all__ = ["LoginThrottle", "Session", "Sessions"]

SESSION_TTL_S = 8 * 3600  # a working day
MAX_FAILURES = 5
FAILURE_WINDOW_S = 300.0
LOCKOUT_S = 60.0
MAX_SESSIONS = 10_000


@dataclass(frozen=True, slots=True)
class Session:
    token: str
    csrf: str
    principal: Principal
    expires_at: float

    def csrf_matches(self, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(presented, self.csrf)


class Sessions:
    """The open sessions of one console process."""

    __slots__ = ("_clock", "_sessions", "_ttl_s")

    def __init__(
        self, *, ttl_s: float = SESSION_TTL_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._sessions: dict[str, Session] = {}
        self._ttl_s = ttl_s
        self._clock = clock

    def open(self, principal: Principal) -> Session:
        self._forget_expired()
        if len(self._sessions) >= MAX_SESSIONS:  # memory stays bounded under a login flood
            oldest = min(self._sessions.values(), key=lambda s: s.expires_at)
            del self._sessions[oldest.token]
        session = Session(
            token=secrets.token_urlsafe(32),
            csrf=secrets.token_urlsafe(32),
            principal=principal,
            expires_at=self._clock() + self._ttl_s,
        )
        self._sessions[session.token] = session
        return session

    def get(self, token: str | None) -> Session | None:
        if not token:
            return None
        session = self._sessions.get(token)
        if session is None:
            return None
        if session.expires_at <= self._clock():
            del self._sessions[token]
            return None
        return session

    def close(self, token: str | None) -> None:
        if token:
            self._sessions.pop(token, None)

    def _forget_expired(self) -> None:
        now = self._clock()
        for token in [t for t, s in self._sessions.items() if s.expires_at <= now]:
            del self._sessions[token]


class LoginThrottle:
    """Wrong passwords per name; a name with too many recently is locked for a while."""

    __slots__ = ("_clock", "_failures", "_locked_until")

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._failures: dict[str, list[float]] = {}
        self._locked_until: dict[str, float] = {}

    def locked(self, name: str) -> bool:
        until = self._locked_until.get(name)
        if until is None:
            return False
        if until <= self._clock():
            del self._locked_until[name]
            return False
        return True

    def failed(self, name: str) -> None:
        now = self._clock()
        recent = [t for t in self._failures.get(name, []) if now - t < FAILURE_WINDOW_S]
        recent.append(now)
        if len(recent) >= MAX_FAILURES:
            self._locked_until[name] = now + LOCKOUT_S
            recent = []
        if len(self._failures) > MAX_SESSIONS:  # bounded: forget the oldest names
            self._failures.pop(next(iter(self._failures)))
        self._failures[name] = recent

    def succeeded(self, name: str) -> None:
        self._failures.pop(name, None)
