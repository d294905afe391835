"""odtlab.fl: federated learning, many devices running recipes under a server strategy.

* :class:`Client`: one device, its own data, a recipe; ``fit`` trains locally.
* Strategies (:mod:`odtlab.fl.strategies`): :class:`FedAvg`, :class:`FedProx`,
  :class:`FedAvgM`, :class:`FedAdam`, each ``aggregate(global_params, results)``.
* :func:`run_federation`: the plain engine, rounds of sampled clients with
  fit checks, deadlines, rejected updates and simulated fleet time.
* :func:`personalize`: after the federation, each client fine-tunes the
  global model with a cheap recipe; global vs personalised accuracy per client.
* The server's arithmetic as pure functions: :func:`weighted_mean`,
  :func:`check_update`.
* Trust (chapter 7): robust aggregation (:class:`FedMedian`,
  :class:`FedTrimmedAvg`, :class:`Krum`, :class:`ClippedUpdates`) and
  poisoning attacks (:func:`make_malicious`, :class:`MaliciousClient`,
  :func:`attack_success_rate`) here; differential privacy (DP-FedAvg with
  Opacus's accountant, DP-SGD on the device and its memory) and secure
  aggregation in :mod:`odtlab.fl.trust` (needs ``pip install -e ".[trust]"``;
  imported on demand: ``from odtlab.fl import trust``).
* :mod:`odtlab.fl.flower` (needs ``pip install -e ".[fl]"``): the same
  clients and strategies run by Flower 1.42 (ClientApp, ServerApp, a local
  SuperLink with SuperNodes); imported on demand, so ``import odtlab`` works
  without Flower.

Partitions of a data set among clients are :func:`odtlab.data.partition`
and :func:`odtlab.data.split_by_user`.
"""

from odtlab.fl.aggregate import check_update, weighted_mean
from odtlab.fl.attacks import (
    ATTACKS,
    MaliciousClient,
    Trigger,
    attack_success_rate,
    backdoor_data,
    flip_labels,
    make_malicious,
)
from odtlab.fl.client import Client, ClientResult
from odtlab.fl.compression import Compressor, Int8Updates, TopK, compress_update
from odtlab.fl.errors import (
    EncodingOverflow,
    FlowerDeploymentError,
    FlowerNotInstalled,
    InvalidDeployment,
    InvalidUpdate,
    NotEnoughShares,
    SecureAggregationError,
    TooManyDropouts,
    TrustNotInstalled,
    UnknownStrategy,
)
from odtlab.fl.personalization import PersonalizationReport, personalize
from odtlab.fl.robust import (
    ClippedUpdates,
    FedMedian,
    FedTrimmedAvg,
    Krum,
    clip_update,
    update_norm,
)
from odtlab.fl.simulation import FederatedRun, RoundRecord, client_seed, run_federation
from odtlab.fl.strategies import (
    STRATEGIES,
    FedAdam,
    FedAvg,
    FedAvgM,
    FedProx,
    Strategy,
    get_strategy,
)

__all__ = [
    "Client",
    "ClientResult",
    "Compressor",
    "Int8Updates",
    "TopK",
    "compress_update",
    "Strategy",
    "FedAvg",
    "FedProx",
    "FedAvgM",
    "FedAdam",
    "STRATEGIES",
    "get_strategy",
    "run_federation",
    "client_seed",
    "FederatedRun",
    "RoundRecord",
    "personalize",
    "PersonalizationReport",
    "weighted_mean",
    "check_update",
    "InvalidUpdate",
    "UnknownStrategy",
    "FlowerNotInstalled",
    "FlowerDeploymentError",
    "InvalidDeployment",
    "FedMedian",
    "FedTrimmedAvg",
    "Krum",
    "ClippedUpdates",
    "clip_update",
    "update_norm",
    "ATTACKS",
    "Trigger",
    "flip_labels",
    "backdoor_data",
    "make_malicious",
    "MaliciousClient",
    "attack_success_rate",
    "TrustNotInstalled",
    "SecureAggregationError",
    "NotEnoughShares",
    "TooManyDropouts",
    "EncodingOverflow",
]
