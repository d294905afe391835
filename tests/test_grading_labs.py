"""The per-lab grading tests of test_grading.py, for the other half of the labs.

pytest-xdist sends each test file to one worker (``--dist loadfile``); with every lab in
one file, one worker graded all of them while the other waited. Here the same tests run
on the labs test_grading.py leaves out, each worker assigning only the labs it grades.
"""

from __future__ import annotations

import pytest
from test_grading import (  # noqa: F401  (the fixture and the hook are used by pytest)
    MASTERS,
    assigned,
    pytest_generate_tests,
    test_colab_install_cell_uses_the_configured_repository,
    test_committed_student_version_and_public_tests_are_up_to_date,
    test_points_come_from_hidden_tests_of_the_value_and_each_says_what_to_fix,
    test_solution_scores_full_marks_and_student_version_scores_zero,
    test_student_version_has_no_solutions_and_no_hidden_tests,
)

pytestmark = pytest.mark.slow

HERE = MASTERS[1::2]
