"""Writers for the run records (``results.json``, JUnit, the clause matrix)."""
