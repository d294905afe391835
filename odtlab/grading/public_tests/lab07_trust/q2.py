OK_FORMAT = True

test = {   'name': 'q2',
    'points': [0, 0, 0],
    'suites': [   {   'cases': [   {   'code': ">>> assert isinstance(eps_z1, float) and 1 < eps_z1 < 20, 'eps_z1 is a Python float; a value above 20 means no subsampling: pass sample_rate = M / N, "
                                               "the chance that one phone is in a round'\n",
                                       'hidden': False,
                                       'locked': False},
                                   {'code': ">>> assert isinstance(z8, float) and 0.5 <= z8 <= 2.0, 'z8 is a Python float in the interval [0.5, 2.0] you bisect'\n", 'hidden': False, 'locked': False},
                                   {   'code': ">>> assert eps_z8_1000 > TARGET_EPSILON, 'ten times the rounds with the same noise must spend more than the target: call epsilon_after with "
                                               "rounds=1000 and z8'\n",
                                       'hidden': False,
                                       'locked': False}],
                      'scored': True,
                      'setup': '',
                      'teardown': '',
                      'type': 'doctest'}]}
