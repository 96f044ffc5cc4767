"""Bounded, jittered exponential backoff ("full jitter" variant, halved so it never collapses to 0)."""

from __future__ import annotations

import random


class Backoff:
    """Delays base, base*factor, ... capped at `cap`, each drawn from [d/2, d].

    Jitter stops several watchers that lost the same control plane from retrying in lockstep.
    `attempts` counts failures since the last `reset()`; callers bound their loops with it.
    """

    def __init__(
        self,
        base: float = 0.5,
        cap: float = 30.0,
        factor: float = 2.0,
        *,
        rng: random.Random | None = None,
    ) -> None:
        if base <= 0 or cap < base or factor < 1:
            raise ValueError("backoff needs 0 < base <= cap and factor >= 1")
        self.base, self.cap, self.factor = base, cap, factor
        self.attempts = 0
        self._rng = rng or random.Random()

    def ceiling(self) -> float:
        """The upper bound of the next delay."""
        return min(self.cap, self.base * self.factor ** min(self.attempts, 64))

    def next(self) -> float:
        ceiling = self.ceiling()
        self.attempts += 1
        return self._rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.attempts = 0
