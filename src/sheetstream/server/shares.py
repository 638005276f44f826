"""The fair share: one identity may hold only so many tasks (running and waiting) at once, so that one busy
client, or one leaked token, cannot fill the whole queue while the others get 429s."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from ..access import Identity
from ..errors import Busy


class Shares:
    def __init__(self, limit: int):
        self.limit = limit
        self.held: Counter[str] = Counter()

    def take(self, identity: Identity, retry_after: int = 1) -> None:
        """Count one more task for ``identity``, or refuse it (429) at its share. Admins and the anonymous
        caller (auth off: nobody to tell apart) are not counted."""
        if identity.admin:
            return
        held = self.held[identity.key]
        if held >= self.limit:
            raise Busy(f"{identity.name} already has {held} export(s) or import(s) running or waiting, the most one "
                       "caller may have at once, so that others find room; try again when one has ended",
                       retry_after=retry_after, per_identity=self.limit)
        self.held[identity.key] += 1

    def hold(self, identity: Identity, retry_after: int = 1) -> Callable[[], None]:
        """:meth:`take`, and what gives it back: a function that does so once, however often it is called."""
        self.take(identity, retry_after)
        given = False

        def release() -> None:
            nonlocal given
            if not given:
                given = True
                self.give(identity)

        return release

    def give(self, identity: Identity) -> None:
        if identity.admin or self.held[identity.key] <= 0:
            return
        self.held[identity.key] -= 1
        if not self.held[identity.key]:
            del self.held[identity.key]
