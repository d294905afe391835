OK_FORMAT = True

test = {   'name': 'q3',
    'points': [0, 0],
    'suites': [   {   'cases': [   {'code': ">>> assert best_method in methods, f'use one of {list(methods)}'\n", 'hidden': False, 'locked': False},
                                   {   'code': ">>> assert [r for r in rows if r['method'] == best_method][0]['engine_peak'] <= BUDGET, 'that method does not fit the budget: keep only the rows whose "
                                               "engine_peak fits'\n",
                                       'hidden': False,
                                       'locked': False}],
                      'scored': True,
                      'setup': '',
                      'teardown': '',
                      'type': 'doctest'}]}
