OK_FORMAT = True

test = {   'name': 'q3',
    'points': [0, 0],
    'suites': [   {   'cases': [   {   'code': ">>> assert isinstance(program, odt.export.ExportedTraining), 'program must be what odt.export.export_training returns'\n",
                                       'hidden': False,
                                       'locked': False},
                                   {   'code': ">>> assert isinstance(runtime_losses, list) and len(runtime_losses) == 10, 'runtime_losses: one loss per batch, from program.train(batches)'\n",
                                       'hidden': False,
                                       'locked': False}],
                      'scored': True,
                      'setup': '',
                      'teardown': '',
                      'type': 'doctest'}]}
