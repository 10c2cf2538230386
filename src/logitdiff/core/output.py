"""What the libraries underneath may print: decided once, by the entry point, before they are imported.

Deprecation notices of third-party libraries (a transformers FutureWarning on every model load) are
for their maintainers, not for someone running an experiment: hidden unless `-v`. When stderr is not a
terminal (a batch job's log), the libraries' own progress bars are turned off: their `\\r` redraws
would make one endless log line; our loops log plain lines instead (core/progress.py).
"""

from __future__ import annotations

import os
import sys
import warnings


def configure_output(verbose: bool) -> None:
    if verbose:
        warnings.simplefilter("default")  # every deprecation once per place, ours and the libraries'
    else:
        for category in (FutureWarning, DeprecationWarning, PendingDeprecationWarning):
            warnings.filterwarnings("ignore", category=category)
    if not sys.stderr.isatty():
        # Read when tqdm / huggingface_hub create a bar: the libraries' bars (GGUF conversion, weight
        # loading, downloads) stay silent; core.progress passes its own settings explicitly.
        os.environ.setdefault("TQDM_DISABLE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
