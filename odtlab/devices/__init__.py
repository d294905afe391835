"""odtlab.devices."""

__all__: list[str] = []
