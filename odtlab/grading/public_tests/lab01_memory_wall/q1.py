OK_FORMAT = True

test = {   'name': 'q1',
    'points': 3,
    'suites': [   {   'cases': [   {'code': ">>> assert isinstance(act_bytes, int), 'act_bytes should be a Python int'\n", 'hidden': False, 'locked': False},
                                   {'code': ">>> assert act_bytes > 16 * 64 * 4, 'the first Linear alone keeps its whole input: 16 x 64 float32 numbers'\n", 'hidden': False, 'locked': False}],
                      'scored': True,
                      'setup': '',
                      'teardown': '',
                      'type': 'doctest'}]}
