OK_FORMAT = True

test = {   'name': 'q3',
    'points': [0],
    'suites': [   {   'cases': [{'code': ">>> assert dominant_mbv2 in CATEGORIES and dominant_mlp_adam in CATEGORIES, f'use one of {CATEGORIES}'\n", 'hidden': False, 'locked': False}],
                      'scored': True,
                      'setup': '',
                      'teardown': '',
                      'type': 'doctest'}]}
