"""The public https URL for the lab's server: `tunnel` (the `Tunnel`), `agent` (the ngrok agent's private
config file and why it quit), `processes` (the agents labkit started, across kernels), `errors` (pyngrok's
failures in plain words, authtokens redacted).

May import: the foundations only.
"""
