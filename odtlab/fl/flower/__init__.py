"""odtlab.fl.flower: the same clients and strategies, run by Flower 1.42.

odtlab's federated engines (:func:`odtlab.fl.run_federation`, loop or
vectorized) run every client in one process. Flower runs a federation the
way a deployment does: a *SuperLink* relays messages, one *SuperNode* per
device runs a *ClientApp*, and a *ServerApp* drives the rounds. The bridge
keeps the policy ours, Flower only carries the messages:

* :class:`OdtlabStrategy`: a Flower strategy whose ``configure`` and
  ``aggregate`` are an odtlab :class:`~odtlab.fl.Strategy`'s (FedAvg,
  FedProx, FedAvgM, FedAdam), run by Flower's ``start(grid=...,
  initial_arrays=..., num_rounds=...)``;
* :func:`train_reply`: a ClientApp's answer, ``Client.fit`` with the seed of
  :func:`~odtlab.fl.client_seed`, so both engines train on the same batches;
* :func:`to_array_record`, :func:`from_array_record`: parameters to Flower's
  records and back, exactly;
* :class:`FlowerTask`: an experiment as a Flower run config, and the model,
  clients and strategy it describes; :func:`client_app`, :func:`server_app`
  and the app folder :func:`app_dir` built on it;
* :func:`run_deployment`: a SuperLink and SuperNodes on 127.0.0.1, one run,
  every process stopped afterwards; returns the final weights.

Needs ``pip install -e ".[fl]"``; without Flower, importing this package
raises :class:`~odtlab.fl.FlowerNotInstalled` with that command (``import
odtlab`` itself never needs Flower). ``python -m odtlab.fl.flower`` (``make
fl-demo``) runs two clients for two rounds and compares with odtlab's own engine.
"""

from odtlab.fl.flower import requirement  # first: a clear error when flwr is missing
from odtlab.fl.flower.apps import WEIGHTS_KEY, app_dir, client_app, server_app
from odtlab.fl.flower.bridge import PARTITION_KEY, OdtlabStrategy, train_reply
from odtlab.fl.flower.launcher import Deployment, run_deployment
from odtlab.fl.flower.processes import flower_env, free_ports, stop_processes
from odtlab.fl.flower.records import from_array_record, to_array_record, to_config_record
from odtlab.fl.flower.task import DATASETS, FlowerTask

__all__ = [
    "requirement",
    "OdtlabStrategy",
    "train_reply",
    "PARTITION_KEY",
    "to_array_record",
    "from_array_record",
    "to_config_record",
    "FlowerTask",
    "DATASETS",
    "client_app",
    "server_app",
    "app_dir",
    "WEIGHTS_KEY",
    "run_deployment",
    "Deployment",
    "free_ports",
    "flower_env",
    "stop_processes",
]
