"""The device catalog: calibration files, Targets and Aer noise models of the served backends."""
