"""Errors of :mod:`odtlab.fl`: a client update the server refuses, an unknown strategy name,
the Flower bridge's missing package or failed deployment, and a secure-aggregation round
that cannot finish (too few shares, too many dropouts, a sum that overflows its encoding)."""

from __future__ import annotations

from odtlab.errors import OdtlabError

__all__ = [
    "InvalidUpdate",
    "UnknownStrategy",
    "FlowerNotInstalled",
    "FlowerDeploymentError",
    "InvalidDeployment",
    "TrustNotInstalled",
    "SecureAggregationError",
    "NotEnoughShares",
    "TooManyDropouts",
    "EncodingOverflow",
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


class TrustNotInstalled(OdtlabError, ImportError):
    """:mod:`odtlab.fl.trust` needs Opacus and ``cryptography`` (the ``trust`` extra), which are missing."""

    def __init__(self, detail: str = "") -> None:
        super().__init__(
            "odtlab.fl.trust needs opacus 1.6 and cryptography, which are not installed"
            + (f" ({detail})" if detail else "")
            + '. Install the extra from the repository root: pip install -e ".[trust]"'
        )


class SecureAggregationError(OdtlabError, RuntimeError):
    """A secure-aggregation round could not give the sum (:mod:`odtlab.fl.secagg`)."""


class NotEnoughShares(SecureAggregationError, ValueError):
    """Fewer Shamir shares than the threshold: the secret cannot be recovered."""

    def __init__(self, have: int, need: int) -> None:
        self.have, self.need = int(have), int(need)
        super().__init__(
            f"{self.have} shares given but the threshold is {self.need}: with fewer than t shares "
            "the secret is undetermined (interpolation would return a wrong value). Collect shares "
            "from at least t parties, or share with a lower threshold"
        )


class TooManyDropouts(SecureAggregationError):
    """Fewer clients than the threshold ``t`` survived the round: no mask can be removed.

    Attributes
    ----------
    survivors, threshold, clients : int
    """

    def __init__(self, survivors: int, threshold: int, clients: int) -> None:
        self.survivors, self.threshold, self.clients = int(survivors), int(threshold), int(clients)
        super().__init__(
            f"secure aggregation: {self.survivors} of {self.clients} clients sent their masked "
            f"update but the threshold is t={self.threshold}, so more than n - t = "
            f"{self.clients - self.threshold} dropped out and the masks cannot be removed. The round "
            "is abandoned and the previous model kept; lower the threshold (at the cost of a "
            "smaller coalition able to unmask), or sample more clients per round"
        )


class EncodingOverflow(SecureAggregationError, ValueError):
    """A value, or the sum, does not fit the fixed-point encoding modulo 2**32."""
