"""Running packs: what is left to run (``schedule``), Ray (``cluster``), pack workers
(``worker``, ``pool``), the driver (``execute``) and its progress line (``progress``).

Every module that imports Ray is here (``dd.api`` starts Ray through ``dd.run.cluster``), so
this is where Ray's import is quieted: in a Jupyter kernel without ipywidgets, importing Ray
logs "Missing packages: ['ipywidgets']" from ``ray.widgets.util`` (the widget of Ray's own
context object, which dd never shows). That logger says nothing else; dd raises it to
warnings before any import of Ray."""

import logging

logging.getLogger("ray.widgets.util").setLevel(logging.WARNING)
