"""The child process that runs the built-in llama.cpp server (xllamacpp) for r42.localmodel.

Run by r42.localmodel, not by users:

    python -m r42.localmodel_server --model PATH [--port 0] [--threads N] [--ctx N] [--parent-pid PID]

It loads the model, listens on 127.0.0.1 (port 0: a free port chosen by the kernel, no race), writes
one JSON line ``{"url": "http://127.0.0.1:PORT", "pid": PID}`` to stdout once the server answers,
and then lives exactly as long as its stdin stays open. The parent holds the only write end of that
pipe, so the server goes away when the parent exits or dies by any means, SIGKILL included (the
kernel closes the pipe). ``--parent-pid`` adds Linux's PR_SET_PDEATHSIG for the same purpose, which
also covers the seconds spent loading the model. SIGTERM, SIGINT and SIGHUP end it too.

llama.cpp writes its log to stderr; stdout is kept for the one status line only.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from typing import Any

MODEL_ALIAS = "smollm2-135m-instruct"


class _Stop(Exception):
    """Raised by the signal handlers to leave the wait loop."""


def _set_pdeathsig() -> None:
    """Ask Linux to send SIGTERM to this process when its parent goes away."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # not glibc/musl or no prctl: the stdin pipe still covers it
        return


def _on_signal(signum: int, frame: Any) -> None:
    raise _Stop(signum)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m r42.localmodel_server")
    parser.add_argument("--model", required=True, help="path of the GGUF file")
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--threads", type=int, default=0, help="0: half the CPUs, 1..4")
    parser.add_argument("--ctx", type=int, default=8192, help="context size in tokens")
    parser.add_argument("--parallel", type=int, default=1, help="requests decoded at once")
    parser.add_argument("--alias", default=MODEL_ALIAS, help="model name in responses")
    parser.add_argument("--verbosity", type=int, default=1, help="llama.cpp log level (0-4)")
    parser.add_argument("--parent-pid", type=int, default=0, help="die with this parent (Linux)")
    return parser.parse_args(argv)


def default_threads() -> int:
    """Half the CPUs this process may use, 1..4.

    llama.cpp's threads spin at a barrier after every step, so a thread that another process takes
    the CPU from stalls the rest: on a busy 2-CPU machine 2 threads generated 4-15 tokens/s where 1
    thread generated 40-55. A 135M model gains little from more threads, and r42 itself (and
    whatever else runs) keeps a CPU. R42_LOCAL_THREADS overrides this (see r42.localmodel).
    """
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        count = os.cpu_count() or 1
    return max(1, min(count // 2, 4))


def build_params(args: argparse.Namespace) -> Any:
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = args.model
    params.hostnames = [args.host]
    params.port = args.port
    threads = args.threads if args.threads > 0 else default_threads()
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    params.n_ctx = args.ctx
    params.n_parallel = args.parallel
    params.n_predict = -1  # the request's max_tokens decides; the context size bounds it
    # Settings newer xllamacpp releases have; an older release simply keeps its defaults.
    optional: dict[str, Any] = {
        "model_alias": {args.alias},  # the model name in responses, instead of the file path
        "ui": False,  # no web UI on the loopback port
        "cache_ram_mib": 0,  # no host-memory prompt cache (default: up to 8 GiB)
        "fit_params": False,  # do not shrink n_ctx behind our back
        "verbosity": args.verbosity,
        "use_color": False,
    }
    # Read the file into memory rather than mmap it: the same RSS in the end (96 MB), a faster
    # load, and no page faults into site-packages (which an upgrade may replace) while serving.
    load_modes = getattr(xllamacpp, "llama_load_mode", None)
    if load_modes is not None:
        optional["load_mode"] = load_modes.LLAMA_LOAD_MODE_NONE
    elif hasattr(params, "use_mmap"):
        optional["use_mmap"] = False
    # An 8-bit KV cache: 8192 tokens take ~95 MB instead of ~185 MB, answers unchanged in our checks.
    # A quantised V cache needs flash attention, so both or neither.
    flash = getattr(xllamacpp, "llama_flash_attn_type", None)
    ggml_type = getattr(xllamacpp, "ggml_type", None)
    if flash is not None and ggml_type is not None and hasattr(params, "flash_attn_type"):
        optional["flash_attn_type"] = flash.LLAMA_FLASH_ATTN_TYPE_ENABLED
        optional["cache_type_k"] = ggml_type.GGML_TYPE_Q8_0
        optional["cache_type_v"] = ggml_type.GGML_TYPE_Q8_0
    for name, value in optional.items():
        if hasattr(params, name):
            setattr(params, name, value)
    return params


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.parent_pid:
        _set_pdeathsig()
        if os.getppid() != args.parent_pid:  # the parent died before prctl took effect
            return 0
    for signum in (signal.SIGTERM, signal.SIGINT, getattr(signal, "SIGHUP", None)):
        if signum is not None:
            signal.signal(signum, _on_signal)

    # Keep the real stdout for the status line; send anything native code prints to stderr.
    status = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)

    server = None
    try:
        import xllamacpp

        server = xllamacpp.Server(build_params(args))
        url = str(server.listening_address).rstrip("/")
        status.write(json.dumps({"url": url, "pid": os.getpid()}) + "\n")
        status.flush()
        status.close()
        # Live as long as the parent keeps stdin open.
        while sys.stdin.buffer.read(4096):
            pass
    except (_Stop, KeyboardInterrupt):
        pass
    except Exception as exc:  # noqa: BLE001 - one clear line in the log the parent shows on a failed start
        print(f"r42.localmodel_server: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        os._exit(1)
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, signal.SIG_IGN)  # a second signal must not interrupt the shutdown
    if server is not None:
        del server  # ~Server stops the HTTP and main loops
    # Skip interpreter and C++ static teardown: nothing is left to flush, and it can only hang.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
