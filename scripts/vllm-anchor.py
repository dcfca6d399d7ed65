#!/usr/bin/env python3
"""The anchor of `llm-stress bench-client --anchor vllm`: vLLM's own benchmark client driving a
running `llm-stress bench-server`, so both clients are measured on the same server, machine
and plan.

At run time it downloads vLLM's wheel at a pinned version from PyPI (`pip download --no-deps`,
cached), extracts `vllm/benchmarks/lib/endpoint_request_func.py` from it (nothing of vLLM is
copied into this repository) and loads that one file with importlib, in a virtual environment
of its own with the file's imports (aiohttp, regex, tqdm). It runs a closed loop like
llm-stress's: `--streams` workers, one unmeasured request per stream to open the connections,
then `--requests` measured requests of prompt `req-N` (the server logs its writes by N), each
with `async_request_openai_completions` on one shared aiohttp session set up as vLLM's
`bench serve` sets it up.

It prints one JSON line last: the user and system CPU of this process over the measured
requests (getrusage), the chunks and, with `--log`, every chunk's stamp minus the server's
write instant in ms (both clocks are CLOCK_MONOTONIC); or `{"skipped": REASON}` when Python,
the download or the packages are unavailable (exit status 0: a skipped anchor is not a failed
benchmark).

With `--sync` it prints `{"sync": "start", "pid": PID}` right before the measured requests and
`{"sync": "end"}` right after them, and waits for a line on its standard input after each:
`bench-client` samples this process's user time in between, as it samples its own.

    python3 scripts/vllm-anchor.py --url http://127.0.0.1:PORT --streams 64 --requests 256 \\
        --tokens 256 [--log] [--sync]

The cache (wheel, extracted file, virtual environment) is `$LLM_STRESS_ANCHOR_DIR`, else
`$CARGO_TARGET_DIR/vllm-anchor`, else `target/vllm-anchor`.
"""

import argparse
import asyncio
import glob
import importlib.util
import json
import os
import resource
import subprocess
import sys
import time
import urllib.request
import zipfile

VLLM_VERSION = "0.33.0"
MEMBER = "vllm/benchmarks/lib/endpoint_request_func.py"
PACKAGES = ["aiohttp==3.13.2", "regex==2025.11.3", "tqdm==4.67.1"]
IN_VENV = "LLM_STRESS_ANCHOR_IN_VENV"


def say(message):
    print(f"vllm-anchor: {message}", file=sys.stderr, flush=True)


def skip(reason):
    print(json.dumps({"skipped": reason}), flush=True)
    sys.exit(0)


def cache_dir():
    explicit = os.environ.get("LLM_STRESS_ANCHOR_DIR")
    if explicit:
        return explicit
    target = os.environ.get("CARGO_TARGET_DIR") or "target"
    return os.path.join(target, "vllm-anchor")


def run_quietly(command, what):
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    except (OSError, subprocess.TimeoutExpired) as e:
        skip(f"{what}: {e}")
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        skip(f"{what} failed: {' / '.join(tail)}")


def request_func_file(cache):
    """The pinned version's endpoint_request_func.py, downloaded and extracted once."""
    extracted = os.path.join(cache, f"endpoint_request_func-{VLLM_VERSION}.py")
    if os.path.exists(extracted):
        return extracted
    wheels = os.path.join(cache, "wheel")
    pattern = os.path.join(wheels, f"vllm-{VLLM_VERSION}-*.whl")
    if not glob.glob(pattern):
        say(f"downloading vLLM {VLLM_VERSION}'s wheel from PyPI (about 340 MB, once)")
        run_quietly(
            [sys.executable, "-m", "pip", "download", f"vllm=={VLLM_VERSION}", "--no-deps",
             "--only-binary", ":all:", "--dest", wheels, "--quiet"],
            f"pip download vllm=={VLLM_VERSION}",
        )
    found = glob.glob(pattern)
    if not found:
        skip(f"no vllm-{VLLM_VERSION} wheel after the download")
    try:
        with zipfile.ZipFile(found[0]) as wheel:
            source = wheel.read(MEMBER)
    except (OSError, KeyError, zipfile.BadZipFile) as e:
        skip(f"cannot read {MEMBER} from {found[0]}: {e}")
    with open(extracted + ".part", "wb") as out:
        out.write(source)
    os.replace(extracted + ".part", extracted)
    return extracted


def ensure_venv(cache):
    """Re-runs this script in a virtual environment with the request function's imports."""
    if os.environ.get(IN_VENV):
        return
    venv = os.path.join(cache, "venv")
    python = os.path.join(venv, "bin", "python")
    ready = os.path.join(venv, "ready-" + "-".join(PACKAGES))
    if not os.path.exists(ready):
        say(f"making a virtual environment in {venv} with {', '.join(PACKAGES)}")
        run_quietly([sys.executable, "-m", "venv", venv], "python3 -m venv")
        run_quietly([python, "-m", "pip", "install", "--quiet", *PACKAGES], "pip install")
        open(ready, "w").close()
    os.environ[IN_VENV] = "1"
    os.execv(python, [python, os.path.abspath(__file__), *sys.argv[1:]])


def load(path):
    spec = importlib.util.spec_from_file_location("vllm_endpoint_request_func", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sync(point, args):
    """With --sync: says where the measured requests are and waits for the go-ahead."""
    if not args.sync:
        return
    print(json.dumps({"sync": point, "pid": os.getpid()}), flush=True)
    sys.stdin.readline()


async def closed_loop(funcs, args):
    import aiohttp

    # As vLLM's `bench serve` sets up its session.
    connector = aiohttp.TCPConnector(
        limit=args.streams,
        limit_per_host=args.streams,
        ttl_dns_cache=300,
        use_dns_cache=True,
        keepalive_timeout=60,
        enable_cleanup_closed=True,
        force_close=False,
    )
    api_url = args.url.rstrip("/") + "/v1/completions"
    async with aiohttp.ClientSession(
        connector=connector, trust_env=False, timeout=funcs.AIOHTTP_TIMEOUT
    ) as session:

        def request(prompt):
            return funcs.RequestFuncInput(
                prompt=prompt,
                api_url=api_url,
                prompt_len=1,
                output_len=args.tokens,
                model="bench",
            )

        async def drive(prompts):
            queue = list(reversed(prompts))
            outputs = []

            async def worker():
                while queue:
                    prompt = queue.pop()
                    output = await funcs.async_request_openai_completions(request(prompt), session)
                    outputs.append((prompt, output))

            await asyncio.gather(*(worker() for _ in range(args.streams)))
            return outputs

        await drive([f"warm-{i}" for i in range(args.streams)])
        sync("start", args)
        before = resource.getrusage(resource.RUSAGE_SELF)
        start = time.perf_counter()
        outputs = await drive([f"req-{i}" for i in range(args.requests)])
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_SELF)
        sync("end", args)
    return outputs, wall, after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime


def stamp_errors(outputs, url):
    """Each chunk's stamp (perf_counter: CLOCK_MONOTONIC on Linux) minus its write, ms."""
    with urllib.request.urlopen(url.rstrip("/") + "/log", timeout=60) as answer:
        log = json.load(answer)
    errors = []
    for prompt, output in outputs:
        writes = log.get(prompt.removeprefix("req-"))
        if not output.success or not writes:
            continue
        stamp = output.start_time + output.ttft
        stamps = [stamp]
        for gap in output.itl:
            stamp += gap
            stamps.append(stamp)
        errors.extend((s * 1e9 - w) / 1e6 for s, w in zip(stamps, writes))
    return errors


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--streams", type=int, required=True)
    parser.add_argument("--requests", type=int, required=True)
    parser.add_argument("--tokens", type=int, required=True)
    parser.add_argument("--log", action="store_true", help="the server logs its writes")
    parser.add_argument(
        "--sync", action="store_true", help="say where the measured requests start and end"
    )
    args = parser.parse_args()
    if sys.platform != "linux":
        skip("the stamp comparison needs Linux's CLOCK_MONOTONIC")
    cache = os.path.abspath(cache_dir())
    os.makedirs(cache, exist_ok=True)
    path = request_func_file(cache)
    ensure_venv(cache)
    try:
        funcs = load(path)
    except Exception as e:  # noqa: BLE001 - any import problem means: skip with its reason
        skip(f"cannot load {MEMBER} of vLLM {VLLM_VERSION}: {e!r}")
    outputs, wall, user, system = asyncio.run(closed_loop(funcs, args))
    ok = [o for _, o in outputs if o.success]
    report = {
        "version": VLLM_VERSION,
        "requests": len(ok),
        "failed": len(outputs) - len(ok),
        "chunks": sum(1 + len(o.itl) for o in ok),
        "wall_s": wall,
        "user_s": user,
        "sys_s": system,
    }
    if args.log:
        report["stamp_errors_ms"] = stamp_errors(outputs, args.url)
    failures = [o.error for _, o in outputs if not o.success]
    if failures:
        say(f"{len(failures)} requests failed; the first: {failures[0].strip()[-300:]}")
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
