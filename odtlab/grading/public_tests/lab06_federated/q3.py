OK_FORMAT = True

test = {   'name': 'q3',
    'points': [0, 0, 0, 0],
    'suites': [   {   'cases': [   {   'code': '>>> _mid = (no_deadline.fleet_seconds[0] + no_deadline.fleet_seconds[1]) / 2\n'
                                               ">>> assert accuracy_at(no_deadline, _mid) == no_deadline.rounds[0].accuracy, 'a round still running at budget_s does not count yet; the rounds after "
                                               "the budget do not count either'\n",
                                       'hidden': False,
                                       'locked': False},
                                   {   'code': ">>> assert accuracy_at(no_deadline, 0.0) == start_accuracy, 'before the first round ends, the fleet still has the starting model'\n",
                                       'hidden': False,
                                       'locked': False},
                                   {'code': ">>> assert best_deadline in CANDIDATES, 'best_deadline must be one of CANDIDATES'\n", 'hidden': False, 'locked': False},
                                   {   'code': ">>> assert accuracy_at(runs[best_deadline], BUDGET_S) == max((accuracy_at(_r, BUDGET_S) for _r in runs.values())), 'best_deadline must be the "
                                               "candidate whose run has the highest accuracy_at(run, BUDGET_S)'\n",
                                       'hidden': False,
                                       'locked': False}],
                      'scored': True,
                      'setup': '',
                      'teardown': '',
                      'type': 'doctest'}]}
