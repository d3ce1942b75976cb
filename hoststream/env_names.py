"""How settings are named in the environment: ``HOSTSTREAM_<NAME>`` and ``HOSTSTREAM_<NAME>_FILE``.

Apart from :mod:`hoststream.config`, so that what reads the environment without
the settings' models (the agent process, secret file watches) names them alike.
"""

from __future__ import annotations

__all__ = ["ENV_PREFIX", "FILE_SUFFIX"]

ENV_PREFIX = "HOSTSTREAM_"
#: ``HOSTSTREAM_<NAME>_FILE`` gives a secret setting as the path of a file holding it,
#: the convention of Docker and Kubernetes secrets and of secret-store agents.
FILE_SUFFIX = "_FILE"
