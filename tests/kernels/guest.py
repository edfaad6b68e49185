"""The kernel-matrix run inside the guest: observer, Gunicorn, an exact request mix.

Runs as root in the virtiofs root filesystem, chrooted by the initramfs /init. Everything
it learns goes into files under OUT, which the host reads once the guest has powered off;
the host, not this script, judges the numbers. Progress lines go to the serial console.

Inputs, written by the host into /opt/kernel-matrix before the boot:
  gunicorn-observer   the observer binary built on the host
  apps/app.py         the WSGI app of the integration tests
  mix.txt             one "path count" line per kind of request to send
"""

import http.client
import os
import re
import signal
import subprocess
import sys
import time
import traceback

HOME = "/opt/kernel-matrix"
OUT = os.path.join(HOME, "out")
# Gunicorn and its dependencies, installed from the host with `pip install --target`.
SITE = "/opt/python"

OBSERVER_PORT = 9464
GUNICORN_PORT = 8000
# Generous: under TCG the verifier, Python's start-up and Gunicorn's boot are all slow.
READY_TIMEOUT = 180
COUNT_TIMEOUT = 60
# Label values here never hold quotes or backslashes.
LABEL = re.compile(r'(\w+)="([^"]*)"')


def log(message):
    print(f"kernel-matrix: {message}", flush=True)


def write(name, text):
    with open(os.path.join(OUT, name), "w") as f:
        f.write(text)


def get(port, path):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        conn.close()


def wait_until(what, timeout, check, process=None):
    """Polls check() until it returns something truthy; fails early if process exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what}: the process exited with {process.returncode}")
        try:
            found = check()
        except OSError:
            found = None
        if found:
            return found
        time.sleep(0.5)
    raise RuntimeError(f"{what}: not within {timeout} s")


def samples(text, name):
    """(labels, value) of every series of `name` in an exposition."""
    found = []
    for line in text.splitlines():
        if line.startswith(name + "{"):
            labels, value = line[len(name) + 1 :].rsplit("} ", 1)
            found.append((dict(LABEL.findall(labels)), float(value)))
        elif line.startswith(name + " "):
            found.append(({}, float(line.rsplit(" ", 1)[1])))
    return found


def total(text, name):
    return sum(value for _, value in samples(text, name))


def worker_pids(text):
    return sorted(labels["pid"] for labels, value in samples(text, "gunicorn_worker_info") if value == 1)


def metrics():
    status, text = get(OBSERVER_PORT, "/metrics")
    return text if status == 200 else ""


def read_mix():
    mix = []
    with open(os.path.join(HOME, "mix.txt")) as f:
        for line in f:
            if line.strip():
                path, count = line.split()
                mix.append((path, int(count)))
    return mix


def send(mix, answered):
    for path, count in mix:
        for _ in range(count):
            status, _ = get(GUNICORN_PORT, path)
            answered[(path, status)] = answered.get((path, status), 0) + 1


def stop(process, name):
    """SIGTERM, then the exit code; SIGKILL only if it ignores the request."""
    if process is None or process.poll() is not None:
        return None if process is None else process.returncode
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        log(f"{name} ignored SIGTERM for 30 s; killing it")
        process.kill()
        return process.wait()


def run(processes):
    write("uname.txt", os.uname().release + "\n")
    mix = read_mix()

    # The observer first, so Gunicorn is found through the exec and fork tracepoints the
    # matrix exists to check, not only through the /proc scan.
    log("starting the observer")
    observer_log = open(os.path.join(OUT, "observer.log"), "w")
    observer = subprocess.Popen(
        [
            os.path.join(HOME, "gunicorn-observer"),
            "--listen",
            f"127.0.0.1:{OBSERVER_PORT}",
            # No rescan during the run: Gunicorn's master must be found by the exec
            # tracepoint and its workers by the fork one, the paths that differ by kernel.
            "--rescan-secs",
            "3600",
            # Heartbeats are read on the sample tick; a short one lets the run settle sooner.
            "--sample-secs",
            "1",
        ],
        stdout=observer_log,
        stderr=subprocess.STDOUT,
        env={"GUNICORN_OBSERVER_LOG": "info", "PATH": "/usr/bin:/bin"},
    )
    processes["observer"] = observer
    wait_until(
        "observer ready",
        READY_TIMEOUT,
        lambda: get(OBSERVER_PORT, "/readyz")[0] == 200,
        observer,
    )
    log("observer ready")

    gunicorn_log = open(os.path.join(OUT, "gunicorn.log"), "w")
    gunicorn = subprocess.Popen(
        [
            "python3",
            "-m",
            "gunicorn",
            "--chdir",
            os.path.join(HOME, "apps"),
            "--workers",
            "2",
            "--worker-class",
            "sync",
            "--bind",
            f"127.0.0.1:{GUNICORN_PORT}",
            "--name",
            "matrix",
            "app:application",
        ],
        stdout=gunicorn_log,
        stderr=subprocess.STDOUT,
        env={"PYTHONPATH": SITE, "PATH": "/usr/bin:/bin"},
    )
    processes["gunicorn"] = gunicorn
    # Gunicorn's listening socket exists before it forks, so once the observer knows both
    # workers every request is theirs. No readiness request: it would race the discovery.
    wait_until(
        "observer sees 2 workers",
        READY_TIMEOUT,
        lambda: total(metrics(), "gunicorn_workers") == 2,
        gunicorn,
    )
    log("the observer sees Gunicorn's 2 workers")

    answered = {}
    send(mix, answered)

    # A worker killed from outside exercises what moves between kernels beyond the socket
    # tracepoints: signal_generate's record layout, task_struct's exit_code, and the fork
    # of the replacement, which must then be followed from its first request.
    before = worker_pids(metrics())
    victim = int(before[0])
    log(f"killing worker {victim}")
    os.kill(victim, signal.SIGKILL)

    def replaced():
        pids = worker_pids(metrics())
        return len(pids) == 2 and str(victim) not in pids

    # The host judges the restart's reason; here only the replacement matters.
    wait_until("a replacement worker seen", READY_TIMEOUT, replaced, gunicorn)
    log("the replacement worker is seen")
    send(mix, answered)

    write(
        "client.txt",
        "".join(f"{path} {status} {n}\n" for (path, status), n in sorted(answered.items())),
    )
    sent = sum(answered.values())
    log(f"sent {sent} requests")

    # Counting lags the answers by the observer's drain interval, heartbeats by its sample
    # tick; wait for the total and a heartbeat of each worker, then leave the judging of
    # each number to the host.
    def settled():
        text = metrics()
        counted = total(text, "gunicorn_worker_requests_total")
        return counted >= sent and len(samples(text, "gunicorn_worker_heartbeat_age_seconds")) == 2

    try:
        wait_until("all requests counted", COUNT_TIMEOUT, settled)
    except RuntimeError as err:
        log(str(err))
    write("metrics.txt", metrics())

    write("gunicorn_exit.txt", f"{stop(gunicorn, 'gunicorn')}\n")
    write("observer_exit.txt", f"{stop(observer, 'observer')}\n")


def main():
    os.makedirs(OUT, exist_ok=True)
    processes = {}
    try:
        run(processes)
        write("done.txt", "ok\n")
        log("done")
        return 0
    except Exception:
        write("error.txt", traceback.format_exc())
        # What the observer saw so far, for the host to show beside the error.
        try:
            write("metrics.txt", metrics())
        except OSError:
            pass
        log("failed:\n" + traceback.format_exc())
        for name, process in processes.items():
            stop(process, name)
        return 1


if __name__ == "__main__":
    sys.exit(main())
