OK_FORMAT = True

test = {   'name': 'q3',
    'points': [0, 0, 0],
    'suites': [   {   'cases': [   {   'code': ">>> assert isinstance(mask(0), np.ndarray) and mask(0).dtype == np.uint32 and (len(mask(0)) == len(encoded[0])), 'mask(u) returns a uint32 NumPy array "
                                               "as long as encoded[u] (uint32 arithmetic wraps modulo 2**32 by itself)'\n",
                                       'hidden': False,
                                       'locked': False},
                                   {   'code': ">>> assert not np.array_equal(mask(1), encoded[1]), 'mask(1) is the plain encoding: add the self-mask and the pairwise masks'\n",
                                       'hidden': False,
                                       'locked': False},
                                   {   'code': '>>> _selfless = [mask(_u) - trust.prg(keys[_u].self_seed, 5) for _u in range(3)]\n'
                                               '>>> assert np.array_equal(_selfless[0] + _selfless[1] + _selfless[2], encoded[0] + encoded[1] + encoded[2]), "the pairwise masks do not cancel in the '
                                               'sum: client u adds PRG(s_uv) for v > u and subtracts it for v < u, so that every pair\'s mask enters once with + and once with -"\n',
                                       'hidden': False,
                                       'locked': False}],
                      'scored': True,
                      'setup': '',
                      'teardown': '',
                      'type': 'doctest'}]}
