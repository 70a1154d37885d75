"""``wrk`` engine of :mod:`bench.loadgen`: runs the Debian ``wrk`` binary with a Lua script.

The script's ``done()`` prints one JSON line (marker ``BENCH_JSON``) with totals, errors,
percentiles and our coarse histogram, so nothing is scraped from wrk's human output.
A single request keeps wrk's static fast path (no Lua per request); a mix defines
``request()``, which costs wrk a little Lua per request but still far less than Python.
"""

from __future__ import annotations

import json
import math
import os
import resource
import shutil
import subprocess
import tempfile
from pathlib import Path

from bench.loadgen import HIST_EDGES_US, LoadResult, Request, bucket_labels

MARKER = "BENCH_JSON "
SPECS_PER_CHUNK = 5_000


def lua_str(raw: str | bytes) -> str:
    """A Lua string literal for arbitrary bytes (3-digit decimal escapes are unambiguous)."""
    data = raw.encode() if isinstance(raw, str) else raw
    out = []
    for b in data:
        ch = chr(b)
        out.append(ch if 32 <= b < 127 and ch not in '"\\' else f"\\{b:03d}")
    return '"' + "".join(out) + '"'


def _lua_request(r: Request) -> str:
    headers = ", ".join(f"[{lua_str(k)}] = {lua_str(v)}" for k, v in r.headers)
    body = lua_str(r.body) if r.body else "nil"
    return f"{{{lua_str(r.method)}, {lua_str(r.path)}, {{{headers}}}, {body}}}"


_DONE = """
local edges = {%(edges)s}
done = function(summary, latency, requests)
  -- Debian's wrk does not expose latency[i] (per-microsecond counts), so each edge's share
  -- is found by bisecting the (monotonic) percentile function instead.
  local function below(edge)
    if latency.max < edge then return 1 end
    if latency.min >= edge then return 0 end
    local lo, hi = 0, 100
    for _ = 1, 40 do
      local mid = (lo + hi) / 2
      if latency:percentile(mid) < edge then lo = mid else hi = mid end
    end
    return lo / 100
  end
  local counts, prev = {}, 0
  for b = 1, #edges do
    local f = below(edges[b])
    counts[b] = math.floor((f - prev) * summary.requests + 0.5)
    prev = f
  end
  counts[#edges + 1] = math.floor((1 - prev) * summary.requests + 0.5)
  local e = summary.errors
  io.write(string.format(
    '%(marker)s{"requests": %%d, "duration_us": %%d, "bytes": %%d, ' ..
    '"errors": {"connect": %%d, "read": %%d, "write": %%d, "status": %%d, "timeout": %%d}, ' ..
    '"min": %%d, "mean": %%f, "max": %%d, "p50": %%d, "p90": %%d, "p99": %%d, "p999": %%d, ' ..
    '"hist": [%%s]}\\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.max, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9), table.concat(counts, ", ")))
end
"""


def build_script(requests: list[Request]) -> str:
    parts = []
    if len(requests) == 1:
        # Static request: wrk formats it once and sends the same bytes each time.
        r = requests[0]
        parts.append(f"wrk.method = {lua_str(r.method)}\nwrk.path = {lua_str(r.path)}")
        parts += [f"wrk.headers[{lua_str(k)}] = {lua_str(v)}" for k, v in r.headers]
        if r.body:
            parts.append(f"wrk.body = {lua_str(r.body)}")
    else:
        # LuaJIT allows 65,536 constants per function: the mix is built by one function
        # per chunk of it, so its size is not limited.
        chunks = [
            requests[i : i + SPECS_PER_CHUNK] for i in range(0, len(requests), SPECS_PER_CHUNK)
        ]
        for n, chunk in enumerate(chunks):
            specs = ",\n  ".join(_lua_request(r) for r in chunk)
            parts.append(f"local function specs_{n}()\n  return {{\n  {specs}\n}}\nend")
        builders = ", ".join(f"specs_{n}" for n in range(len(chunks)))
        parts.append(
            f"local specs = {{}}\nfor _, build in ipairs({{{builders}}}) do\n"
            + "  for _, s in ipairs(build()) do specs[#specs + 1] = s end\nend\n"
            + """local reqs = {}
local i = 0
local nthreads = 0
-- setup() runs once per wrk thread in the main state: give each thread its own offset
setup = function(thread)
  thread:set("offset", nthreads * 7919)
  nthreads = nthreads + 1
end
init = function(args)
  for k, s in ipairs(specs) do reqs[k] = wrk.format(s[1], s[2], s[3], s[4]) end
  i = (offset or 0) % #reqs
end
request = function()
  i = i % #reqs + 1
  return reqs[i]
end"""
        )
    edges = ", ".join(str(e) for e in HIST_EDGES_US)
    parts.append(_DONE % {"edges": edges, "marker": MARKER})
    return "\n".join(parts)


def _wrk_cmd(url: str, threads: int, connections: int, seconds: int, timeout: float) -> list[str]:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("wrk is not installed (apt-get install wrk) - use --engine python")
    return [
        wrk,
        "-t",
        str(threads),
        "-c",
        str(connections),
        "-d",
        f"{seconds}s",
        "--timeout",
        f"{max(1, math.ceil(timeout))}s",
        url,
    ]


def run_wrk(
    url: str,
    requests: list[Request],
    *,
    connections: int,
    duration: float,
    warmup: float,
    threads: int | None,
    timeout: float,
) -> LoadResult:
    nthreads = max(1, min(threads or os.cpu_count() or 1, connections))
    seconds = max(1, math.ceil(duration))  # wrk's -d takes whole seconds
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        script = Path(tmp) / "load.lua"
        script.write_text(build_script(requests))
        cmd = _wrk_cmd(url, nthreads, connections, seconds, timeout)
        if warmup > 0:
            warm = _wrk_cmd(url, nthreads, connections, max(1, math.ceil(warmup)), timeout)
            subprocess.run([*warm, "-s", str(script)], check=True, capture_output=True)
        # wrk is our only child finishing in this window, so RUSAGE_CHILDREN's delta is its CPU.
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = subprocess.run(
            [*cmd, "-s", str(script)], check=False, capture_output=True, text=True
        )
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr.strip()}")
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith(MARKER)), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{proc.stdout}\n{proc.stderr}")
    doc = json.loads(line[len(MARKER) :])
    dur_s = doc["duration_us"] / 1e6
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)

    def ms(us: float) -> float:
        return us / 1000

    latency = {
        "min": ms(doc["min"]),
        "mean": ms(doc["mean"]),
        "p50": ms(doc["p50"]),
        "p90": ms(doc["p90"]),
        "p99": ms(doc["p99"]),
        "p99.9": ms(doc["p999"]),
        "max": ms(doc["max"]),
    }
    return LoadResult(
        engine="wrk",
        url=url,
        connections=connections,
        workers=nthreads,
        duration_s=dur_s,
        requests=doc["requests"],
        rps=doc["requests"] / dur_s if dur_s else 0.0,
        latency_ms=latency,
        histogram=list(zip(bucket_labels(), doc["hist"], strict=True)),
        errors=doc["errors"],
        client_cpu_pct=100 * cpu / dur_s if dur_s else 0.0,
    )
