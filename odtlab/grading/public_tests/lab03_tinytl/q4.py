OK_FORMAT = True

test = {   'name': 'q4',
    'points': [0, 0],
    'suites': [   {   'cases': [   {'code': ">>> assert isinstance(paper_parameter_bytes(bias_only), int), 'return an int number of bytes'\n", 'hidden': False, 'locked': False},
                                   {   'code': '>>> _all = sum((p.numel() for p in bias_only.parameters()))\n'
                                               ">>> assert paper_parameter_bytes(bias_only) != 4 * _all, 'that charges every parameter 4 bytes: frozen ones are stored in 8 bits'\n"
                                               ">>> assert paper_parameter_bytes(bias_only) != _all, 'that charges every parameter 1 byte: trained ones stay in 32 bits'\n",
                                       'hidden': False,
                                       'locked': False}],
                      'scored': True,
                      'setup': '',
                      'teardown': '',
                      'type': 'doctest'}]}
