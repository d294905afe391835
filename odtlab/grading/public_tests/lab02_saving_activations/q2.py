OK_FORMAT = True

test = {   'name': 'q2',
    'points': [0, 0],
    'suites': [   {   'cases': [   {'code': ">>> assert best_segments in SEGMENT_CHOICES, f'best_segments should be one of {SEGMENT_CHOICES}'\n", 'hidden': False, 'locked': False},
                                   {   'code': ">>> assert isinstance(best_segments_peak, int) and best_segments_peak > 0, 'best_segments_peak is a number of bytes (an int)'\n",
                                       'hidden': False,
                                       'locked': False}],
                      'scored': True,
                      'setup': '',
                      'teardown': '',
                      'type': 'doctest'}]}
