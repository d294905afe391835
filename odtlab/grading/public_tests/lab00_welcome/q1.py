OK_FORMAT = True

test = {   'name': 'q1',
    'points': [0, 0],
    'suites': [   {   'cases': [   {'code': ">>> assert isinstance(linear_bytes, int), 'linear_bytes should be a Python int, e.g. 123'\n", 'hidden': False, 'locked': False},
                                   {   'code': ">>> assert linear_bytes != 64 * 10 + 10, 'that is the number of parameters: how many bytes does one float32 number take?'\n"
                                               ">>> assert linear_bytes != 4 * 64 * 10, 'that is the weight matrix alone: the layer has a second parameter tensor'\n"
                                               ">>> assert linear_bytes % 4 == 0, 'every float32 number takes 4 bytes, so the total is a multiple of 4'\n",
                                       'hidden': False,
                                       'locked': False}],
                      'scored': True,
                      'setup': '',
                      'teardown': '',
                      'type': 'doctest'}]}
