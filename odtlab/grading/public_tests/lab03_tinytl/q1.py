OK_FORMAT = True

test = {   'name': 'q1',
    'points': 3,
    'suites': [   {   'cases': [   {'code': ">>> assert isinstance(bias_only_names(backbone), set), 'return a set of parameter names'\n", 'hidden': False, 'locked': False},
                                   {'code': ">>> assert 'classifier.weight' in bias_only_names(backbone), 'the classifier trains entirely'\n", 'hidden': False, 'locked': False}],
                      'scored': True,
                      'setup': '',
                      'teardown': '',
                      'type': 'doctest'}]}
