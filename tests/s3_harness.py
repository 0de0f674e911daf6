"""A real S3 HTTP endpoint for the tests: moto's server on 127.0.0.1, with authentication on (an
IAM user and key are made first, so wrong credentials are refused), behind a TCP proxy that a
test can cut and restore to make the endpoint vanish mid-run without losing the stored objects."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import boto3

from exporter.catalog import NAMESPACE_VARIABLE
from tests.pg_harness import free_port

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


class TcpProxy:
    """Forwards 127.0.0.1:port to a backend port; stop() refuses connections until start()."""

    def __init__(self, backend_port: int) -> None:
        self.backend_port = backend_port
        self.port = free_port()
        self._server: socket.socket | None = None
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> None:
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(64)
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def stop(self) -> None:
        """Close the listener and cut every open connection."""
        with self._lock:
            if self._server is not None:
                # shutdown wakes the accepting thread, so the port is free right away
                with contextlib.suppress(OSError):
                    self._server.shutdown(socket.SHUT_RDWR)
                self._server.close()
                self._server = None
            for conn in self._connections:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            self._connections.clear()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                if self._server is not server:
                    return  # stopped
                time.sleep(0.05)  # a passing failure (out of descriptors, say): go on serving
                continue
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        """One connection, piped both ways; both sockets closed and forgotten once it ends (a
        long session makes tens of thousands: kept open, they would use up the descriptors)."""
        try:
            backend = socket.create_connection(("127.0.0.1", self.backend_port))
        except OSError:
            client.close()
            return
        pair = [client, backend]
        with self._lock:
            self._connections += pair
        back = threading.Thread(target=self._pipe, args=(backend, client), daemon=True)
        back.start()
        self._pipe(client, backend)
        back.join()
        with self._lock:
            for conn in pair:
                if conn in self._connections:
                    self._connections.remove(conn)
                conn.close()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)


@dataclass
class S3Endpoint:
    process: subprocess.Popen[bytes]
    proxy: TcpProxy
    key_id: str = ""
    secret: str = ""
    region: str = "us-east-1"
    buckets: list[str] = field(default_factory=list)
    # the Glue catalog of the server is shared by the session: each test gets its namespace
    namespace: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.proxy.port}"

    def env(self, **overrides: str) -> dict[str, str]:
        """AWS SDK variables pointing at this endpoint with valid credentials."""
        values = {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": self.key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
        }
        if self.namespace:
            values[NAMESPACE_VARIABLE] = self.namespace
        values.update(overrides)
        return values

    def client(self) -> S3Client:
        return self.service("s3")  # type: ignore[no-any-return]

    def service(self, name: str) -> Any:
        """A boto3 client of this endpoint for `name` (s3, glue)."""
        return boto3.client(
            name,  # type: ignore[call-overload]
            endpoint_url=self.url,
            aws_access_key_id=self.key_id,
            aws_secret_access_key=self.secret,
            region_name=self.region,
        )

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)
        self.buckets.append(name)

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = (
            self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        )
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


def start_s3() -> S3Endpoint:
    port = free_port()
    env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT="3")
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError("moto's S3 server did not start") from None
            time.sleep(0.1)
    proxy = TcpProxy(port)
    proxy.start()
    endpoint = S3Endpoint(process, proxy)
    # the three unauthenticated actions make the user the tests act as
    iam = boto3.client(
        "iam",
        endpoint_url=endpoint.url,
        aws_access_key_id="bootstrap",
        aws_secret_access_key="bootstrap",
        region_name=endpoint.region,
    )
    iam.create_user(UserName="lake-writer")
    iam.put_user_policy(
        UserName="lake-writer",
        PolicyName="lake",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
            }
        ),
    )
    key = iam.create_access_key(UserName="lake-writer")["AccessKey"]
    endpoint.key_id, endpoint.secret = key["AccessKeyId"], key["SecretAccessKey"]
    return endpoint


def stop_s3(endpoint: S3Endpoint) -> None:
    endpoint.proxy.stop()
    endpoint.process.terminate()
    try:
        endpoint.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        endpoint.process.kill()
