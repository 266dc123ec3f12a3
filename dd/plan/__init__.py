"""From a spec file to packs: load and validate the sweep (``sweep``), resolve user data and
modules (``resolve``), cut program widths (``buckets``) and packs (``packs``), and the states
of planned trials against the store (``states``, ``adopt``)."""
