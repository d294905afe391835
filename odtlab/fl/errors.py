"""Errors of :mod:`odtlab.fl`: a client update the server refuses, an unknown strategy name."""

from __future__ import annotations

from odtlab.errors import OdtlabError

__all__ = ["InvalidUpdate", "UnknownStrategy"]


class InvalidUpdate(OdtlabError, ValueError):
    """A client's update cannot be aggregated (NaN, wrong shape, unknown key, bad count).

    Attributes
    ----------
    client : str
        The id of the client that sent it.
    """

    def __init__(self, client: str, problem: str) -> None:
        self.client = str(client)
        super().__init__(
            f"client {self.client!r}: {problem}. The update is left out of the round and nothing "
            "of it is aggregated; check that the client trains the server's model (same "
            "architecture and recipe) and that its learning rate does not make the loss diverge."
        )


class UnknownStrategy(OdtlabError, KeyError):
    """No federated strategy has that name; the message lists the known ones."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])
