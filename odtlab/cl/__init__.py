"""odtlab.cl."""

__all__: list[str] = []
