"""An app module whose import waits for a trigger file, then fails as the file says.

The path comes from the LATE_FAIL_TRIGGER environment variable (set with Gunicorn's --env).
The worker blocks while importing this module until the file exists, so a test can first
stop the master and then let the worker fail. The file holds one word:

  missing   the import finishes without defining `application`: Gunicorn's AppImportError,
            the worker exits with code 4 (app load error)
  raise     the import raises: the worker exits with code 3 (boot error)
"""

import os
import time

_trigger = os.environ["LATE_FAIL_TRIGGER"]
while not os.path.exists(_trigger):
    time.sleep(0.02)

with open(_trigger) as _file:
    _mode = _file.read().strip()

if _mode == "raise":
    raise RuntimeError("late_fail was told to fail its import")
