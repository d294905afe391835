OK_FORMAT = True

test = {   'name': 'q1',
    'points': [0, 0],
    'suites': [   {   'cases': [   {'code': ">>> assert isinstance(act_bytes, int), 'act_bytes should be a Python int'\n", 'hidden': False, 'locked': False},
                                   {   'code': ">>> assert act_bytes > 16 * 64 * 4, 'the first Linear alone keeps its whole input: 16 x 64 float32 numbers'\n"
                                               ">>> assert act_bytes != 16 * 64 * 4 + 16 * 32 * 4 + 16 * 10 * 4, 'you stopped at the logits: the loss keeps something of its own for backward'\n"
                                               ">>> assert act_bytes < 16 * 64 * 4 + 2 * 16 * 32 * 4 + 16 * 10 * 4, 'one tensor is counted twice: the ReLU and the second Linear keep the same "
                                               "tensor'\n",
                                       'hidden': False,
                                       'locked': False}],
                      'scored': True,
                      'setup': '',
                      'teardown': '',
                      'type': 'doctest'}]}
