"""odtlab.grading."""

__all__: list[str] = []
