"""CPU seconds per GetObject of a small object, client by client, against moto server.

    python benchmarks/s3_get.py [--gets 400] [--runs 5] [--threads 1,8]

Objects: the 55 public invictus CloudTrail files, gzipped as CloudTrail writes them (0.6 to 52 KB,
7.7 KB on average), and one synthetic 256 KB object to show what grows with the size. moto runs
as in the tests (``ThreadedMotoServer``) in its own process on core 1; this process is pinned to
core 0 and reads its own CPU (every thread, native ones included) around ``--gets`` reads, one
thread or several at once (the daemon reads ``concurrency`` objects at a time). The clients run
alternately, each figure is the least of ``--runs`` (interference on a shared machine only adds),
and every read is checked against the bytes put.

Clients:
- ``boto3 defaults``: ``boto3.client("s3")`` as it comes;
- ``boto3 as forwarder/aws.py``: the settings the forwarder used for every call before;
- ``forwarder reader (awscrt)``: ``forwarder.sources.s3get.ObjectReader``, what the forwarder uses
  now: awscrt's S3 client, one plain GET, signed and retried in native code;
- ``awscrt S3Client GET_OBJECT``: the same client's auto-ranged download (what boto3's own CRT
  transfers use): ranged parts, for large objects;
- ``urllib3 + botocore SigV4``: botocore's signer on a bare urllib3 pool (the other well-kept
  pieces that keep signing, proxies and CA bundles; retries and region redirects would be ours);
- ``urllib3 unsigned``: no SDK and no signing at all, the floor of an HTTP GET here.
"""

from __future__ import annotations

import argparse
import gzip
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from servers.ports import free_port  # noqa: E402 - the tests' own helper

SHARED = Path(os.environ.get("FORWARDER_SHARED") or Path(__file__).resolve().parents[2] / "shared")
DATA = SHARED / "data" / "invictus-aws-dataset"
BUCKET = "bench-trail"
CLIENT_CORE, MOTO_CORE = 0, 1
MOTO = ("from moto.server import ThreadedMotoServer; import threading; "
        "ThreadedMotoServer(ip_address='127.0.0.1', port={port}, verbose=False).start(); threading.Event().wait()")

Get = Callable[[str], bytes]


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = [sys.executable, "-c", MOTO.format(port=port)]
    process = subprocess.Popen(["taskset", "-c", str(MOTO_CORE), *command], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=1)
            return process, url
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("moto server did not start")


def clients(url: str) -> dict[str, Get]:
    import awscrt.http
    import awscrt.s3
    import boto3
    import urllib3
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest

    from forwarder import aws
    from forwarder.sources.s3get import ObjectReader

    plain = boto3.client("s3")
    tuned = aws.client("s3", pool=10)
    reader = ObjectReader(None, None, 10)
    reader.get(BUCKET, "warm-up")  # the bucket's address, and the CRT client, made once
    credentials = boto3.Session().get_credentials().get_frozen_credentials()
    pool = urllib3.PoolManager(maxsize=10)
    ranged = reader._crt_client(False)  # the same native client, the other request type
    signing = reader._signing_config("us-east-1")
    host = url.removeprefix("http://")

    def crt_ranged(key: str) -> bytes:
        chunks: list[bytes] = []
        request = awscrt.http.HttpRequest("GET", f"/{BUCKET}/{key}", awscrt.http.HttpHeaders([("Host", host)]))
        ranged.make_request(type=awscrt.s3.S3RequestType.GET_OBJECT, request=request, signing_config=signing,
                            on_body=lambda chunk, **_: chunks.append(bytes(chunk))).finished_future.result()
        return b"".join(chunks)

    def signed_urllib3(key: str) -> bytes:
        request = AWSRequest("GET", f"{url}/{BUCKET}/{key}")
        S3SigV4Auth(credentials, "s3", "us-east-1").add_auth(request)
        return pool.request("GET", request.url, headers=dict(request.headers.items()), retries=urllib3.Retry(5)).data

    return {
        "boto3 defaults": lambda key: plain.get_object(Bucket=BUCKET, Key=key)["Body"].read(),
        "boto3 as forwarder/aws.py": lambda key: tuned.get_object(Bucket=BUCKET, Key=key)["Body"].read(),
        "forwarder reader (awscrt)": lambda key: reader.get(BUCKET, key),
        "awscrt S3Client GET_OBJECT": crt_ranged,
        "urllib3 + botocore SigV4": signed_urllib3,
        "urllib3 unsigned": lambda key: pool.request("GET", f"{url}/{BUCKET}/{key}").data,
    }


def cpu_per_get(get: Get, keys: list[str], bodies: dict[str, bytes], threads: int) -> float:
    def read(key: str) -> None:
        if get(key) != bodies[key]:
            raise SystemExit(f"{key}: the body read is not the one put")

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(read, keys[:20]))  # connections opened, caches warm
        start = time.process_time()
        futures: list[Future[None]] = [pool.submit(read, key) for key in keys]
        for future in futures:
            future.result()
        return (time.process_time() - start) / len(keys)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gets", type=int, default=400)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", default="1,8")
    args = parser.parse_args()
    moto, url = start_moto()
    os.environ.update(AWS_ENDPOINT_URL=url, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                      AWS_DEFAULT_REGION="us-east-1")
    os.sched_setaffinity(0, {CLIENT_CORE})
    try:
        import boto3

        setup = boto3.client("s3")
        setup.create_bucket(Bucket=BUCKET)
        small = {f"AWSLogs/{path.name}.gz": gzip.compress(path.read_bytes(), 6) for path in sorted(DATA.glob("*.json"))}
        large = {"large.json.gz": os.urandom(256 * 1024)}
        for key, body in {**small, **large, "warm-up": b"{}"}.items():
            setup.put_object(Bucket=BUCKET, Key=key, Body=body, ACL="public-read")  # for the unsigned floor
        sizes = sorted(len(body) for body in small.values())
        print(f"{len(small)} CloudTrail objects, {sizes[0]:,} to {sizes[-1]:,} bytes (mean {sum(sizes) / len(sizes):,.0f}); "
              f"moto on core {MOTO_CORE}, clients on core {CLIENT_CORE}; least of {args.runs} runs of {args.gets} reads")
        getters = clients(url)
        shapes = [(f"small, {threads} thread{'s' if threads > 1 else ''}", list(small), threads)
                  for threads in map(int, args.threads.split(","))]
        shapes.append(("256 KB, 1 thread", list(large), 1))
        bodies = {**small, **large}
        best: dict[tuple[str, str], float] = {}
        for _ in range(args.runs):
            for shape, names, threads in shapes:
                keys = [names[n % len(names)] for n in range(args.gets)]
                for name, get in getters.items():
                    cpu = cpu_per_get(get, keys, bodies, threads)
                    best[name, shape] = min(cpu, best.get((name, shape), cpu))
        print(f"\n{'client':28}" + "".join(f"{shape:>20}" for shape, _, _ in shapes) + "   (ms of CPU per GetObject)")
        for name in getters:
            print(f"{name:28}" + "".join(f"{best[name, shape] * 1000:20.3f}" for shape, _, _ in shapes))
        reference = "boto3 as forwarder/aws.py"
        print(f"\nagainst {reference}:")
        for name in getters:
            print(f"{name:28}" + "".join(f"{best[reference, shape] / best[name, shape]:19.2f}x" for shape, _, _ in shapes))
    finally:
        moto.kill()


if __name__ == "__main__":
    main()
