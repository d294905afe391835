OK_FORMAT = True

test = {   'name': 'q2',
    'points': [0, 0, 0, 0, 0],
    'suites': [   {   'cases': [   {   'code': ">>> assert DEVICE in ENERGY_BUDGET_J, f'DEVICE must be one of {sorted(ENERGY_BUDGET_J)}, the devices with an energy budget'\n",
                                       'hidden': False,
                                       'locked': False},
                                   {   'code': '>>> assert isinstance(RECIPE, odt.recipes.Recipe) and isinstance(EPOCHS, int) and isinstance(BATCH_SIZE, int) and (EPOCHS >= 1) and (BATCH_SIZE >= 1), '
                                               "'RECIPE must be an odt.recipes.Recipe(...), EPOCHS and BATCH_SIZE positive ints'\n",
                                       'hidden': False,
                                       'locked': False},
                                   {   'code': ">>> assert my_report.fits, f'your recipe does not fit {my_report.device}: peak {my_report.peak_bytes} bytes > budget {my_report.budget_bytes} bytes "
                                               "(train fewer parameters or use a smaller batch)'\n",
                                       'hidden': False,
                                       'locked': False},
                                   {   'code': ">>> assert my_report.energy_per_day_j <= ENERGY_BUDGET_J[my_report.device], f'your tutor spends {my_report.energy_per_day_j * 1000000.0:.1f} µJ a day "
                                               "on {my_report.device}, over the budget of {ENERGY_BUDGET_J[my_report.device] * 1000000.0:.1f} µJ: fewer epochs, a larger batch or another device'\n",
                                       'hidden': False,
                                       'locked': False},
                                   {   'code': '>>> assert my_report.gain > 0, f"on this cohort your tutor does not beat the population model: mean AUC {my_report.mean(\'auc_after\'):.4f} after vs '
                                               '{my_report.mean(\'auc_before\'):.4f} before (try another recipe or learning rate)"\n',
                                       'hidden': False,
                                       'locked': False}],
                      'scored': True,
                      'setup': '',
                      'teardown': '',
                      'type': 'doctest'}]}
