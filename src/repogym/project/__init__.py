"""What a person reads in a Python project to test it: pytest's configuration, test dependencies, how the
version is derived. Pure file reading, no sandbox: the environment layer builds on these facts."""
