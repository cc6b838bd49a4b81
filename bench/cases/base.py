"""What a case module declares: its number, how it measures, what it needs seeded, when it cannot run."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..harness import Case
from ..workspace import Workspace


def always_ready() -> str | None:
    return None


@dataclass(frozen=True)
class CaseUnit:
    """One case as run.py sees it; everything else about the case stays in its module."""

    id: str                                             # what --cases picks it by
    measure: Callable[[Workspace], Case | list[Case]]   # the row(s) it adds to the table
    needs: frozenset[str] = frozenset()                 # what seed.seed() must push first (images, blobs)
    ready: Callable[[], str | None] = always_ready      # why it cannot run here (then it is skipped), or None
    skip_title: str = ""                                # its title in the table when it is skipped
