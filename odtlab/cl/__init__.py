"""odtlab.cl: continual learning, a recipe running over a stream of experiences (chapter 8).

A device that keeps learning sees a stream: new classes, a new user, a
drifting sensor. This package gives

* **streams** (:mod:`~odtlab.cl.streams`): :func:`class_incremental`,
  :func:`task_incremental`, :func:`domain_incremental` and :func:`online`;
* **strategies** (:mod:`~odtlab.cl.strategies`), hooks around one loop:
  :class:`Naive`, :class:`Joint`, :class:`Replay` (reservoir or
  class-balanced buffers), :class:`LatentReplay`, :class:`EWC`,
  :class:`OnlineEWC`, :class:`SI`, :class:`LwF`, :class:`AGEM`;
* **the loop** :func:`run_stream` that fills the accuracy matrix ``R``,
  and **metrics**, pure functions of ``R`` (:func:`metrics`);
* **labels on a device**: a few true labels plus pseudo-labels
  (:class:`PseudoLabels`);
* **the memory price** of each strategy on a device (:class:`MemoryPrice`);
* **federated continual learning**: a fleet whose data drift, with or
  without local replay (:func:`federated_stream`).

Examples
--------
>>> from odtlab import cl, models, recipes
>>> stream = cl.online(cl.class_incremental())        # one pass, batches of 10
>>> res = cl.run_stream(models.mlp(), stream, cl.Replay(100),
...                     recipe=recipes.Recipe(recipes.BiasOnly()), device="mcu", seed=0)
>>> res.price.fits, sorted(res.memory)
(True, ['replay buffer (raw)'])
"""

from odtlab.cl.buffers import ClassBalancedBuffer, ReplayBuffer, ReservoirBuffer, state_bytes
from odtlab.cl.errors import InvalidStrategy, InvalidStream, StrategyDiverged, UnsupportedModel
from odtlab.cl.federated import federated_stream
from odtlab.cl.labels import PseudoLabels
from odtlab.cl.metrics import (
    average_accuracy,
    backward_transfer,
    forgetting,
    forward_transfer,
    metrics,
    plasticity,
)
from odtlab.cl.price import MemoryPrice
from odtlab.cl.run import StreamResult, TaskHead, price_on, run_stream
from odtlab.cl.strategies import (
    AGEM,
    EWC,
    SI,
    Joint,
    LatentReplay,
    LwF,
    Naive,
    OnlineEWC,
    Replay,
    Strategy,
    diagonal_fisher,
    trainable_bytes,
)
from odtlab.cl.streams import (
    SCENARIOS,
    Experience,
    Stream,
    class_incremental,
    domain_incremental,
    online,
    task_incremental,
)

__all__ = [
    # streams
    "Experience",
    "Stream",
    "SCENARIOS",
    "class_incremental",
    "task_incremental",
    "domain_incremental",
    "online",
    # strategies
    "Strategy",
    "Naive",
    "Joint",
    "Replay",
    "LatentReplay",
    "AGEM",
    "EWC",
    "OnlineEWC",
    "SI",
    "LwF",
    "diagonal_fisher",
    "trainable_bytes",
    "PseudoLabels",
    # buffers
    "ReplayBuffer",
    "ReservoirBuffer",
    "ClassBalancedBuffer",
    "state_bytes",
    # the loop and its result
    "run_stream",
    "StreamResult",
    "TaskHead",
    "MemoryPrice",
    "price_on",
    # federated continual learning
    "federated_stream",
    # metrics of R
    "metrics",
    "average_accuracy",
    "backward_transfer",
    "forward_transfer",
    "forgetting",
    "plasticity",
    # errors
    "InvalidStream",
    "InvalidStrategy",
    "UnsupportedModel",
    "StrategyDiverged",
]
