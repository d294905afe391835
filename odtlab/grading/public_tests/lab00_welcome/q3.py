OK_FORMAT = True

test = {   'name': 'q3',
    'points': [0, 0],
    'suites': [   {   'cases': [   {'code': ">>> assert isinstance(devices_that_hold_mlp, list), 'devices_that_hold_mlp should be a list of device names'\n", 'hidden': False, 'locked': False},
                                   {   'code': ">>> assert set(devices_that_hold_mlp) <= set(odt.devices.available()), 'use the names from odt.devices.available()'\n"
                                               ">>> assert len(set(devices_that_hold_mlp)) == len(devices_that_hold_mlp), 'name each device once'\n",
                                       'hidden': False,
                                       'locked': False}],
                      'scored': True,
                      'setup': '',
                      'teardown': '',
                      'type': 'doctest'}]}
