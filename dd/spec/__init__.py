"""The bottom layer: what a trial is, before anything runs it. Field checks (``fields``), the
frozen config tree of a trial (``config``), settings read once at the entry points
(``settings``), grids of trials (``grid``), content ids (``ids``), user-code references
(``user_code``), the lock's provenance and dd's errors. No JAX, no file I/O beyond user code
references, nothing above it."""
