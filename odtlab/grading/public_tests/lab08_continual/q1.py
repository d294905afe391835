OK_FORMAT = True

test = {   'name': 'q1',
    'points': [0, 0, 0],
    'suites': [   {   'cases': [   {   'code': ">>> assert all((isinstance(_f(R_given), float) for _f in (bwt, forgetting, forgetting_first))), 'return Python floats: wrap the result in "
                                               "float(...)'\n",
                                       'hidden': False,
                                       'locked': False},
                                   {   'code': ">>> assert abs(forgetting_first(R_given) + bwt(R_given)) < 1e-06, 'first-minus-last forgetting is exactly minus BWT: check the signs of both'\n",
                                       'hidden': False,
                                       'locked': False},
                                   {   'code': ">>> assert forgetting(R_given) >= forgetting_first(R_given) - 1e-06, 'the best accuracy before the end is at least the first one, so max-minus-last "
                                               "forgetting cannot be below first-minus-last'\n",
                                       'hidden': False,
                                       'locked': False}],
                      'scored': True,
                      'setup': '',
                      'teardown': '',
                      'type': 'doctest'}]}
