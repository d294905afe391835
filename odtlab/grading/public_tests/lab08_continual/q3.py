OK_FORMAT = True

test = {   'name': 'q3',
    'points': [0, 0, 0],
    'suites': [   {   'cases': [   {'code': ">>> assert device_choice in candidates, 'device_choice must be the name of one of the candidates'\n", 'hidden': False, 'locked': False},
                                   {   'code': ">>> assert 'naive' not in over_by(prices), 'naive keeps nothing beside the training step and fits: only strategies that do not fit belong in "
                                               "over_by'\n",
                                       'hidden': False,
                                       'locked': False},
                                   {   'code': ">>> assert all((isinstance(_v, int) and _v > 0 for _v in over_by(prices).values())), 'over_by gives positive ints: how many bytes each strategy is "
                                               "over'\n",
                                       'hidden': False,
                                       'locked': False}],
                      'scored': True,
                      'setup': '',
                      'teardown': '',
                      'type': 'doctest'}]}
