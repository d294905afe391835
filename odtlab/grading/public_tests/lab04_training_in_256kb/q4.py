OK_FORMAT = True

test = {   'name': 'q4',
    'points': [0, 0],
    'suites': [   {   'cases': [   {'code': ">>> assert isinstance(lora_trainable(transformer, 4), int), 'return a Python int'\n", 'hidden': False, 'locked': False},
                                   {   'code': ">>> assert lora_trainable(transformer, 4) < sum((p.numel() for p in transformer.parameters())), 'LoRA trains far fewer numbers than the model has'\n",
                                       'hidden': False,
                                       'locked': False}],
                      'scored': True,
                      'setup': '',
                      'teardown': '',
                      'type': 'doctest'}]}
