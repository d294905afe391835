OK_FORMAT = True

test = {   'name': 'q1',
    'points': [0, 0],
    'suites': [   {   'cases': [   {   'code': '>>> _m = nn.Sequential(nn.Linear(4, 3))\n'
                                               '>>> _x, _y = (torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2]))\n'
                                               '>>> _loss = accumulate_gradients(_m, _x, _y, 2)\n'
                                               ">>> assert isinstance(_loss, float), 'return the mean loss as a Python float (use .item())'\n"
                                               '>>> assert _m[0].weight.grad is not None, "call backward() on each chunk\'s loss so that p.grad fills up"\n',
                                       'hidden': False,
                                       'locked': False},
                                   {   'code': '>>> _m = nn.Sequential(nn.Linear(4, 3))\n'
                                               '>>> _x, _y = (torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2]))\n'
                                               '>>> _ = accumulate_gradients(_m, _x, _y, 3)\n'
                                               '>>> _g = _m[0].weight.grad.clone()\n'
                                               '>>> _m.zero_grad()\n'
                                               '>>> F.cross_entropy(_m(_x), _y).backward()\n'
                                               '>>> assert not torch.allclose(_g, 3 * _m[0].weight.grad, atol=1e-06), "with 3 chunks your gradient is 3 times too large: each chunk\'s loss is a mean '
                                               'over the chunk only"\n'
                                               '>>> assert torch.allclose(_g, _m[0].weight.grad, atol=1e-06), "the accumulated gradient differs from the full batch\'s: scale each chunk\'s loss by '
                                               'its share of the batch"\n',
                                       'hidden': False,
                                       'locked': False}],
                      'scored': True,
                      'setup': '',
                      'teardown': '',
                      'type': 'doctest'}]}
