OK_FORMAT = True

test = {   'name': 'q1',
    'points': [0, 0, 0],
    'suites': [   {   'cases': [   {   'code': ">>> assert isinstance(layer_flops, int) and layer_flops % (64 * 512 * 256) == 0, 'layer_flops: a product of a (64 x 512) and a (512 x 256) matrix does "
                                               "64 * 512 * 256 multiply-adds, 2 FLOPs each'\n",
                                       'hidden': False,
                                       'locked': False},
                                   {   'code': '>>> assert roofline_s(2000000000.0, 0, phone) == 1000000000.0 / phone.macs_per_second[\'fp32\'], "roofline_s: with no bytes the time is the MACs '
                                               '(FLOPs / 2) over the device\'s fp32 MAC/s"\n',
                                       'hidden': False,
                                       'locked': False},
                                   {'code': '>>> assert bound in (\'compute\', \'memory\'), "bound must be the string \'compute\' or \'memory\'"\n', 'hidden': False, 'locked': False}],
                      'scored': True,
                      'setup': '',
                      'teardown': '',
                      'type': 'doctest'}]}
