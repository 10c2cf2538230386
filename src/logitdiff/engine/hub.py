"""Is the Hugging Face hub reachable? Decided once per process by a short TCP probe."""

import os
import socket
from functools import cache


@cache
def hub_reachable(timeout_s: float = 3.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    try:
        with socket.create_connection(("huggingface.co", 443), timeout=timeout_s):
            return True
    except OSError:
        return False
