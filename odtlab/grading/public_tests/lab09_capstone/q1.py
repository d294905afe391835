OK_FORMAT = True

test = {   'name': 'q1',
    'points': [0, 0, 0],
    'suites': [   {   'cases': [   {   'code': '>>> assert isinstance(my_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]), float) and abs(my_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) - 0.75) < 1e-09, '
                                               "'my_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) should be the float 0.75, the example worked out above'\n",
                                       'hidden': False,
                                       'locked': False},
                                   {   'code': ">>> assert abs(my_auc([0.3, 0.3, 0.3, 0.9], [0, 1, 0, 1]) - 0.75) < 1e-09, 'three tied predictions must share the mean of their ranks (here 2, 2, 2): "
                                               "a tied (right, wrong) pair counts a half'\n",
                                       'hidden': False,
                                       'locked': False},
                                   {   'code': '>>> assert isinstance(population_auc, float) and 0.4 < population_auc < 0.8, "population_auc is the mean over the students of the population model\'s '
                                               'AUC on their held-out answers: a float near 0.6"\n',
                                       'hidden': False,
                                       'locked': False}],
                      'scored': True,
                      'setup': '',
                      'teardown': '',
                      'type': 'doctest'}]}
