OK_FORMAT = True

test = {   'name': 'q2',
    'points': [0],
    'suites': [   {   'cases': [{'code': ">>> assert param_bytes(torch.nn.Linear(3, 2)) == 32, 'Linear(3, 2) has 3*2 + 2 = 8 float32 numbers, 32 bytes'\n", 'hidden': False, 'locked': False}],
                      'scored': True,
                      'setup': '',
                      'teardown': '',
                      'type': 'doctest'}]}
