"""odtlab.data."""

__all__: list[str] = []
