"""What the project's tests share: `sandbox` (in-process sandbox fixtures, the SDK client, audio
comparisons), `sandbox_process` (`labkit sandbox` as its own process: `labkit.testing.process`, which
ships with the package for the pytest plugin, re-exported), `server` (the lab's server on a thread),
`audio_checks`, and `fake_ngrok` (an offline stand-in for the ngrok agent).

On the import path through pytest's `pythonpath = ["tests"]` (pyproject.toml).
"""
