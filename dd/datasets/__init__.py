"""Dataset kinds: one module each (config class, loader, facts, checks), listed in
``dd.datasets.registry``. This package imports nothing, so a kind module that imports
``dd.datasets.base`` does not import the registry."""
