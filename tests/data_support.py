"""Shared by tests/test_data_*.py: small IDX data sets and a real HTTP mirror on 127.0.0.1."""
from __future__ import annotations

import gzip
import hashlib
import http.server
import threading
from pathlib import Path

import numpy as np

from zerodl.data.idx import idx_bytes

REPO = Path(__file__).resolve().parents[1]


def idx_set(n_train: int = 30, n_test: int = 20, seed: int = 0) -> dict[str, bytes]:
    """The four standard files (uncompressed IDX bytes) of a tiny random data set, every class present."""
    rng = np.random.default_rng(seed)
    out = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        out[f"{split}-images-idx3-ubyte"] = idx_bytes(rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        out[f"{split}-labels-idx1-ubyte"] = idx_bytes((np.arange(n) % 10).astype(np.uint8))
    return out


def sha256s(files: dict[str, bytes]) -> dict[str, str]:
    return {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}


def write_set(folder: Path, files: dict[str, bytes], gz: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return folder


class Mirror:
    """A real HTTP server on 127.0.0.1 (port 0) that counts requests.

    routes maps a URL path to (behaviour, body): "ok" serves the body;
    "slow" waits (until stopped) before answering, to trip a client timeout;
    "short" announces the full length but sends half and closes. Any other
    path is a 404.
    """

    def __init__(self):
        self.routes: dict[str, tuple[str, bytes]] = {}
        self.requests: list[str] = []
        self.release = threading.Event()
        mirror = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                mirror.requests.append(self.path)
                behaviour, body = mirror.routes.get(self.path, ("missing", b""))
                if behaviour == "missing":
                    self.send_error(404)
                    return
                if behaviour == "slow":
                    mirror.release.wait(10)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body if behaviour == "ok" else body[: len(body) // 2])

            def log_message(self, *args):  # keep pytest output clean
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def serve(self, prefix: str, files: dict[str, bytes], behaviour: str = "ok") -> str:
        """Serve NAME.gz for each file under /prefix/; return that mirror's base URL."""
        for name, data in files.items():
            self.routes[f"/{prefix}/{name}.gz"] = (behaviour, gzip.compress(data))
        return f"{self.url}/{prefix}/"

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
