"""Model kinds, networks and closed-form feature maps alike: one module each (config class,
build or fit, parameter count, program width, compatibility check), listed in
``dd.models.registry``. This package imports nothing, so a kind module that imports
``dd.models.base`` does not import the registry."""
