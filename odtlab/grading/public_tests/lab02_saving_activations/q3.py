OK_FORMAT = True

test = {   'name': 'q3',
    'points': [0, 0],
    'suites': [   {   'cases': [   {'code': ">>> assert best_recipe in [r['recipe'] for r in comparison.rows], 'use a name from comparison.rows'\n", 'hidden': False, 'locked': False},
                                   {   'code': ">>> assert [r for r in comparison.rows if r['recipe'] == best_recipe][0]['fits'], 'that recipe does not fit the device: keep only the rows that fit'\n",
                                       'hidden': False,
                                       'locked': False}],
                      'scored': True,
                      'setup': '',
                      'teardown': '',
                      'type': 'doctest'}]}
