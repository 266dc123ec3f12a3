"""A dd plugin: the ``moons`` dataset kind (``dd_moons.data``) and the ``max_weight`` metric
(``dd_moons.metrics``), registered through this package's entry points."""
