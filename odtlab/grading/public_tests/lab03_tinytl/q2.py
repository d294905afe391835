OK_FORMAT = True

test = {   'name': 'q2',
    'points': [0, 0],
    'suites': [   {   'cases': [   {   'code': ">>> assert isinstance(n_branches, int) and n_branches > 0, 'n_branches is the length of the list add_lite_residuals returns'\n",
                                       'hidden': False,
                                       'locked': False},
                                   {'code': ">>> assert isinstance(max_change, float), 'max_change should be a Python float (use .item())'\n", 'hidden': False, 'locked': False}],
                      'scored': True,
                      'setup': '',
                      'teardown': '',
                      'type': 'doctest'}]}
