"""Grading for the labs: public tests for students, otter-grader tools for instructors.

Students meet one function, through the grader cell at the top of every lab::

    grader = odt.grading.grader("lab00_welcome")

(otter's ``Notebook``, whose ``check`` prints one line). Instructors use
:func:`build_student_versions` (``make student``), :func:`grade_folder`
(``make grade SUBMISSIONS=folder``) and :func:`write_samples`, the five sample
submissions the grader is tested on.
"""

from odtlab.grading.assign import AssignedLab, assign_lab, build_student_versions, find_masters
from odtlab.grading.autograde import SubmissionGrade, grade_folder, grade_submission, lab_of
from odtlab.grading.checks import CheckResult, grader, short_message
from odtlab.grading.public_tests import labs_with_public_tests, public_tests_dir
from odtlab.grading.samples import SAMPLES, write_samples

__all__ = [
    "AssignedLab",
    "CheckResult",
    "SAMPLES",
    "SubmissionGrade",
    "assign_lab",
    "build_student_versions",
    "find_masters",
    "grade_folder",
    "grade_submission",
    "grader",
    "lab_of",
    "labs_with_public_tests",
    "public_tests_dir",
    "short_message",
    "write_samples",
]
