"""`labkit sandbox` in its own process, for the project's tests: the harness now ships with the package
(labkit/testing/process.py, what the pytest plugin's `vonage_sandbox` uses); kept here as the name the
tests import."""

from labkit.testing.process import READY, SandboxProcess, labkit_command

__all__ = ["READY", "SandboxProcess", "labkit_command"]
