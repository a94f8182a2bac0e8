"""Repository-wide pytest settings, loaded before any test or notebook runs.

nbmake starts each notebook's kernel as a child of this process, and kernels inherit its environment,
so the notebooks get their settings from here rather than from lines that readers would have to skip.
"""

from __future__ import annotations

import os
import tempfile
import uuid

# Tests and notebooks never reach Vonage or ngrok, whatever the developer's .env says.
os.environ["LABKIT_MODE"] = "sandbox"
for _name in ("VONAGE_APPLICATION_ID", "VONAGE_PRIVATE_KEY", "NGROK_AUTHTOKEN", "PUBLIC_URL", "VONAGE_API_KEY",
              "VONAGE_API_SECRET", "VONAGE_API_HOST", "VONAGE_REST_HOST", "NGROK_DOMAIN", "LABKIT_SANDBOX_CHAOS"):
    os.environ.pop(_name, None)

# The sandbox's clock at twice real time: ringing, talks and streams take half as long, which keeps
# every notebook well under 20 s. (06 asks for speed=1 itself: it paces audio in real seconds.)
os.environ.setdefault("LABKIT_SANDBOX_SPEED", "2")



def _kernels_on_unix_sockets() -> None:
    """nbmake's kernels talk over Unix sockets, not TCP ports.

    Why: jupyter_client picks a kernel's five ports by binding port 0 and letting go, and the kernel binds
    them a moment later; with four xdist workers starting kernels and servers, another process took one
    in between (CI count, stop 19: "Address already in use", then "Kernel died before replying to
    kernel_info", notebook 04). Unix sockets (jupyter_client's `ipc` transport) have no ports to lose.
    nbmake builds its NotebookClient with no config; this one passes the transport as traitlets config,
    which reaches the kernel manager the client makes (`KernelManager.transport` covers its subclasses).
    """
    if os.name != "posix":  # ipc is Unix sockets: elsewhere kernels stay on TCP
        return
    try:
        import nbmake.nb_run as nb_run
        from traitlets.config import Config
    except ImportError:  # nbmake is a test tool: `make test` installs it
        return
    plain = nb_run.NotebookClient
    if getattr(plain, "labkit_ipc", False):
        return

    class IpcNotebookClient(plain):  # type: ignore[misc,valid-type]
        labkit_ipc = True

        def __init__(self, *args, **kwargs) -> None:
            config = Config(kwargs.pop("config", None) or {})
            config.KernelManager.transport = "ipc"
            # The sockets' path prefix, absolute and this kernel's own: jupyter_client's default is relative
            # ("kernel-ipc"), and the kernel runs in the notebook's folder while its client runs here.
            config.KernelManager.ip = os.path.join(tempfile.gettempdir(), f"labkit-kernel-{uuid.uuid4().hex[:12]}")
            super().__init__(*args, config=config, **kwargs)

    nb_run.NotebookClient = IpcNotebookClient


_kernels_on_unix_sockets()
