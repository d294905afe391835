"""odtlab.fl."""

__all__: list[str] = []
