OK_FORMAT = True

test = {   'name': 'q3',
    'points': [0, 0],
    'suites': [   {   'cases': [   {'code': ">>> assert isinstance(my_scheme, R.SparseUpdate), 'my_scheme must be an R.SparseUpdate(...)'\n", 'hidden': False, 'locked': False},
                                   {   'code': ">>> assert my_sram <= mcu.training_memory_bytes, f'{fmt(my_sram)} does not fit the {fmt(mcu.training_memory_bytes)} budget'\n",
                                       'hidden': False,
                                       'locked': False}],
                      'scored': True,
                      'setup': '',
                      'teardown': '',
                      'type': 'doctest'}]}
