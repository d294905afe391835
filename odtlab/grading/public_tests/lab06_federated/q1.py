OK_FORMAT = True

test = {   'name': 'q1',
    'points': [0, 0, 0],
    'suites': [   {   'cases': [   {   'code': ">>> assert isinstance(fedavg(three_results), dict) and set(fedavg(three_results)) == {'weight', 'bias'}, 'return a dict with one tensor for every "
                                               "parameter name of the results'\n",
                                       'hidden': False,
                                       'locked': False},
                                   {   'code': ">>> _same = {'w': torch.tensor([1.0, -2.0])}\n"
                                               ">>> assert torch.allclose(fedavg([(_same, 3), (_same, 5)])['w'], _same['w']), 'the mean of identical models must be that model: the weights n_k / n "
                                               "add up to 1'\n",
                                       'hidden': False,
                                       'locked': False},
                                   {   'code': ">>> _mixed = fedavg([({'w': torch.zeros(1)}, 1), ({'w': torch.full((1,), 4.0)}, 3)])['w']\n"
                                               ">>> assert not torch.allclose(_mixed, torch.full((1,), 2.0)), 'each client must count by its number of examples, not once each'\n",
                                       'hidden': False,
                                       'locked': False}],
                      'scored': True,
                      'setup': '',
                      'teardown': '',
                      'type': 'doctest'}]}
