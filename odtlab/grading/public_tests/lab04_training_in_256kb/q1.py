OK_FORMAT = True

test = {   'name': 'q1',
    'points': [0, 0, 0],
    'suites': [   {   'cases': [   {'code': ">>> assert isinstance(kept_bytes(2, 16, 8, 8, 0.25), int), 'return a Python int'\n", 'hidden': False, 'locked': False},
                                   {'code': ">>> assert kept_bytes(2, 16, 8, 8, 0.0) == 0, 'with ratio 0 only the bias trains: nothing of the input is needed'\n", 'hidden': False, 'locked': False},
                                   {'code': ">>> assert kept_bytes(2, 16, 8, 8, 1.0) == 2 * 16 * 8 * 8 * 4, 'ratio 1 keeps the whole fp32 input'\n", 'hidden': False, 'locked': False}],
                      'scored': True,
                      'setup': '',
                      'teardown': '',
                      'type': 'doctest'}]}
