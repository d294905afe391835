"""odtlab's Flower app: the components named in ``pyproject.toml``."""
