"""Running packs: what is left to run (``schedule``), Ray (``cluster``), pack workers
(``worker``, ``pool``), the driver (``execute``) and its progress line (``progress``)."""
