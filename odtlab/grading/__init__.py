"""Grading for the labs: public tests for students, otter-grader tools for instructors.

Students meet one function, through the grader cell at the top of every lab::

    grader = otter.Notebook(tests_dir=str(odt.grading.public_tests_dir("lab00_welcome")))

Instructors use :func:`build_student_versions` (``make student``) and
:func:`grade_folder` (``make grade SUBMISSIONS=folder``).
"""

from odtlab.grading.assign import AssignedLab, assign_lab, build_student_versions, find_masters
from odtlab.grading.autograde import SubmissionGrade, grade_folder, grade_submission, lab_of
from odtlab.grading.public_tests import labs_with_public_tests, public_tests_dir

__all__ = [
    "AssignedLab",
    "SubmissionGrade",
    "assign_lab",
    "build_student_versions",
    "find_masters",
    "grade_folder",
    "grade_submission",
    "lab_of",
    "labs_with_public_tests",
    "public_tests_dir",
]
