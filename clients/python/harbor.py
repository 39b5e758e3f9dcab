"""What the Python client tests share: the release binary started on a free loopback port, and
a local HTTP server that plays the application's side (it serves the application's @context
and receives notifications). Imports no client library, so both virtual environments use it."""

import json
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CORE_CONTEXT = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.9.jsonld"

# The application's own @context: the Smart Data Models terms the tests use, each mapped to
# the IRI the Smart Data Models publish for it (`status` and `location` are the core
# context's). Served by the Receiver at /context.jsonld.
APP_CONTEXT = {
    "@context": {
        "OffStreetParking": "https://smartdatamodels.org/dataModel.Parking/OffStreetParking",
        "AirQualityObserved": "https://smartdatamodels.org/dataModel.Environment/AirQualityObserved",
        "availableSpotNumber": "https://smartdatamodels.org/dataModel.Parking/availableSpotNumber",
        "totalSpotNumber": "https://smartdatamodels.org/dataModel.Parking/totalSpotNumber",
        "category": "https://smartdatamodels.org/dataModel.Parking/category",
        "name": "https://smartdatamodels.org/name",
        "address": "https://smartdatamodels.org/address",
        "no2": "https://smartdatamodels.org/dataModel.Environment/no2",
        "pm10": "https://smartdatamodels.org/dataModel.Environment/pm10",
        "airQualityLevel": "https://smartdatamodels.org/dataModel.Environment/airQualityLevel",
        "dateObserved": "https://smartdatamodels.org/dateObserved",
    }
}


def binary() -> Path:
    """The release binary: $INFOHARBOR_BIN, or target/release/infoharbor of this checkout."""
    if os.environ.get("INFOHARBOR_BIN"):
        path = Path(os.environ["INFOHARBOR_BIN"])
    else:
        target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
        path = target / "release" / "infoharbor"
    if not path.is_file():
        raise RuntimeError(
            f"{path} does not exist: build it with `cargo build --release -p infoharbor` "
            "(scripts/test.sh does)"
        )
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """One broker process with a fresh data directory, stopped by `stop()`."""

    def __init__(self):
        self.dir = tempfile.TemporaryDirectory(prefix="infoharbor-clients-")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = Path(self.dir.name) / "broker.log"
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [
                    str(binary()),
                    "serve",
                    "--listen", f"127.0.0.1:{self.port}",
                    "--data-dir", str(Path(self.dir.name) / "data"),
                    "--egress-allow", "127.0.0.0/8,::1",
                    "--notify-retry-ms", "200",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "NO_COLOR": "1"},
            )
        self._wait_healthy()

    def _wait_healthy(self):
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the broker exited at start:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"the broker did not answer /health in 15 s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.dir.cleanup()


class Receiver:
    """The application's HTTP server on a free loopback port: GET /context.jsonld answers
    APP_CONTEXT, and every POST is kept as a notification (path, headers, JSON body)."""

    def __init__(self):
        self.notifications = []
        self.cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path != "/context.jsonld":
                    self.send_error(404)
                    return
                body = json.dumps(APP_CONTEXT).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/ld+json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"null")
                with receiver.cond:
                    receiver.notifications.append(
                        {"path": self.path, "headers": dict(self.headers), "body": body}
                    )
                    receiver.cond.notify_all()
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.context_url = f"{self.url}/context.jsonld"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait(self, path: str, predicate=lambda body: True, timeout: float = 10.0) -> dict:
        """The first notification POSTed to `path` whose body satisfies `predicate`."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for n in self.notifications:
                    if n["path"] == path and predicate(n["body"]):
                        return n
                left = deadline - time.monotonic()
                if left <= 0:
                    got = [n["body"] for n in self.notifications if n["path"] == path]
                    raise AssertionError(f"no matching notification at {path} in {timeout} s; got {got}")
                self.cond.wait(left)

    def received(self, path: str) -> list:
        with self.cond:
            return [n for n in self.notifications if n["path"] == path]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
