"""Gunicorn embedded in a program of its own, the custom-application pattern from Gunicorn's
documentation: `python standalone.py BIND NAME ACCESS_LOG WORKERS`. Its command line never
mentions gunicorn; with setproctitle installed the master retitles itself
`gunicorn: master [NAME]`, without it the title stays `python standalone.py ...`.
"""

import sys

from gunicorn.app.base import BaseApplication

from hostile import application


class Standalone(BaseApplication):
    def __init__(self, options):
        self.options = options
        super().__init__()

    def load_config(self):
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        return application


if __name__ == "__main__":
    bind, name, access_log, workers = sys.argv[1:5]
    Standalone(
        {
            "bind": bind,
            "proc_name": name,
            "workers": int(workers),
            "accesslog": access_log,
            "access_log_format": "%(m)s %(U)s %(s)s %(b)s %(D)s",
            "control_socket": access_log + ".ctl",
        }
    ).run()
