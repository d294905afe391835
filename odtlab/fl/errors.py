"""Errors of :mod:`odtlab.fl`: a client update the server refuses, an unknown strategy name,
and the Flower bridge's missing package or failed deployment."""

from __future__ import annotations

from odtlab.errors import OdtlabError

__all__ = [
    "InvalidUpdate",
    "UnknownStrategy",
    "FlowerNotInstalled",
    "FlowerDeploymentError",
    "InvalidDeployment",
]


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


class FlowerNotInstalled(OdtlabError, ImportError):
    """The Flower bridge (:mod:`odtlab.fl.flower`) needs the ``flwr`` package, which is missing."""

    def __init__(self, detail: str = "") -> None:
        super().__init__(
            "the Flower bridge needs flwr 1.42, which is not installed"
            + (f" ({detail})" if detail else "")
            + '. Install the extra from the repository root: pip install -e ".[fl]"'
        )


class FlowerDeploymentError(OdtlabError, RuntimeError):
    """A Flower deployment (SuperLink, SuperNodes, ``flwr run``) could not start or did not finish.

    The message names the step that failed and, where there is one, the end of
    the log of the process that failed.
    """


class InvalidDeployment(FlowerDeploymentError, ValueError):
    """Arguments of a Flower deployment that cannot work (no clients, no rounds, a relative path)."""
