"""odtlab.models."""

__all__: list[str] = []
