"""The one exception type a user can cause; the CLI prints it as one red line."""


class TfcovsegError(Exception):
    """A problem with the user's input (file, config, data), with the file and the problem."""

    def __init__(self, problem: str, path=None):
        self.problem = problem
        self.path = None if path is None else str(path)
        super().__init__(f"{self.path}: {problem}" if self.path else problem)
