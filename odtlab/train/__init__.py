"""odtlab.train."""

__all__: list[str] = []
