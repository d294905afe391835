OK_FORMAT = True

test = {   'name': 'q2',
    'points': [0, 0],
    'suites': [   {   'cases': [   {   'code': ">>> assert set(choices) == set(odt.devices.USER_TYPES), 'choices needs one entry for every user type of odt.devices.USER_TYPES'\n",
                                       'hidden': False,
                                       'locked': False},
                                   {   'code': ">>> assert all((c is None or c in odt.devices.POLICIES for c in choices.values())), 'each choice is a policy name from odt.devices.POLICIES, or "
                                               "None'\n",
                                       'hidden': False,
                                       'locked': False}],
                      'scored': True,
                      'setup': '',
                      'teardown': '',
                      'type': 'doctest'}]}
