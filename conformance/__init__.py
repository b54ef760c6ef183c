"""Conformance: is a target's HttpNfcLease what the spec says, clause by clause?

``clauses`` is the catalogue, ``table`` the one transition table, ``model`` the
pure reference model that judges events against them, ``offline`` replays a
history, ``expectations`` turns known deviations into XFAIL. None of these
talks to a target: they read :class:`nfclease.events.Event` records only.
"""
