OK_FORMAT = True

test = {   'name': 'q2',
    'points': [0, 0, 0],
    'suites': [   {   'cases': [   {   'code': ">>> assert isinstance(mlp_sgd_batch, int) and 1 <= mlp_sgd_batch <= 256, 'mlp_sgd_batch should be an int between 1 and 256'\n",
                                       'hidden': False,
                                       'locked': False},
                                   {   'code': ">>> assert largest_batch('mlp', 'stm32f746', R.Adam()) == 0, 'with Adam not even a batch of 1 fits the MCU: check the 0 case'\n",
                                       'hidden': False,
                                       'locked': False},
                                   {   'code': ">>> assert step_peak('mlp', mlp_sgd_batch, R.SGD()) <= odt.devices.get('stm32f746').training_memory_bytes, 'the batch you found does not fit the "
                                               "budget: does your search return one too many?'\n",
                                       'hidden': False,
                                       'locked': False}],
                      'scored': True,
                      'setup': '',
                      'teardown': '',
                      'type': 'doctest'}]}
