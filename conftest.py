"""Repository-wide pytest settings, loaded before any test or notebook runs.

nbmake starts each notebook's kernel as a child of this process, and kernels inherit its environment,
so the notebooks get their settings from here rather than from lines that readers would have to skip.
"""

from __future__ import annotations

import os

# Tests and notebooks never reach Vonage or ngrok, whatever the developer's .env says.
os.environ["LABKIT_MODE"] = "sandbox"
for _name in ("VONAGE_APPLICATION_ID", "VONAGE_PRIVATE_KEY", "NGROK_AUTHTOKEN", "PUBLIC_URL", "VONAGE_API_KEY",
              "VONAGE_API_SECRET", "VONAGE_API_HOST", "VONAGE_REST_HOST", "NGROK_DOMAIN", "LABKIT_SANDBOX_CHAOS"):
    os.environ.pop(_name, None)

# The sandbox's clock at twice real time: ringing, talks and streams take half as long, which keeps
# every notebook well under 20 s. (06 asks for speed=1 itself: it paces audio in real seconds.)
os.environ.setdefault("LABKIT_SANDBOX_SPEED", "2")

