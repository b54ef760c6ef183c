"""Whether a run waits for leases to expire: decided from the target's advertised
``info.leaseTimeout`` and the profile's expiry budget, never from the kind of target.

Waiting out an expiry costs about twice the lease timeout (the ``expiry``
sequence reads a lease just before its timeout, renews another, and reads both
again past it). A simulator with a 2 s timeout, or a vendor's server set to a
short timeout for testing, fits every profile's budget, so the timeout clauses
get a verdict by default; a vCenter at its default 300 s fits only the
``thorough`` budget (or ``--allow-expiry``). When the checks do not fit, the
reason is printed and becomes the NA message of every ``timeout.*`` clause.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

#: What ``--allow-expiry`` means: wait whatever the advertised timeout needs.
UNLIMITED = math.inf


@dataclass(frozen=True)
class ExpiryDecision:
    """Run the expiry checks or not, and the sentence that says why."""

    run: bool
    reason: str


@dataclass(frozen=True)
class ExpiryPolicy:
    """The budget (seconds of waiting the run may spend on expiry) and an override.

    ``forced``: True waits whatever the timeout needs (``--allow-expiry``),
    False never waits, None decides from the advertised timeout and the budget.
    """

    budget: float
    forced: bool | None = None
    budget_source: str = "this run's expiry budget"  # what the budget is, for the reason

    @property
    def may_wait(self) -> bool:
        """Static for the run: could any advertised timeout be waited out at all?"""
        return self.forced is not False and (self.forced is True or self.budget > 0)

    @staticmethod
    def cost(timeout: float, tolerance: float) -> float:
        """Seconds the expiry checks take for a lease timeout (two timeouts, the window, slack)."""
        return 2 * timeout + tolerance + 1.0

    def decide(self, timeout: float | None, tolerance: Callable[[float], float]) -> ExpiryDecision:
        if self.forced is False:
            return ExpiryDecision(False, "waiting for leases to expire is switched off for this run")
        if timeout is None:
            return ExpiryDecision(False, "no ready lease showed info.leaseTimeout, so there was no timeout to wait out")
        cost = self.cost(timeout, tolerance(timeout))
        if self.forced:
            return ExpiryDecision(True, f"--allow-expiry: waiting out leaseTimeout {timeout:g} s (about {cost:.0f} s)")
        if cost <= self.budget:
            return ExpiryDecision(True, f"leaseTimeout {timeout:g} s: the expiry checks take about {cost:.0f} s, "
                                        f"within {self.budget_source} of {self.budget:g} s")
        return ExpiryDecision(False, f"leaseTimeout {timeout:g} s: the expiry checks would take about {cost:.0f} s, "
                                     f"beyond {self.budget_source} of {self.budget:g} s "
                                     "(--expiry-budget SECONDS or --allow-expiry waits for it)")
