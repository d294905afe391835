OK_FORMAT = True

test = {   'name': 'q2',
    'points': [0, 0, 0],
    'suites': [   {   'cases': [   {   'code': ">>> assert len(skew_parts) == 10 and sorted((i for p in skew_parts for i in p)) == list(range(len(train))), 'skew_parts must share every example of "
                                               "train among 10 clients: use odt.data.partition'\n",
                                       'hidden': False,
                                       'locked': False},
                                   {   'code': '>>> _threes = torch.nonzero(labels == 3).flatten()[:20].tolist()\n'
                                               ">>> assert largest_class_share([_threes, iid_parts[0]])[0] == 1.0, 'a client that holds one class only has a largest-class share of 1.0'\n",
                                       'hidden': False,
                                       'locked': False},
                                   {   'code': ">>> assert all((isinstance(_a, float) and 0 <= _a <= 1 for _a in (acc_iid, acc_skew))), 'acc_iid and acc_skew are test accuracies, Python floats "
                                               "between 0 and 1'\n",
                                       'hidden': False,
                                       'locked': False}],
                      'scored': True,
                      'setup': '',
                      'teardown': '',
                      'type': 'doctest'}]}
