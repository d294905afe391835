OK_FORMAT = True

test = {   'name': 'q2',
    'points': [0, 0, 0],
    'suites': [   {   'cases': [   {   'code': ">>> assert reservoir([7, 8, 9], 5, seed=0) == [7, 8, 9], 'while the buffer has free slots every item is kept, in order'\n",
                                       'hidden': False,
                                       'locked': False},
                                   {'code': ">>> assert len(reservoir(list(range(100)), 8, seed=1)) == 8, 'the buffer never holds more than capacity items'\n", 'hidden': False, 'locked': False},
                                   {   'code': ">>> assert isinstance(survival, float) and 0 <= survival <= 1, 'survival is a share of the seeds: a float between 0 and 1'\n",
                                       'hidden': False,
                                       'locked': False}],
                      'scored': True,
                      'setup': '',
                      'teardown': '',
                      'type': 'doctest'}]}
