OK_FORMAT = True

test = {   'name': 'q5',
    'points': [0, 0],
    'suites': [   {   'cases': [   {'code': ">>> assert adam8bit_state_bytes(100) == 804, 'a small tensor keeps two fp32 moments and a step counter'\n", 'hidden': False, 'locked': False},
                                   {   'code': ">>> assert adam8bit_state_bytes(256 * 100) < 2 * 4 * 256 * 100 / 3, '8-bit moments are about 4x smaller than fp32 ones'\n",
                                       'hidden': False,
                                       'locked': False}],
                      'scored': True,
                      'setup': '',
                      'teardown': '',
                      'type': 'doctest'}]}
