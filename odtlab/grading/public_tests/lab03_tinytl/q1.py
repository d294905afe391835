OK_FORMAT = True

test = {   'name': 'q1',
    'points': [0, 0],
    'suites': [   {   'cases': [   {'code': ">>> assert isinstance(bias_only_names(backbone), set), 'return a set of parameter names'\n", 'hidden': False, 'locked': False},
                                   {   'code': ">>> assert 'classifier.weight' in bias_only_names(backbone), 'the classifier trains entirely, its weight too'\n"
                                               ">>> assert all((n in dict(backbone.named_parameters()) for n in bias_only_names(backbone))), 'use the names of model.named_parameters()'\n",
                                       'hidden': False,
                                       'locked': False}],
                      'scored': True,
                      'setup': '',
                      'teardown': '',
                      'type': 'doctest'}]}
