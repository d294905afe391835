"""odtlab.recipes."""

__all__: list[str] = []
