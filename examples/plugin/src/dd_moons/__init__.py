"""A dd plugin: the ``moons`` dataset kind (``dd_moons.data``) and the ``weight_norm`` metric
(``dd_moons.metrics``), registered through this package's entry points."""
