"""The errors a user can cause; the CLI prints each as one red line with exit status 1.

``TfcovsegError`` is the family; raise the subclass that names what was wrong: the config
(``ConfigError``), the data (``DataError``: a dataset, a CT, a mask), or a weights file
(``WeightsError``). The message names the file or key, what was found and what was expected.
"""


class TfcovsegError(Exception):
    """A problem with the user's input (file, config, data), with the file and the problem."""

    def __init__(self, problem: str, path=None):
        self.problem = problem
        self.path = None if path is None else str(path)
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


class ConfigError(TfcovsegError):
    """A config file, override or option holds an unknown key or a value out of its range."""


class DataError(TfcovsegError):
    """A dataset, volume or mask cannot be used as it is."""


class WeightsError(TfcovsegError):
    """A weights file does not fit the model it is meant for."""
