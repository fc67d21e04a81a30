"""The `programs` suite of //tools:bench (tools/bench.py): real programs from
Debian with each allocator preloaded, timed, their peak RSS taken, and their
output checked so that an allocator that corrupts memory fails its run
instead of winning it. docs/PERFORMANCE.md, "Real programs", describes the
workloads and their checks.

    redis      redis-server under redis-benchmark (SET, GET, LPUSH, LRANGE_100,
               without pipelining and with -P 16): requests per second
    sqlite     sqlite3 running a generated script on an in-memory database
    python     /usr/bin/python3 running tools/programs/pyload.py
    gcc        gcc -O2 compiling a large generated C file
    git-log-p  git log -p        } on a repository made once per bench run
    git-blame  git blame         }
    git-gc     git gc --aggressive (on a fresh copy for every run; --quick with a
               delta window of 50, --full with git's 250)
    perl       perl running tools/programs/wordfreq.pl on a generated text

Every figure but redis's is the program's wall time in seconds (lower is
better); redis's are redis-benchmark's requests per second (higher is better),
with redis-server's peak RSS. The inputs and what each program must print are
made once per bench run, in a temporary directory, with glibc and untimed
(tools/programs/workloads.py computes most of the expected outputs itself).

This module leaves process handling to bench.py: the functions that run
something take `runner`, the bench module (run_process, wrap_with_time,
parse_time_report, clean_env, ProcResult).
"""

import csv
import hashlib
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

PROGRAMS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "programs")
sys.path.insert(0, PROGRAMS_DIR)
import workloads  # noqa: E402

REDIS_SERVER_BIN = "/usr/bin/redis-server"
REDIS_BENCHMARK_BIN = "/usr/bin/redis-benchmark"
SQLITE3_BIN = "/usr/bin/sqlite3"
PYTHON3_BIN = "/usr/bin/python3"
GCC_BIN = "/usr/bin/gcc"
GIT_BIN = "/usr/bin/git"
PERL_BIN = "/usr/bin/perl"
# Debian's redis-server links libjemalloc.so.2, which then serves its malloc
# calls: for glibc's row the suite preloads glibc's libc itself, whose malloc
# then comes first (ld.so binds every malloc call to the first definition).
LIBC = "/lib/x86_64-linux-gnu/libc.so.6"

WORK = "<work>"  # stands for the inputs' directory in a program's argv
SEED = 4141

PROGRAMS = ("redis", "sqlite", "python", "gcc", "git-log-p", "git-blame", "git-gc", "perl")
# The Debian package of each program's binaries (tools/setup.sh installs them).
PACKAGES = {"redis": "redis-server, redis-tools", "sqlite": "sqlite3", "python": "python3",
            "gcc": "gcc", "git-log-p": "git", "git-blame": "git", "git-gc": "git",
            "perl": "perl"}
BINS = {"redis": (REDIS_SERVER_BIN, REDIS_BENCHMARK_BIN), "sqlite": (SQLITE3_BIN,),
        "python": (PYTHON3_BIN,), "gcc": (GCC_BIN,), "git-log-p": (GIT_BIN,),
        "git-blame": (GIT_BIN,), "git-gc": (GIT_BIN,), "perl": (PERL_BIN,)}

REDIS_TESTS = ("SET", "GET", "LPUSH", "LRANGE_100")
REDIS_PIPELINE = 16
REDIS_CLIENTS = 50  # redis-benchmark's default, named here to be recorded

# Sizes per bench mode: --quick runs each program for under a second with
# glibc on a quiet machine (redis: about 2 s), --full for 3-6 seconds.
SIZES = {
    "quick": {"redis_requests": 5000, "redis_pipelined_requests": 30000, "sqlite_rows": 40000,
              "python_scale": 1, "gcc_functions": 30, "git_commits": 300, "git_lines": 2000,
              "git_gc_window": 50, "perl_words": 90000},
    "full": {"redis_requests": 40000, "redis_pipelined_requests": 200000, "sqlite_rows": 300000,
             "python_scale": 8, "gcc_functions": 300, "git_commits": 1000, "git_lines": 3000,
             "git_gc_window": 250, "perl_words": 800000},
}
GIT_CHANGES = 8         # lines of blame.txt each commit rewrites
GIT_APPENDS = 10        # lines each commit appends to one of the log files
GIT_FILES = 4           # log files
PERL_VOCABULARY = 20000
REDIS_DATA = {"strings": 2000, "hashes": 100, "fields": 50, "lists": 50, "elements": 100}
PROGRAM_TIMEOUT_S = {"quick": 120, "full": 600}


def metric(program):
    """(metric, unit, higher_is_better) of a program's figures."""
    if program == "redis":
        return "requests_per_sec", "req/s", True
    return "wall_s", "s", False


def figure_names(program):
    """The figures one run of a program gives: redis one per test and
    pipelining ('SET', ..., 'SET-P16', ...), every other program one ('')."""
    if program == "redis":
        return list(REDIS_TESTS) + ["%s-P%d" % (t, REDIS_PIPELINE) for t in REDIS_TESTS]
    return [""]


def benchmark_name(program, figure):
    """'programs/sqlite', 'programs/redis/SET-P16'."""
    return "programs/%s%s" % (program, "/" + figure if figure else "")


def params(program, mode):
    """The run as recorded in JSON (at most 200 characters)."""
    s = SIZES[mode]
    return {
        "redis": "redis-benchmark -t set,get,lpush,lrange_100 -c %d -n %d, and -n %d -P %d"
                 % (REDIS_CLIENTS, s["redis_requests"], s["redis_pipelined_requests"],
                    REDIS_PIPELINE),
        "sqlite": "sqlite3 :memory: script of %d rows (inserts, indexes, joins, updates, deletes)"
                  % s["sqlite_rows"],
        "python": "python3 pyload.py %d (objects, json, strings, re)" % s["python_scale"],
        "gcc": "gcc -O2 of a generated C file of %d functions" % s["gcc_functions"],
        "git-log-p": "git log -p (%d commits)" % s["git_commits"],
        "git-blame": "git blame of a %d-line file (%d commits)" % (s["git_lines"], s["git_commits"]),
        "git-gc": "git -c gc.aggressiveWindow=%d gc --aggressive --prune=now (%d commits)"
                  % (s["git_gc_window"], s["git_commits"]),
        "perl": "perl wordfreq.pl (%d words)" % s["perl_words"],
    }[program]


def argv(program, mode):
    """The command line of a program's run (WORK for the inputs' directory);
    None for redis, which the suite drives itself."""
    s = SIZES[mode]
    return {
        "redis": None,
        "sqlite": [SQLITE3_BIN, "-bail", "-batch", ":memory:", ".read %s/script.sql" % WORK],
        "python": [PYTHON3_BIN, "-s", "-B", os.path.join(PROGRAMS_DIR, "pyload.py"),
                   str(s["python_scale"])],
        "gcc": [GCC_BIN, "-O2", "-o", WORK + "/gcc-out/prog", WORK + "/big.c"],
        "git-log-p": [GIT_BIN, "-C", WORK + "/repo", "log", "-p"],
        "git-blame": [GIT_BIN, "-C", WORK + "/repo", "blame", "-s", "-l", "--root", "main",
                      "--", "blame.txt"],
        "git-gc": [GIT_BIN, "-C", WORK + "/gc-repo", "-c", "gc.aggressiveWindow=%d" % s["git_gc_window"],
                   "gc", "--aggressive", "--prune=now", "--quiet"],
        "perl": [PERL_BIN, os.path.join(PROGRAMS_DIR, "wordfreq.pl"), WORK + "/words.txt"],
    }[program]


def program_env(runner, preload, program, extra=None):
    """A program run's environment: the benchmarks' (runner.clean_env), the C
    locale, git without the user's or the system's configuration, python
    without PYTHON* from outside and with a fixed hash seed."""
    env = runner.clean_env(preload, extra)
    env["LC_ALL"] = "C"
    if program.startswith("git"):
        for k in [k for k in env if k.startswith("GIT_")]:
            del env[k]
        env.update({"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
                    "GIT_TERMINAL_PROMPT": "0"})
    if program == "python":
        for k in [k for k in env if k.startswith("PYTHON")]:
            del env[k]
        env["PYTHONHASHSEED"] = "0"
    return env


def digest(data):
    if isinstance(data, str):
        data = data.encode("utf-8", "replace")
    return hashlib.sha256(data).hexdigest()


def first_difference(got, want, what):
    """'what: line N is '...', expected '...'' for two texts that differ."""
    g, w = got.splitlines(), want.splitlines()
    for i, (a, b) in enumerate(zip(g, w)):
        if a != b:
            return "%s: line %d is %r, expected %r" % (what, i + 1, a[:80], b[:80])
    return "%s: %d lines, expected %d" % (what, len(g), len(w))


# --------------------------------------------------------------------------
# redis: the RESP client, the data set, redis-benchmark's CSV.

class RedisError(Exception):
    pass


class Redis:
    """A minimal RESP client on one loopback connection (no redis-cli needed)."""

    def __init__(self, port, timeout):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.f = self.sock.makefile("rb")

    def close(self):
        try:
            self.f.close()
            self.sock.close()
        except OSError:
            pass

    @staticmethod
    def encode(args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        return b"".join(out)

    def reply(self):
        line = self.f.readline()
        if not line.endswith(b"\r\n"):
            raise RedisError("the connection closed")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return RedisError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.f.read(n + 2)
            if len(data) != n + 2:
                raise RedisError("the connection closed")
            return data[:-2].decode("utf-8", "replace")
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise RedisError("unexpected reply %r" % line[:40])

    def pipeline(self, commands, chunk=500):
        """Replies of commands sent chunk at a time."""
        out = []
        for i in range(0, len(commands), chunk):
            part = commands[i:i + chunk]
            self.sock.sendall(b"".join(self.encode(c) for c in part))
            out.extend(self.reply() for _ in part)
        return out

    def call(self, *args):
        return self.pipeline([args])[0]


def redis_data_set(seed=SEED):
    """The data set loaded before redis-benchmark and read back after it:
    (commands that load it, {key: value}) with value a str, a dict (hash) or a
    list."""
    rng = random.Random(seed)
    d = REDIS_DATA
    data = {}
    for i in range(d["strings"]):
        data["ds:str:%d" % i] = "%d:" % i + "".join(
            rng.choices("abcdefghijklmnopqrstuvwxyz0123456789", k=rng.choice((1, 8, 40, 200, 1500, 4000))))
    for i in range(d["hashes"]):
        data["ds:hash:%d" % i] = {"f%d" % k: "v%d.%d.%s" % (i, k, "h" * rng.randint(0, 60))
                                  for k in range(d["fields"])}
    for i in range(d["lists"]):
        data["ds:list:%d" % i] = ["e%d.%d.%s" % (i, k, "l" * rng.randint(0, 30))
                                  for k in range(d["elements"])]
    commands = []
    for k, v in data.items():
        if isinstance(v, str):
            commands.append(("SET", k, v))
        elif isinstance(v, dict):
            commands.append(("HSET", k) + tuple(x for kv in v.items() for x in kv))
        else:
            commands.append(("RPUSH", k) + tuple(v))
    return commands, data


def redis_check_data_set(client, data):
    """Why the server's copy of the data set differs from data, or None."""
    keys = [k for k, v in data.items() if isinstance(v, str)]
    got = []
    for i in range(0, len(keys), 500):
        got.extend(client.call("MGET", *keys[i:i + 500]))
    for k, v in zip(keys, got):
        if v != data[k]:
            if not isinstance(v, str):
                return "redis: %s holds %r, expected a string" % (k, v)
            at = next((i for i, (a, b) in enumerate(zip(v, data[k])) if a != b),
                      min(len(v), len(data[k])))
            return "redis: %s differs from what was stored at byte %d of %d: %r, expected %r" % (
                k, at, len(data[k]), v[max(0, at - 8):at + 8], data[k][max(0, at - 8):at + 8])
    others = [k for k, v in data.items() if not isinstance(v, str)]
    replies = client.pipeline([("HGETALL", k) if isinstance(data[k], dict) else ("LRANGE", k, 0, -1)
                               for k in others])
    for k, r in zip(others, replies):
        want = data[k]
        if isinstance(want, dict):
            r = dict(zip(r[0::2], r[1::2])) if isinstance(r, list) else r
        if r != want:
            return "redis: %s does not hold what was stored" % k
    return None


def parse_redis_csv(text):
    """redis-benchmark --csv output -> {test: requests per second}.

    Redis 7 prints a header ("test","rps","avg_latency_ms",...) and a row per
    test; older versions print "TEST","rps" rows without a header. The rows
    redis-benchmark adds for its own needs ('LPUSH (needed to benchmark
    LRANGE)') are left out; 'LRANGE_100 (first 100 elements)' is LRANGE_100.
    Raises ValueError on anything else."""
    rows = [r for r in csv.reader(text.splitlines()) if r and any(c.strip() for c in r)]
    if not rows:
        raise ValueError("no CSV rows")
    col = 1
    if rows[0][0] == "test":
        if "rps" not in rows[0]:
            raise ValueError("no rps column in the header %r" % rows[0])
        col = rows[0].index("rps")
        rows = rows[1:]
    out = {}
    for r in rows:
        if len(r) <= col:
            raise ValueError("short CSV row %r" % r)
        name = r[0]
        if "(needed to benchmark" in name:
            continue
        name = name.split(" (")[0].strip()
        try:
            rps = float(r[col])
        except ValueError:
            raise ValueError("rps of %s is %r, not a number" % (name, r[col]))
        if not 0 < rps < float("inf"):
            raise ValueError("rps of %s is %r" % (name, r[col]))
        if name in out:
            raise ValueError("%s appears twice" % name)
        out[name] = rps
    return out


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_redis(runner, preload, inputs, timeout, mode, extra=None):
    """One redis job: redis-server (this allocator preloaded, under GNU time
    for its peak RSS) on a free loopback port, the data set loaded,
    redis-benchmark (no preload) without and with pipelining, the data set
    and what the benchmark stored checked, SHUTDOWN NOSAVE.

    -> (result, figures, error): result as run_process's, for the server
    (its status, the job's wall time, its peak RSS, its output as stderr)."""
    s = SIZES[mode]
    res = runner.ProcResult()
    start = time.monotonic()
    deadline = start + timeout
    work = tempfile.mkdtemp(prefix="redis-", dir=inputs.dir)
    log_path = os.path.join(work, "server.out")
    report = os.path.join(work, "time.out")
    # glibc: libc itself in front of Debian's jemalloc (see LIBC).
    env = program_env(runner, preload or LIBC, "redis", extra)
    proc = None
    figures = {}
    error = None
    try:
        for attempt in range(3):
            port = free_port()
            server = [REDIS_SERVER_BIN, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                      "--appendonly", "no", "--daemonize", "no", "--protected-mode", "yes",
                      "--dir", work, "--databases", "1"]
            if runner.rss_helper_available():
                spawn_argv, spawn_env = runner.wrap_with_time(server, env, report)
            else:
                spawn_argv, spawn_env = server, env
            with open(log_path, "wb") as log:
                try:
                    proc = subprocess.Popen(spawn_argv, env=spawn_env, stdin=subprocess.DEVNULL,
                                            stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
                except OSError as exc:
                    res.spawn_error = "cannot start %s: %s" % (REDIS_SERVER_BIN, exc)
                    return res, None, None
            client = None
            up_by = min(deadline, time.monotonic() + 10)
            while time.monotonic() < up_by and proc.poll() is None:
                try:
                    client = Redis(port, max(1.0, deadline - time.monotonic()))
                    if client.call("PING") == "PONG":
                        break
                except (OSError, RedisError):
                    pass
                if client is not None:
                    client.close()
                    client = None
                time.sleep(0.05)
            if client is not None:
                break
            if proc.poll() is not None and "Address already in use" not in _read(log_path):
                break  # it died: its status says why (below)
            _stop(proc)
        if client is None:
            if proc.poll() is None:
                _stop(proc)
                error = "redis-server did not answer PING"
        else:
            try:
                error = _redis_session(client, port, s, env, deadline, figures)
            except (OSError, RedisError, subprocess.SubprocessError, ValueError) as exc:
                error = "redis: %s" % (exc or type(exc).__name__)
            try:
                client.sock.sendall(Redis.encode(("SHUTDOWN", "NOSAVE")))
            except OSError:
                pass
            client.close()
        if proc.returncode is None:  # not reaped yet (by _stop or poll)
            # wait4 for its CPU time; kills the group if it does not exit.
            status, ru, res.timed_out = runner._wait_with_timeout(
                proc.pid, max(1.0, min(10.0, deadline - time.monotonic())))
            proc.returncode = (-os.WTERMSIG(status) if os.WIFSIGNALED(status)
                               else os.WEXITSTATUS(status))
            res.cpu_s = ru.ru_utime + ru.ru_stime
    except BaseException:
        if proc is not None:
            _stop(proc)
        raise
    res.wall_s = time.monotonic() - start
    status = proc.returncode
    if status < 0:
        res.term_signal = -status
    else:
        res.exit_code = status
    if os.path.exists(report):
        with open(report, encoding="utf-8", errors="replace") as f:
            rss, sig = runner.parse_time_report(f.read())
        if rss is not None:
            res.peak_rss_kb = rss
        if sig and not res.term_signal:
            res.term_signal, res.exit_code = sig, None
    res.stderr = _read(log_path)
    if error is None and not res.timed_out and res.exit_code == 0 and not res.term_signal:
        missing = [f for f in figure_names("redis") if f not in figures]
        if missing:
            error = "redis-benchmark gave no figure for %s" % ", ".join(missing)
    return res, figures, error


def _read(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()[-20000:]
    except OSError:
        return ""


def _stop(proc):
    """Kills the server's whole process group (GNU time and redis-server)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


def _redis_session(client, port, s, env, deadline, figures):
    """Load, benchmark, check; fills figures; returns an error or None."""
    commands, data = redis_data_set()
    bad = [r for r in client.pipeline(commands) if isinstance(r, RedisError)]
    if bad:
        return "redis: loading the data set: %s" % bad[0]
    bench_env = {k: v for k, v in env.items() if k != "LD_PRELOAD"}
    total_pushes = 0
    for n, pipe in ((s["redis_requests"], 1), (s["redis_pipelined_requests"], REDIS_PIPELINE)):
        cmd = [REDIS_BENCHMARK_BIN, "-h", "127.0.0.1", "-p", str(port), "-c", str(REDIS_CLIENTS),
               "-t", "set,get,lpush,lrange_100", "-n", str(n), "-P", str(pipe), "--csv"]
        p = subprocess.run(cmd, env=bench_env, stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=max(1.0, deadline - time.monotonic()))
        out = p.stdout.decode("utf-8", "replace")
        if p.returncode != 0:
            return "redis-benchmark -P %d: exit status %d: %s" % (
                pipe, p.returncode, p.stderr.decode("utf-8", "replace").strip()[-300:])
        try:
            rps = parse_redis_csv(out)
        except ValueError as exc:
            return "redis-benchmark -P %d: unreadable CSV: %s" % (pipe, exc)
        for t in REDIS_TESTS:
            if t in rps:
                figures[t if pipe == 1 else "%s-P%d" % (t, pipe)] = rps[t]
        total_pushes += 2 * n  # LPUSH, and LPUSH again to fill the list LRANGE reads
    problem = redis_check_data_set(client, data)
    if problem:
        return problem
    got = (client.call("LLEN", "mylist"), client.call("STRLEN", "key:__rand_int__"),
           client.call("DBSIZE"))
    want = (total_pushes, 3, len(data) + 2)
    if got != want:
        return ("redis: after the benchmark LLEN mylist, STRLEN key:__rand_int__ and DBSIZE are "
                "%s, expected %s" % (got, want))
    return None


# --------------------------------------------------------------------------
# The other programs: inputs, runs, checks.

BLAME_LINE_RE = re.compile(r"^([0-9a-f]{40}) +(\d+)\) (.*)$")
COMMIT_LINE_RE = re.compile(r"^commit [0-9a-f]{40,64}$")


class ProgramInputs:
    """The programs' inputs in a temporary directory, and what each must
    print. Made once per bench run, with glibc, untimed. expect[program] is
    what check() compares with; errors[program] says why a program cannot be
    measured (its runs fail with it)."""

    def __init__(self, runner, programs, mode, parent=None):
        self.runner = runner
        self.mode = mode
        self.sizes = SIZES[mode]
        self.dir = tempfile.mkdtemp(prefix="bench-programs-", dir=parent)
        self.expect = {}
        self.errors = {}
        for p in programs:
            missing = [b for b in BINS[p] if not os.access(b, os.X_OK)]
            if missing:
                self.errors[p] = "%s not found (Debian package %s)" % (", ".join(missing),
                                                                       PACKAGES[p])
                continue
            try:
                getattr(self, "_prepare_" + p.replace("-", "_"))()
            except (OSError, subprocess.SubprocessError, ValueError) as exc:
                self.errors[p] = "cannot prepare its input: %s" % exc

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def argv(self, program):
        return [a.replace(WORK, self.dir) for a in argv(program, self.mode)]

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def _run(self, argv_, program, text=True, **kw):
        p = subprocess.run(argv_, env=program_env(self.runner, None, program), capture_output=True,
                           timeout=300, **kw)
        if p.returncode != 0:
            raise ValueError("%s: exit status %d: %s" % (
                " ".join(argv_[:4]), p.returncode, p.stderr.decode("utf-8", "replace")[-300:]))
        return p.stdout.decode("utf-8", "replace") if text else p.stdout

    def _write(self, name, text):
        with open(self.path(name), "w", encoding="utf-8") as f:
            f.write(text)

    def _prepare_redis(self):
        self.expect["redis"] = None  # checked against the data set itself

    def _prepare_sqlite(self):
        data = workloads.sqlite_data(self.sizes["sqlite_rows"], SEED)
        self._write("script.sql", workloads.sqlite_script(data))
        self.expect["sqlite"] = workloads.sqlite_expected(data)

    def _prepare_python(self):
        # The script checks itself; glibc's run is the reference of its figures.
        out = self._run(self.argv("python"), "python")
        if [l.split(" ")[0] for l in out.splitlines()] != ["objects", "json", "strings", "re"]:
            raise ValueError("pyload.py printed %r" % out[:200])
        self.expect["python"] = out

    def _prepare_gcc(self):
        n = self.sizes["gcc_functions"]
        self._write("big.c", workloads.c_source(n))
        os.makedirs(self.path("gcc-out"), exist_ok=True)
        self._run(self.argv("gcc"), "gcc")
        expect = {"output": workloads.c_expected(n)}
        problem = self.check_gcc(expect)
        if problem:
            raise ValueError("glibc's own build: " + problem)
        with open(self.path("gcc-out", "prog"), "rb") as f:
            expect["sha256"] = digest(f.read())
        self.expect["gcc"] = expect

    def _prepare_git(self):
        if "git" in self.expect:
            return
        s = self.sizes
        stream, facts = workloads.git_history(s["git_commits"], s["git_lines"], GIT_CHANGES,
                                              GIT_APPENDS, GIT_FILES, SEED)
        repo = self.path("repo")
        self._run([GIT_BIN, "init", "-q", repo], "git")
        self._run([GIT_BIN, "-C", repo, "fast-import", "--quiet"], "git", input=stream.encode())
        self._run([GIT_BIN, "-C", repo, "symbolic-ref", "HEAD", "refs/heads/main"], "git")
        hashes = {}
        for line in self._run([GIT_BIN, "-C", repo, "log", "--format=%H %s"], "git").splitlines():
            h, subject = line.split(" ", 1)
            hashes[h] = int(subject.split(" ")[1])
        if len(hashes) != s["git_commits"]:
            raise ValueError("the repository has %d commits, expected %d"
                             % (len(hashes), s["git_commits"]))
        facts["commit_of"] = hashes
        self.expect["git"] = facts

    def _prepare_git_log_p(self):
        self._prepare_git()
        expect = dict(self.expect["git"])
        out = self._run(self.argv("git-log-p"), "git-log-p")
        problem = check_git_log_p(out, expect)
        if problem:
            raise ValueError("glibc's own run: " + problem)
        expect["sha256"] = digest(out)  # a changed byte the counts miss
        self.expect["git-log-p"] = expect

    def _prepare_git_blame(self):
        self._prepare_git()
        self.expect["git-blame"] = self.expect["git"]

    def _prepare_git_gc(self):
        self._prepare_git()
        self.expect["git-gc"] = {"objects_sha256": self.git_objects_digest(self.path("repo"))}

    def git_objects_digest(self, repo):
        """sha256 of every object's id, type, size and content (cat-file, glibc)."""
        out = self._run([GIT_BIN, "-C", repo, "cat-file", "--batch-all-objects", "--batch"],
                        "git-gc", text=False)
        if len(out) < 1000:
            raise ValueError("git cat-file printed only %d bytes" % len(out))
        return digest(out)

    def _prepare_perl(self):
        text = workloads.words_text(self.sizes["perl_words"], PERL_VOCABULARY, SEED)
        self._write("words.txt", text)
        self.expect["perl"] = workloads.words_expected(text)

    def before_run(self, program):
        """Untimed set-up of one run: gcc's output removed, a fresh copy of
        the repository for git gc."""
        if program == "gcc":
            try:
                os.unlink(self.path("gcc-out", "prog"))
            except FileNotFoundError:
                pass
        elif program == "git-gc":
            shutil.rmtree(self.path("gc-repo"), ignore_errors=True)
            shutil.copytree(self.path("repo"), self.path("gc-repo"), symlinks=True)

    def check_gcc(self, expect):
        prog = self.path("gcc-out", "prog")
        if not os.access(prog, os.X_OK):
            return "gcc: no program was written"
        p = subprocess.run([prog], capture_output=True, timeout=60,
                           env=program_env(self.runner, None, "gcc"))
        out = p.stdout.decode("utf-8", "replace")
        if p.returncode != 0 or out != expect["output"]:
            return "gcc: the compiled program printed %r (status %d), expected %r" % (
                out[:40], p.returncode, expect["output"])
        if "sha256" in expect:
            with open(prog, "rb") as f:
                if digest(f.read()) != expect["sha256"]:
                    return "gcc: the program works but differs from glibc's build"
        return None

    def check_git_gc(self, expect):
        repo = self.path("gc-repo")
        counts = self._run([GIT_BIN, "-C", repo, "count-objects", "-v"], "git-gc")
        fields = dict(l.split(": ", 1) for l in counts.splitlines() if ": " in l)
        if fields.get("count") != "0" or fields.get("packs") != "1":
            return "git gc: %s loose objects and %s packs, expected 0 and 1" % (
                fields.get("count"), fields.get("packs"))
        if self.git_objects_digest(repo) != expect["objects_sha256"]:
            return "git gc: the repacked objects differ from the repository's"
        return None


def check_git_log_p(out, expect):
    lines = out.splitlines()
    commits = sum(1 for l in lines if COMMIT_LINE_RE.match(l))
    if commits != len(expect["subjects"]):
        return "git log -p shows %d commits, expected %d" % (commits, len(expect["subjects"]))
    added = sum(1 for l in lines if l.startswith("+") and not l.startswith("+++ "))
    if added != expect["added_lines"]:
        return "git log -p shows %d added lines, expected %d" % (added, expect["added_lines"])
    subjects = [l[4:] for l in lines if l.startswith("    ")]
    if subjects != expect["subjects"]:
        return "git log -p: the commit messages are not the repository's"
    if "sha256" in expect and digest(out) != expect["sha256"]:
        return "git log -p: the output differs from glibc's reference run"
    return None


def check_git_blame(out, expect):
    lines = out.splitlines()
    want = expect["blame"]
    if len(lines) != len(want):
        return "git blame: %d lines, expected %d" % (len(lines), len(want))
    for i, (line, (commit, text)) in enumerate(zip(lines, want)):
        m = BLAME_LINE_RE.match(line)
        if not m or int(m.group(2)) != i + 1 or m.group(3) != text:
            return "git blame: line %d is %r, expected %r" % (i + 1, line[:80], text[:60])
        if expect["commit_of"].get(m.group(1)) != commit:
            return "git blame: line %d is given to commit %s, expected commit %d" % (
                i + 1, expect["commit_of"].get(m.group(1), m.group(1)[:12]), commit)
    return None


def check(program, stdout, inputs):
    """Why a (finished, exit status 0) run's output is wrong, or None."""
    if program not in inputs.expect:
        return "no expected output to check against"
    expect = inputs.expect[program]
    if program in ("sqlite", "python", "perl"):
        if stdout != expect:
            return first_difference(stdout, expect, program)
        return None
    if program == "gcc":
        return inputs.check_gcc(expect)
    if program == "git-log-p":
        return check_git_log_p(stdout, expect)
    if program == "git-blame":
        return check_git_blame(stdout, expect)
    if program == "git-gc":
        return inputs.check_git_gc(expect)
    raise ValueError("unknown program %r" % program)


def run(runner, program, preload, inputs, timeout, extra=None):
    """One run of a program with preload (None: glibc).

    -> (result, figures, error): result as runner.run_process's; figures
    {figure name: value} when the output checked out; error why it did not
    (None when the result itself says what went wrong or nothing did)."""
    if program in inputs.errors:
        res = runner.ProcResult()
        res.spawn_error = inputs.errors[program]
        return res, None, None
    if program == "redis":
        return run_redis(runner, preload, inputs, timeout, inputs.mode, extra)
    inputs.before_run(program)
    res = runner.run_process(inputs.argv(program), program_env(runner, preload, program, extra),
                             timeout)
    if res.spawn_error or res.timed_out or res.term_signal or res.exit_code != 0:
        return res, None, None
    try:
        problem = check(program, res.stdout, inputs)
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        problem = "%s: cannot check the output: %s" % (program, exc)
    if problem:
        return res, None, problem
    return res, {"": res.wall_s}, None
