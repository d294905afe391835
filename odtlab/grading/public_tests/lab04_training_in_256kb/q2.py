OK_FORMAT = True

test = {   'name': 'q2',
    'points': [0, 0, 0],
    'suites': [   {   'cases': [   {   'code': '>>> _g = torch.ones(3, 2, 1, 1)\n>>> assert qas_scale(_g, torch.tensor([1.0, 2.0, 0.5])).shape == _g.shape, "keep the gradient\'s shape"\n',
                                       'hidden': False,
                                       'locked': False},
                                   {   'code': ">>> assert torch.equal(qas_scale(torch.ones(3, 2, 1, 1), torch.tensor([1.0, 2.0, 0.5]))[:, 0, 0, 0], torch.tensor([1.0, 0.25, 4.0])), 'channel c is "
                                               "multiplied by scale[c] ** -2'\n",
                                       'hidden': False,
                                       'locked': False},
                                   {'code': ">>> assert isinstance(ratio_qas, float) and isinstance(ratio_fp32, float), 'use .item() for Python floats'\n", 'hidden': False, 'locked': False}],
                      'scored': True,
                      'setup': '',
                      'teardown': '',
                      'type': 'doctest'}]}
