"""odtlab.data: small data sets that are generated or shipped, never downloaded.

Every data set is a ``torch.utils.data.Dataset`` of ``(x, y)`` pairs, ``x`` a
float32 tensor and ``y`` an int64 scalar, with ``classes``, ``num_classes``
and the whole data at hand as ``ds.x`` and ``ds.y``.

Data sets
    :func:`digits`
        Real 8x8 handwritten digits from scikit-learn (1797 images),
        optionally upsampled.
    :class:`SyntheticShapes`, :func:`train_test`, :func:`domain`
        Procedural colour shapes with a pretraining ``"source"`` domain and
        shifted ``"target-..."`` domains for transfer learning.
    :class:`SensorActivity`, :class:`SensorFeatures`
        Synthetic accelerometer activities with per-user styles.
    :func:`mnist`, :func:`cifar10`
        Read the standard files from a folder you point at.
Tools
    :func:`partition`, :func:`split_by_user`, :func:`label_skew` for
    federated clients; :func:`class_counts`, :func:`as_tensors`,
    :func:`labels_of`, :func:`loader` for everyday work.

Examples
--------
>>> from odtlab import data
>>> train, test = data.train_test("source", n_train=200, n_test=100, seed=0)
>>> xb, yb = next(iter(data.loader(train, batch_size=16, seed=0)))
>>> xb.shape
torch.Size([16, 3, 32, 32])
"""

from __future__ import annotations

from odtlab.data.base import ArrayDataset
from odtlab.data.digits import Digits, digits
from odtlab.data.domains import available_domains, domain
from odtlab.data.errors import DatasetNotFound, InvalidDataArgument, InvalidDataFile, UnknownDomain
from odtlab.data.local import LocalImages, cifar10, mnist
from odtlab.data.partition import label_skew, partition, split_by_user
from odtlab.data.sensor_features import SensorFeatures
from odtlab.data.sensors import SensorActivity
from odtlab.data.shapes import SyntheticShapes, train_test
from odtlab.data.students import (
    TOPICS,
    Student,
    StudentLog,
    make_students,
    p_correct,
    simulate_students,
)
from odtlab.data.tools import as_tensors, class_counts, loader
from odtlab.data.tracing import (
    TracingData,
    next_question_features,
    tracing_features,
    tracing_sequences,
)

__all__ = [
    # the data sets: generated or shipped, never downloaded
    "train_test",
    "digits",
    "SyntheticShapes",
    "Digits",
    "SensorActivity",
    "SensorFeatures",
    "domain",
    "available_domains",
    "ArrayDataset",
    # simulated students for the capstone tutor (chapter 9)
    "simulate_students",
    "make_students",
    "Student",
    "StudentLog",
    "TOPICS",
    "p_correct",
    "tracing_features",
    "tracing_sequences",
    "next_question_features",
    "TracingData",
    # your own files, read offline
    "mnist",
    "cifar10",
    "LocalImages",
    # tools
    "as_tensors",
    "loader",
    "class_counts",
    "partition",
    "split_by_user",
    "label_skew",
    # errors
    "DatasetNotFound",
    "InvalidDataArgument",
    "InvalidDataFile",
    "UnknownDomain",
]
