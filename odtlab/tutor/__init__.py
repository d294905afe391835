"""odtlab.tutor: the capstone, a tutor app that learns each student on the student's phone.

Chapter 9 puts the course together: simulated students
(:func:`odtlab.data.simulate_students`) answer questions, a small
knowledge-tracing model (:func:`odtlab.models.tracing_mlp`) predicts the next
answer, and each phone fine-tunes its copy on its own student's answers,
day by day, with the recipes of chapters 2-4, the replay of chapter 8 and
the training windows of chapter 5. :func:`export_tutor` ships the
personalized training step as an app would: ExecuTorch programs with
train, infer, save and restore entry points.
"""

from __future__ import annotations

from odtlab.tutor.app import (
    MAX_INFER_BATCH,
    SAVE_FORMAT,
    CheckpointMismatch,
    TutorApp,
    export_tutor,
)
from odtlab.tutor.metrics import auc, calibration_error, predict_right, reliability
from odtlab.tutor.personalize import (
    Cohort,
    InvalidCohort,
    TutorReport,
    make_cohort,
    personalize,
    training_days,
)
from odtlab.tutor.policy import MasteryResult, RecallPolicy, time_to_mastery

__all__ = [
    "make_cohort",
    "Cohort",
    "personalize",
    "TutorReport",
    "training_days",
    "RecallPolicy",
    "time_to_mastery",
    "MasteryResult",
    "auc",
    "calibration_error",
    "reliability",
    "predict_right",
    "export_tutor",
    "TutorApp",
    "SAVE_FORMAT",
    "MAX_INFER_BATCH",
    "InvalidCohort",
    "CheckpointMismatch",
]
