OK_FORMAT = True

test = {   'name': 'q1',
    'points': [0, 0, 0, 0],
    'suites': [   {   'cases': [   {   'code': ">>> assert all((odt.fl.update_norm(global_params, clip(global_params, _p, 1.0)) <= 1.0 + 1e-05 for _p, _ in results)), 'after clip(..., max_norm), the "
                                               "update params - global_params must have an L2 norm of at most max_norm'\n",
                                       'hidden': False,
                                       'locked': False},
                                   {   'code': ">>> _g = {'a': torch.zeros(2), 'b': torch.zeros(2)}\n"
                                               ">>> _p = {'a': torch.tensor([3.0, 4.0]), 'b': torch.tensor([3.0, 4.0])}\n"
                                               ">>> assert not torch.allclose(clip(_g, _p, 5.0)['a'], _p['a']), 'each tensor has norm 5 but the update as a whole has norm 5 * sqrt(2): take one norm "
                                               "over all tensors together, not one per tensor'\n",
                                       'hidden': False,
                                       'locked': False},
                                   {   'code': '>>> _small = results[0][0]\n'
                                               ">>> assert all((torch.allclose(clip(global_params, _small, 100.0)[_k], _small[_k]) for _k in _small)), 'an update shorter than max_norm must pass "
                                               "unchanged (the factor is min(1, C / norm))'\n",
                                       'hidden': False,
                                       'locked': False},
                                   {   'code': '>>> _quiet = dp_aggregate(global_params, results, clip_norm=100.0, noise_multiplier=0.0, clients_per_round=10, seed=0)\n'
                                               '>>> _want = {_k: global_params[_k] + sum((_p[_k] - global_params[_k] for _p, _ in results)) / 10 for _k in global_params}\n'
                                               ">>> assert all((torch.allclose(_quiet[_k], _want[_k], atol=1e-05) for _k in _want)), 'without noise and clipping, the new model is global + (sum of "
                                               "the updates) / clients_per_round: divide by the expected number of clients, not by len(results), and do not weigh by examples'\n",
                                       'hidden': False,
                                       'locked': False}],
                      'scored': True,
                      'setup': '',
                      'teardown': '',
                      'type': 'doctest'}]}
