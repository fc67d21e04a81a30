#!/usr/bin/env python3
"""hakmem performance dashboard: a small HTTP server over a SQLite database.

Benchmark runs are pushed as JSON (POST /api/runs, see dashboards/README.md
and dashboards/SCHEMA.md), stored in SQLite, and shown by the page in
dashboards/static/, which compares hakmem with glibc, mimalloc, jemalloc and
tcmalloc across commits.

Python 3 standard library only (http.server, sqlite3, json).

    dashboards/server.py [--host 127.0.0.1] [--port 8321] [--db PATH]
    bazel run //dashboards:serve -- [same flags]
"""

import argparse
import datetime
import ipaddress
import json
import math
import os
import re
import signal
import socket
import sqlite3
import sys
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

SCHEMA_VERSION = 1  # version of the database layout (schema_version table)
RUN_SCHEMA = 1  # version of the pushed run JSON ("schema" field)

MAX_BODY_BYTES = 10 * 1024 * 1024
DRAIN_LIMIT_BYTES = 64 * 1024 * 1024  # read and drop at most this much of a rejected body
MAX_RESULTS = 100_000
MAX_STRING = 200
MAX_MEASUREMENT = 1e13  # median/min/max/values, whatever the metric
MAX_RSS_KB = 1e10
MAX_SECONDS = 1e7  # wall_s, cpu_s
MAX_VALUES = 10_000  # entries of one result's "values"
MAX_CPUS = 1_000_000
MAX_MEM_GB = 1e6
MAX_ROUNDS = 1_000_000

HAKMEM = "hakmem"
BASELINE = "glibc"

HERE = os.path.dirname(os.path.abspath(__file__))  # runfiles dir under Bazel
REAL_HERE = os.path.dirname(os.path.realpath(__file__))  # the source tree
CHARTJS_REL = os.path.join("node_modules", "chart.js", "dist", "chart.umd.js")


# --------------------------------------------------------------------------
# Validation of a pushed run
# --------------------------------------------------------------------------


class PushError(Exception):
    """A pushed run is unacceptable; the message names the field."""

    def __init__(self, field, message, index=None):
        self.field = field
        self.index = index
        text = "%s: %s" % (field, message) if field else message
        if index is not None:
            text += " (result index %d)" % index
        super().__init__(text)


def json_type(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def short_repr(value):
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    text = json.dumps(value) if not isinstance(value, float) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class Fields:
    """Reads typed fields out of one JSON object, naming them in errors."""

    def __init__(self, obj, path, index=None):
        self.obj = obj
        self.path = path
        self.index = index
        self.seen = set()

    def name(self, key):
        return "%s.%s" % (self.path, key) if self.path else key

    def fail(self, key, message):
        raise PushError(self.name(key), message, self.index)

    def get(self, key, required):
        self.seen.add(key)
        if key not in self.obj:
            if required:
                self.fail(key, "missing required field")
            return None
        value = self.obj[key]
        if value is None and required:
            self.fail(key, "must not be null")
        return value

    def string(self, key, required=True, default="", allow_empty=False, pattern=None, hint=""):
        value = self.get(key, required)
        if value is None:
            return default
        if not isinstance(value, str):
            self.fail(key, "expected a string, got %s" % json_type(value))
        if len(value) > MAX_STRING:
            self.fail(key, "string is %d characters long; the limit is %d" % (len(value), MAX_STRING))
        if not allow_empty and not value.strip():
            self.fail(key, "must not be empty")
        if "\x00" in value:
            self.fail(key, "must not contain NUL characters")
        if pattern is not None and not re.fullmatch(pattern, value):
            self.fail(key, "invalid value %s%s" % (short_repr(value), hint))
        return value

    def integer(self, key, lo, hi, required=True):
        value = self.get(key, required)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(key, "expected an integer, got %s" % json_type(value))
        if isinstance(value, float):
            if not math.isfinite(value) or value != int(value):
                self.fail(key, "expected an integer, got %s" % short_repr(value))
            value = int(value)
        if value < lo or value > hi:
            self.fail(key, "%d is out of range (allowed %s..%s)" % (value, lo, hi))
        return value

    def number(self, key, hi, required=True, what="value"):
        value = self.get(key, required)
        if value is None:
            return None
        return check_number(value, self.name(key), hi, self.index, what)

    def boolean(self, key, required=True):
        value = self.get(key, required)
        if value is None:
            return None
        if not isinstance(value, bool):
            self.fail(key, "expected true or false, got %s" % json_type(value))
        return value

    def obj_field(self, key, required=True):
        value = self.get(key, required)
        if value is None:
            return None
        if not isinstance(value, dict):
            self.fail(key, "expected an object, got %s" % json_type(value))
        return value

    def unknown(self):
        return sorted(self.name(k) for k in self.obj if k not in self.seen)


def check_number(value, field, hi, index=None, what="value"):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PushError(field, "expected a number, got %s" % json_type(value), index)
    if isinstance(value, float) and not math.isfinite(value):
        raise PushError(field, "must be a finite number, got %s" % short_repr(value), index)
    if value < 0:
        raise PushError(field, "must not be negative, got %s" % short_repr(value), index)
    if value > hi:
        raise PushError(field, "absurd %s %s (the limit is %g)" % (what, short_repr(value), hi), index)
    return value


def normalize_time(text, field):
    """ISO-8601 text -> 'YYYY-MM-DDTHH:MM:SS[.ffffff]Z' in UTC (naive = UTC)."""
    candidate = text.strip()
    if candidate[-1:] in ("Z", "z"):
        candidate = candidate[:-1] + "+00:00"
    try:
        moment = datetime.datetime.fromisoformat(candidate)
    except ValueError:
        raise PushError(field, "not an ISO-8601 time: %s" % short_repr(text))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    moment = moment.astimezone(datetime.timezone.utc)
    if not 2000 <= moment.year <= 2100:
        raise PushError(field, "absurd time %s (year outside 2000..2100)" % short_repr(text))
    out = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        out += ".%06d" % moment.microsecond
    return out + "Z"


def validate_run(doc):
    """Checks a decoded run; returns (normalized run, list of ignored fields)."""
    if not isinstance(doc, dict):
        raise PushError("", "the body must be a JSON object (a run), got %s" % json_type(doc))
    top = Fields(doc, "")
    schema = top.integer("schema", 0, 1_000_000)
    if schema != RUN_SCHEMA:
        top.fail("schema", "unsupported run schema %d (this server accepts %d)" % (schema, RUN_SCHEMA))
    run = {"schema": schema}
    run["commit"] = top.string(
        "commit", pattern=r"[0-9a-fA-F]{4,40}", hint=" (expected 4 to 40 hex digits)").lower()
    run["commit_subject"] = top.string("commit_subject", required=False, allow_empty=True)
    commit_time = top.string("commit_time", required=False, default=None, allow_empty=True)
    run["commit_time"] = normalize_time(commit_time, "commit_time") if commit_time else None  # "" = unknown
    run["time"] = normalize_time(top.string("time"), "time")
    run["branch"] = top.string("branch", required=False, allow_empty=True)

    machine = Fields(top.obj_field("machine"), "machine")
    run["machine"] = {
        "hostname": machine.string("hostname"),
        "cpus": machine.integer("cpus", 1, MAX_CPUS, required=False),
        "cpu_model": machine.string("cpu_model", required=False, allow_empty=True),
        "kernel": machine.string("kernel", required=False, allow_empty=True),
        "mem_gb": machine.number("mem_gb", MAX_MEM_GB, required=False, what="memory size"),
    }
    config = Fields(top.obj_field("config"), "config")
    run["config"] = {
        "mode": config.string("mode"),
        "rounds": config.integer("rounds", 1, MAX_ROUNDS, required=False),
        "build": config.string("build", required=False, allow_empty=True),
    }

    results = top.get("results", True)
    if not isinstance(results, list):
        top.fail("results", "expected an array, got %s" % json_type(results))
    if not results:
        top.fail("results", "must not be empty (a run needs at least one result)")
    if len(results) > MAX_RESULTS:
        top.fail("results", "%d results; the limit is %d per run" % (len(results), MAX_RESULTS))

    ignored = set(top.unknown()) | set(machine.unknown()) | set(config.unknown())
    seen_keys = {}
    out = []
    for i, item in enumerate(results):
        path = "results[%d]" % i
        if not isinstance(item, dict):
            raise PushError(path, "expected an object, got %s" % json_type(item), i)
        f = Fields(item, path, i)
        r = {
            "benchmark": f.string("benchmark"),
            "params": f.string("params", required=False, allow_empty=True),
            "threads": f.integer("threads", 1, 4096),
            "allocator": f.string("allocator"),
            "variant": f.string("variant", required=False, allow_empty=True),
            "metric": f.string("metric"),
            "unit": f.string("unit", required=False, allow_empty=True),
            "higher_is_better": f.boolean("higher_is_better"),
            "median": f.number("median", MAX_MEASUREMENT, what="measurement"),
            "min": f.number("min", MAX_MEASUREMENT, required=False, what="measurement"),
            "max": f.number("max", MAX_MEASUREMENT, required=False, what="measurement"),
        }
        values = f.get("values", False)
        if values is None:
            values = []
        if not isinstance(values, list):
            f.fail("values", "expected an array of numbers, got %s" % json_type(values))
        if len(values) > MAX_VALUES:
            f.fail("values", "%d values; the limit is %d" % (len(values), MAX_VALUES))
        for j, v in enumerate(values):
            check_number(v, "%s.values[%d]" % (path, j), MAX_MEASUREMENT, i, "measurement")
        r["values"] = values
        r["wall_s"] = f.number("wall_s", MAX_SECONDS, required=False, what="time")
        r["cpu_s"] = f.number("cpu_s", MAX_SECONDS, required=False, what="time")
        r["peak_rss_kb"] = f.number("peak_rss_kb", MAX_RSS_KB, required=False, what="peak RSS")

        # min <= median <= max, and every value inside [min, max].
        slack = 1e-9 * max(abs(r["median"]), 1.0)
        if r["min"] is not None and r["min"] > r["median"] + slack:
            f.fail("min", "min %s is greater than median %s" % (short_repr(r["min"]), short_repr(r["median"])))
        if r["max"] is not None and r["max"] < r["median"] - slack:
            f.fail("max", "max %s is less than median %s" % (short_repr(r["max"]), short_repr(r["median"])))
        for j, v in enumerate(values):
            lo_bad = r["min"] is not None and v < r["min"] - 1e-9 * max(abs(r["min"]), 1.0)
            hi_bad = r["max"] is not None and v > r["max"] + 1e-9 * max(abs(r["max"]), 1.0)
            if lo_bad or hi_bad:
                raise PushError("%s.values[%d]" % (path, j), "value %s lies outside [min, max]" % short_repr(v), i)

        key = (r["benchmark"], r["params"], r["threads"], r["allocator"], r["variant"], r["metric"])
        if key in seen_keys:
            raise PushError(path, "duplicates results[%d] (same benchmark, params, threads, allocator, "
                            "variant and metric)" % seen_keys[key], i)
        seen_keys[key] = i
        for name in f.unknown():
            ignored.add(re.sub(r"^results\[\d+\]", "results[*]", name))
        out.append(r)
    run["results"] = out
    return run, sorted(ignored)


# --------------------------------------------------------------------------
# Storage
# --------------------------------------------------------------------------

DDL = """
CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS machines (
    id        INTEGER PRIMARY KEY,
    hostname  TEXT NOT NULL,
    cpus      INTEGER,
    cpu_model TEXT NOT NULL DEFAULT '',
    kernel    TEXT NOT NULL DEFAULT '',
    mem_gb    REAL
);
CREATE UNIQUE INDEX IF NOT EXISTS machines_identity
    ON machines (hostname, IFNULL(cpus, -1), cpu_model, kernel, IFNULL(mem_gb, -1));
CREATE TABLE IF NOT EXISTS runs (
    id             INTEGER PRIMARY KEY,
    schema         INTEGER NOT NULL,
    commit_sha     TEXT NOT NULL,
    commit_subject TEXT NOT NULL DEFAULT '',
    commit_time    TEXT,
    run_time       TEXT NOT NULL,
    order_time     TEXT NOT NULL,
    branch         TEXT NOT NULL DEFAULT '',
    machine_id     INTEGER NOT NULL REFERENCES machines (id),
    hostname       TEXT NOT NULL,
    mode           TEXT NOT NULL,
    build          TEXT NOT NULL DEFAULT '',
    rounds         INTEGER,
    received_at    TEXT NOT NULL,
    UNIQUE (commit_sha, run_time, hostname)
);
CREATE INDEX IF NOT EXISTS runs_order ON runs (order_time, run_time, id);
CREATE INDEX IF NOT EXISTS runs_machine ON runs (machine_id);
CREATE TABLE IF NOT EXISTS results (
    id               INTEGER PRIMARY KEY,
    run_id           INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    idx              INTEGER NOT NULL,
    benchmark        TEXT NOT NULL,
    params           TEXT NOT NULL DEFAULT '',
    threads          INTEGER NOT NULL CHECK (threads BETWEEN 1 AND 4096),
    allocator        TEXT NOT NULL,
    variant          TEXT NOT NULL DEFAULT '',
    metric           TEXT NOT NULL,
    unit             TEXT NOT NULL DEFAULT '',
    higher_is_better INTEGER NOT NULL CHECK (higher_is_better IN (0, 1)),
    median           REAL NOT NULL CHECK (median >= 0),
    min_value        REAL,
    max_value        REAL,
    values_json      TEXT NOT NULL DEFAULT '[]',
    wall_s           REAL,
    cpu_s            REAL,
    peak_rss_kb      INTEGER,
    UNIQUE (run_id, benchmark, params, threads, allocator, variant, metric),
    UNIQUE (run_id, idx)
);
CREATE INDEX IF NOT EXISTS results_series ON results (benchmark, threads, metric, run_id);
"""


class DuplicateRun(Exception):
    def __init__(self, run_id):
        self.run_id = run_id
        super().__init__(run_id)


class Store:
    def __init__(self, path):
        self.path = path

    def connect(self):
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA busy_timeout = 30000")
        return conn

    def init(self):
        parent = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(parent, exist_ok=True)
        conn = self.connect()
        try:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise RuntimeError("could not switch %s to WAL mode (got %s)" % (self.path, mode))
            conn.execute("BEGIN IMMEDIATE")
            for statement in DDL.split(";"):
                if statement.strip():
                    conn.execute(statement)
            row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
            if row[0] is None:
                conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
            elif row[0] > SCHEMA_VERSION:
                conn.execute("ROLLBACK")
                raise RuntimeError("%s has schema version %d; this server knows only up to %d"
                                   % (self.path, row[0], SCHEMA_VERSION))
            conn.execute("COMMIT")
        finally:
            conn.close()

    # ---- writes -----------------------------------------------------------

    def insert_run(self, run):
        conn = self.connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                run_id = self._insert(conn, run)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return run_id
        finally:
            conn.close()

    def _insert(self, conn, run):
        m = run["machine"]
        dup = conn.execute(
            "SELECT id FROM runs WHERE commit_sha = ? AND run_time = ? AND hostname = ?",
            (run["commit"], run["time"], m["hostname"])).fetchone()
        if dup is not None:
            raise DuplicateRun(dup["id"])
        identity = (m["hostname"], m["cpus"], m["cpu_model"], m["kernel"], m["mem_gb"])
        row = conn.execute(
            "SELECT id FROM machines WHERE hostname = ? AND cpus IS ? AND cpu_model = ? "
            "AND kernel = ? AND mem_gb IS ?", identity).fetchone()
        if row is None:
            machine_id = conn.execute(
                "INSERT INTO machines (hostname, cpus, cpu_model, kernel, mem_gb) VALUES (?, ?, ?, ?, ?)",
                identity).lastrowid
        else:
            machine_id = row["id"]
        received = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        c = run["config"]
        run_id = conn.execute(
            "INSERT INTO runs (schema, commit_sha, commit_subject, commit_time, run_time, order_time, "
            "branch, machine_id, hostname, mode, build, rounds, received_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (run["schema"], run["commit"], run["commit_subject"], run["commit_time"], run["time"],
             run["commit_time"] or run["time"], run["branch"], machine_id, m["hostname"],
             c["mode"], c["build"], c["rounds"], received)).lastrowid
        conn.executemany(
            "INSERT INTO results (run_id, idx, benchmark, params, threads, allocator, variant, metric, "
            "unit, higher_is_better, median, min_value, max_value, values_json, wall_s, cpu_s, "
            "peak_rss_kb) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            ((run_id, i, r["benchmark"], r["params"], r["threads"], r["allocator"], r["variant"],
              r["metric"], r["unit"], 1 if r["higher_is_better"] else 0, r["median"], r["min"],
              r["max"], json.dumps(r["values"]), r["wall_s"], r["cpu_s"], r["peak_rss_kb"])
             for i, r in enumerate(run["results"])))
        return run_id

    # ---- reads ------------------------------------------------------------

    def list_runs(self):
        conn = self.connect()
        try:
            rows = conn.execute(
                "SELECT r.*, (SELECT COUNT(*) FROM results x WHERE x.run_id = r.id) AS n "
                "FROM runs r ORDER BY r.order_time DESC, r.run_time DESC, r.id DESC").fetchall()
        finally:
            conn.close()
        return {"runs": [run_summary(r) for r in rows]}

    def get_run(self, run_id):
        conn = self.connect()
        try:
            conn.execute("BEGIN")
            r = conn.execute(
                "SELECT r.*, m.cpus, m.cpu_model, m.kernel, m.mem_gb FROM runs r "
                "JOIN machines m ON m.id = r.machine_id WHERE r.id = ?", (run_id,)).fetchone()
            if r is None:
                return None
            results = conn.execute("SELECT * FROM results WHERE run_id = ? ORDER BY idx", (run_id,)).fetchall()
            conn.execute("COMMIT")
        finally:
            conn.close()
        return {
            "id": r["id"],
            "schema": r["schema"],
            "commit": r["commit_sha"],
            "commit_subject": r["commit_subject"],
            "commit_time": r["commit_time"],
            "time": r["run_time"],
            "branch": r["branch"],
            "machine": {"hostname": r["hostname"], "cpus": r["cpus"], "cpu_model": r["cpu_model"],
                        "kernel": r["kernel"], "mem_gb": r["mem_gb"]},
            "config": {"mode": r["mode"], "rounds": r["rounds"], "build": r["build"]},
            "received_at": r["received_at"],
            "results": [result_json(x) for x in results],
        }

    def benchmarks(self):
        conn = self.connect()
        try:
            rows = conn.execute(
                "SELECT x.benchmark, x.threads, x.metric, r.mode, r.build, "
                "MAX(x.unit) AS unit, MAX(x.higher_is_better) AS hib, "
                "COUNT(DISTINCT r.id) AS runs, MAX(r.run_time) AS last_time "
                "FROM results x JOIN runs r ON r.id = x.run_id "
                "GROUP BY x.benchmark, x.threads, x.metric, r.mode, r.build "
                "ORDER BY x.benchmark, x.threads, x.metric, r.mode, r.build").fetchall()
        finally:
            conn.close()
        items = []
        configs = []
        for row in rows:
            config = config_label(row["mode"], row["build"])
            if config not in configs:
                configs.append(config)
            items.append({"benchmark": row["benchmark"], "threads": row["threads"], "metric": row["metric"],
                          "mode": row["mode"], "build": row["build"], "config": config,
                          "unit": row["unit"], "higher_is_better": bool(row["hib"]),
                          "runs": row["runs"], "last_time": row["last_time"]})
        return {"benchmarks": items, "configs": sorted(configs)}

    def series(self, benchmark, threads=None, metric=None, config=None):
        where = ["x.benchmark = ?"]
        args = [benchmark]
        if threads is not None:
            where.append("x.threads = ?")
            args.append(threads)
        if metric is not None:
            where.append("x.metric = ?")
            args.append(metric)
        where_config(config, where, args)
        conn = self.connect()
        try:
            rows = conn.execute(
                "SELECT r.id AS run_id, r.commit_sha, r.commit_subject, r.commit_time, r.run_time, "
                "r.mode, r.build, r.hostname, x.* FROM results x JOIN runs r ON r.id = x.run_id "
                "WHERE " + " AND ".join(where) +
                " ORDER BY r.order_time, r.run_time, r.id, x.idx", args).fetchall()
        finally:
            conn.close()
        runs = []
        run_index = {}
        label_count = {}
        groups = {}
        for row in rows:
            if row["run_id"] not in run_index:
                short = row["commit_sha"][:7]
                label_count[short] = label_count.get(short, 0) + 1
                label = short if label_count[short] == 1 else "%s#%d" % (short, label_count[short])
                run_index[row["run_id"]] = len(runs)
                runs.append({"id": row["run_id"], "commit": row["commit_sha"], "short": short,
                             "label": label, "subject": row["commit_subject"],
                             "commit_time": row["commit_time"], "time": row["run_time"],
                             "config": config_label(row["mode"], row["build"]),
                             "hostname": row["hostname"]})
            key = (row["allocator"], row["variant"], row["threads"], row["metric"], row["params"])
            groups.setdefault(key, []).append(row)
        varying = [len({k[i] for k in groups}) > 1 for i in range(5)]
        series = []
        for key in sorted(groups, key=series_sort_key):
            allocator, variant, threads_, metric_, params = key
            label = series_label(allocator, variant)
            extra = []
            if varying[2]:
                extra.append("%dT" % threads_)
            if varying[3]:
                extra.append(metric_)
            if varying[4]:
                extra.append(params or "default params")
            if extra:
                label += " [" + ", ".join(extra) + "]"
            first = groups[key][0]
            series.append({
                "allocator": allocator, "variant": variant, "threads": threads_, "metric": metric_,
                "params": params, "label": label, "unit": first["unit"],
                "higher_is_better": bool(first["higher_is_better"]),
                "points": [{"run_id": row["run_id"], "index": run_index[row["run_id"]],
                            "commit": row["commit_sha"], "time": row["run_time"],
                            "median": row["median"], "min": row["min_value"], "max": row["max_value"],
                            "peak_rss_kb": row["peak_rss_kb"]} for row in groups[key]],
            })
        unit = series[0]["unit"] if series else ""
        hib = series[0]["higher_is_better"] if series else True
        return {"benchmark": benchmark, "threads": threads, "metric": metric, "config": config,
                "unit": unit, "higher_is_better": hib, "runs": runs, "series": series}

    def latest(self, config=None, benchmark=None, threads=None, metric=None):
        where = ["1"]
        args = []
        where_config(config, where, args, prefix="r.")
        sub = []
        if benchmark is not None:
            sub.append("x.benchmark = ?")
            args.append(benchmark)
        if threads is not None:
            sub.append("x.threads = ?")
            args.append(threads)
        if metric is not None:
            sub.append("x.metric = ?")
            args.append(metric)
        if sub:
            where.append("EXISTS (SELECT 1 FROM results x WHERE x.run_id = r.id AND " + " AND ".join(sub) + ")")
        conn = self.connect()
        try:
            row = conn.execute(
                "SELECT r.id FROM runs r WHERE " + " AND ".join(where) +
                " ORDER BY r.order_time DESC, r.run_time DESC, r.id DESC LIMIT 1", args).fetchone()
        finally:
            conn.close()
        if row is None:
            return {"run": None, "comparisons": [], "results": []}
        run = self.get_run(row["id"])
        if run is None:  # deleted in between: cannot happen without a DELETE API
            return {"run": None, "comparisons": [], "results": []}
        results = run.pop("results")
        run["results_count"] = len(results)
        return {"run": run, "comparisons": compare(results), "results": results}


def where_config(config, where, args, prefix="r."):
    if config is None:
        return
    mode, sep, build = config.partition("/")
    where.append(prefix + "mode = ?")
    args.append(mode)
    if sep:
        where.append(prefix + "build = ?")
        args.append(build)


def config_label(mode, build):
    return "%s/%s" % (mode, build) if build else mode


def series_label(allocator, variant):
    return "%s (%s)" % (allocator, variant) if variant else allocator


def allocator_rank(allocator):
    order = [HAKMEM, BASELINE, "mimalloc", "jemalloc", "tcmalloc"]
    return order.index(allocator) if allocator in order else len(order)


def series_sort_key(key):
    return (allocator_rank(key[0]), key[0], key[1], key[2], key[3], key[4])


def run_summary(r):
    return {"id": r["id"], "commit": r["commit_sha"], "subject": r["commit_subject"],
            "commit_time": r["commit_time"], "time": r["run_time"], "branch": r["branch"],
            "hostname": r["hostname"], "mode": r["mode"], "build": r["build"],
            "config": config_label(r["mode"], r["build"]), "results": r["n"]}


def result_json(x):
    return {"benchmark": x["benchmark"], "params": x["params"], "threads": x["threads"],
            "allocator": x["allocator"], "variant": x["variant"], "metric": x["metric"],
            "unit": x["unit"], "higher_is_better": bool(x["higher_is_better"]),
            "median": x["median"], "min": x["min_value"], "max": x["max_value"],
            "values": json.loads(x["values_json"]), "wall_s": x["wall_s"], "cpu_s": x["cpu_s"],
            "peak_rss_kb": x["peak_rss_kb"]}


def compare(results):
    """Per benchmark group of one run: hakmem against glibc, the best peer and each peer.

    ratio = hakmem median / peer median (the raw quotient of the metric);
    better = hakmem wins (ratio > 1 when higher is better, < 1 otherwise).
    """
    groups = {}
    for r in results:
        groups.setdefault((r["benchmark"], r["params"], r["threads"], r["metric"]), []).append(r)
    out = []
    for (benchmark, params, threads, metric), rows in groups.items():
        hib = rows[0]["higher_is_better"]
        rows = sorted(rows, key=lambda r: (allocator_rank(r["allocator"]), r["allocator"], r["variant"]))
        entries = [{"allocator": r["allocator"], "variant": r["variant"],
                    "label": series_label(r["allocator"], r["variant"]), "median": r["median"],
                    "min": r["min"], "max": r["max"], "peak_rss_kb": r["peak_rss_kb"]} for r in rows]
        mine = [e for e in entries if e["allocator"] == HAKMEM]
        peers = [e for e in entries if e["allocator"] != HAKMEM]
        glibc = next((e for e in peers if e["allocator"] == BASELINE), None)
        best = None
        for e in peers:
            if best is None or (e["median"] > best["median"] if hib else e["median"] < best["median"]):
                best = e

        def versus(h, p):
            if p is None:
                return None
            ratio = h["median"] / p["median"] if p["median"] > 0 else None
            better = None if ratio is None else (ratio > 1 if hib else ratio < 1)
            return {"peer": p["label"], "allocator": p["allocator"], "variant": p["variant"],
                    "median": p["median"], "ratio": ratio, "better": better}

        out.append({
            "benchmark": benchmark, "params": params, "threads": threads, "metric": metric,
            "unit": rows[0]["unit"], "higher_is_better": hib, "entries": entries,
            "glibc": glibc, "best_peer": best,
            "hakmem": [{"variant": h["variant"], "label": h["label"], "median": h["median"],
                        "vs_glibc": versus(h, glibc), "vs_best_peer": versus(h, best),
                        "vs_peers": [versus(h, p) for p in peers]} for h in mine],
        })
    return out


# --------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------

STATIC_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".json": "application/json; charset=utf-8",
}
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
       "frame-ancestors 'none'")


class HttpError(Exception):
    def __init__(self, status, message, close=False):
        self.status = status
        self.message = message
        self.close = close
        super().__init__(message)


class DashboardServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, family, store, static_dir, chartjs_path, quiet):
        self.address_family = family
        self.store = store
        self.static_dir = static_dir
        self.chartjs_path = chartjs_path
        self.quiet = quiet
        super().__init__(address, Handler)


class Handler(BaseHTTPRequestHandler):
    server_version = "hakmem-dashboard/1"
    protocol_version = "HTTP/1.0"

    # ---- plumbing -----------------------------------------------------------

    def log_message(self, fmt, *args):  # http.server's own messages (errors)
        sys.stderr.write("[dashboard] %s %s\n" % (self.client_address[0], fmt % args))

    def log_request(self, code="-", size="-"):
        self._status = code

    def _log_done(self):
        if self.server.quiet:
            return
        ms = (time.monotonic() - self._started) * 1000
        sys.stderr.write("[dashboard] %s %s -> %s (%.1f ms)\n"
                         % (self.command, self.path[:200], getattr(self, "_status", "-"), ms))

    def _dispatch(self, method):
        self._started = time.monotonic()
        try:
            url = urlsplit(self.path)
            self._route(method, url.path, parse_qs(url.query, keep_blank_values=True))
        except HttpError as e:
            if e.close:
                self.close_connection = True
            self.send_json(e.status, {"error": e.message})
        except PushError as e:
            body = {"error": str(e), "field": e.field}
            if e.index is not None:
                body["index"] = e.index
            self.send_json(400, body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
            return
        except Exception:
            traceback.print_exc()
            try:
                self.send_json(500, {"error": "internal server error (see the server log)"})
            except OSError:
                pass
        self._log_done()

    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def do_PATCH(self):
        self._dispatch("PATCH")

    def send_bytes(self, status, body, content_type, extra=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", CSP)
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_json(self, status, obj, extra=None):
        body = json.dumps(obj, allow_nan=False, ensure_ascii=False).encode("utf-8")
        self.send_bytes(status, body, "application/json; charset=utf-8", extra)

    # ---- routing ------------------------------------------------------------

    def _route(self, method, path, query):
        if path.startswith("/api/") or path == "/healthz":
            routes = [
                (r"/healthz", {"GET": self.api_health}),
                (r"/api/runs", {"GET": self.api_runs, "POST": self.api_push}),
                (r"/api/runs/(\d{1,18})", {"GET": self.api_run}),
                (r"/api/series", {"GET": self.api_series}),
                (r"/api/latest", {"GET": self.api_latest}),
                (r"/api/benchmarks", {"GET": self.api_benchmarks}),
            ]
            for pattern, methods in routes:
                m = re.fullmatch(pattern, path)
                if m:
                    handler = methods.get("GET" if method == "HEAD" else method)
                    if handler is None:
                        self._drain_body()
                        allow = ", ".join(sorted(methods))
                        self.send_json(405, {"error": "%s is not allowed on %s (allowed: %s)"
                                             % (method, path, allow)}, {"Allow": allow})
                        return
                    handler(query, *m.groups())
                    return
            raise HttpError(404, "no such API endpoint: %s" % path)
        if method not in ("GET", "HEAD"):
            self._drain_body()
            self.send_json(405, {"error": "%s is not allowed on %s" % (method, path)}, {"Allow": "GET, HEAD"})
            return
        self.serve_static(path)

    def _drain_body(self):
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.close_connection = True
            return
        if length > DRAIN_LIMIT_BYTES:
            self.close_connection = True
            return
        while length > 0:
            chunk = self.rfile.read(min(length, 1 << 20))
            if not chunk:
                break
            length -= len(chunk)

    # ---- static files ---------------------------------------------------------

    def serve_static(self, path):
        if path == "/vendor/chart.umd.js":
            target = self.server.chartjs_path
            if not target or not os.path.isfile(target):
                msg = ("// Chart.js is not installed: run tools/setup.sh or npm ci --prefix dashboards\n")
                self.send_bytes(404, msg.encode(), "text/javascript; charset=utf-8")
                return
        else:
            name = "index.html" if path in ("/", "/index.html") else path.lstrip("/")
            if not re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*", name):
                raise HttpError(404, "not found: %s" % path)
            target = os.path.join(self.server.static_dir, name)
            if not os.path.isfile(target):
                raise HttpError(404, "not found: %s" % path)
        ctype = STATIC_TYPES.get(os.path.splitext(target)[1], "application/octet-stream")
        with open(target, "rb") as fh:
            body = fh.read()
        self.send_bytes(200, body, ctype)

    # ---- API ----------------------------------------------------------------

    @staticmethod
    def _param(query, name, kind=str, required=False):
        values = query.get(name)
        if not values or values[-1] == "":
            if required:
                raise HttpError(400, "missing query parameter: %s" % name)
            return None
        value = values[-1]
        if len(value) > MAX_STRING:
            raise HttpError(400, "query parameter %s is too long" % name)
        if kind is int:
            if not re.fullmatch(r"\d{1,9}", value):
                raise HttpError(400, "query parameter %s must be a positive integer, got %r" % (name, value))
            return int(value)
        return value

    def api_health(self, query):
        conn = self.server.store.connect()
        try:
            runs = conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
            version = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]
        finally:
            conn.close()
        chartjs = bool(self.server.chartjs_path and os.path.isfile(self.server.chartjs_path))
        self.send_json(200, {"ok": True, "runs": runs, "schema_version": version, "chartjs": chartjs})

    def api_runs(self, query):
        self.send_json(200, self.server.store.list_runs())

    def api_run(self, query, run_id):
        run = self.server.store.get_run(int(run_id))
        if run is None:
            raise HttpError(404, "no run with id %s" % run_id)
        self.send_json(200, run)

    def api_benchmarks(self, query):
        self.send_json(200, self.server.store.benchmarks())

    def api_series(self, query):
        p = self._param
        self.send_json(200, self.server.store.series(
            p(query, "benchmark", required=True), p(query, "threads", int),
            p(query, "metric"), p(query, "config")))

    def api_latest(self, query):
        p = self._param
        self.send_json(200, self.server.store.latest(
            p(query, "config"), p(query, "benchmark"), p(query, "threads", int), p(query, "metric")))

    def api_push(self, query):
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if self.headers.get("Transfer-Encoding"):
            raise HttpError(400, "chunked request bodies are not supported: send Content-Length", close=True)
        raw_length = self.headers.get("Content-Length")
        if raw_length is None or not raw_length.strip().isdigit():
            raise HttpError(400, "Content-Length header missing or invalid", close=True)
        length = int(raw_length)
        if ctype != "application/json":
            self._drain_body()
            raise HttpError(400, "Content-Type must be application/json, got %s"
                            % (ctype or "none"))
        if length > MAX_BODY_BYTES:
            self._drain_body()
            raise HttpError(400, "request body too large: %d bytes; the limit is %d bytes (10 MiB)"
                            % (length, MAX_BODY_BYTES), close=True)
        if length == 0:
            raise HttpError(400, "empty request body: expected a run as JSON")
        body = self.rfile.read(length)
        if len(body) != length:
            raise HttpError(400, "request body shorter than Content-Length", close=True)
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as e:
            raise HttpError(400, "malformed JSON: body is not valid UTF-8 (byte %d)" % e.start)
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            raise HttpError(400, "malformed JSON: %s at line %d column %d" % (e.msg, e.lineno, e.colno))
        except RecursionError:
            raise HttpError(400, "malformed JSON: nested too deeply")
        run, ignored = validate_run(doc)
        try:
            run_id = self.server.store.insert_run(run)
        except DuplicateRun as e:
            self.send_json(409, {"error": "duplicate run: commit %s at %s on %s is already stored as run %d; "
                                          "nothing changed" % (run["commit"], run["time"],
                                                               run["machine"]["hostname"], e.run_id),
                                 "id": e.run_id})
            return
        except sqlite3.IntegrityError as e:  # validation should have caught it
            raise HttpError(400, "rejected by the database: %s" % e)
        reply = {"id": run_id, "results": len(run["results"])}
        if ignored:
            reply["ignored_fields"] = ignored
        self.send_json(201, reply, {"Location": "/api/runs/%d" % run_id})


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


def default_db_path():
    env = os.environ.get("HAKMEM_DASHBOARD_DB")
    if env:
        return env
    workspace = os.environ.get("BUILD_WORKSPACE_DIRECTORY")  # set by `bazel run`
    if workspace:
        return os.path.join(workspace, "dashboards", "data", "hakmem.db")
    return os.path.join(REAL_HERE, "data", "hakmem.db")


def default_chartjs_path():
    candidates = [os.path.join(HERE, CHARTJS_REL), os.path.join(REAL_HERE, CHARTJS_REL)]
    workspace = os.environ.get("BUILD_WORKSPACE_DIRECTORY")
    if workspace:
        candidates.append(os.path.join(workspace, "dashboards", CHARTJS_REL))
    for c in candidates:
        if os.path.isfile(c):
            return c
    return candidates[0]


def default_static_dir():
    for base in (HERE, REAL_HERE):
        d = os.path.join(base, "static")
        if os.path.isfile(os.path.join(d, "index.html")):
            return d
    return os.path.join(HERE, "static")


def is_loopback(host):
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0].split("%")[0]).is_loopback for i in infos)


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="dashboards/server.py",
        description="hakmem performance dashboard: stores benchmark runs in SQLite and serves the page.")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1; a non-loopback address needs --allow-remote)")
    parser.add_argument("--port", type=int, default=8321,
                        help="TCP port (default 8321; 0 picks a free port, printed on start)")
    parser.add_argument("--db", default=None,
                        help="SQLite database file (default: $HAKMEM_DASHBOARD_DB, else "
                             "<workspace>/dashboards/data/hakmem.db)")
    parser.add_argument("--allow-remote", action="store_true",
                        help="allow binding a non-loopback address (anyone who reaches it can push runs)")
    parser.add_argument("--static-dir", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--chartjs", default=None,
                        help="path of chart.umd.js (default: dashboards/node_modules/chart.js/dist/chart.umd.js)")
    parser.add_argument("--quiet", action="store_true", help="do not log each request")
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error("--port must be in 0..65535")
    if not args.allow_remote and not is_loopback(args.host):
        parser.error("refusing to bind non-loopback host %r without --allow-remote" % args.host)
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    db = os.path.abspath(args.db or default_db_path())
    store = Store(db)
    try:
        store.init()
    except (sqlite3.Error, OSError, RuntimeError) as e:
        sys.stderr.write("hakmem dashboard: cannot open database %s: %s\n" % (db, e))
        return 1
    static_dir = os.path.abspath(args.static_dir or default_static_dir())
    chartjs = args.chartjs if args.chartjs is not None else default_chartjs_path()
    try:
        family = socket.getaddrinfo(args.host.strip("[]"), args.port, type=socket.SOCK_STREAM)[0][0]
        server = DashboardServer((args.host.strip("[]"), args.port), family, store, static_dir, chartjs,
                                 args.quiet)
    except OSError as e:
        sys.stderr.write("hakmem dashboard: cannot listen on %s:%d: %s\n" % (args.host, args.port, e))
        return 1
    host, port = server.server_address[:2]
    shown = "[%s]" % host if ":" in host else host
    sys.stderr.write("[dashboard] database: %s\n" % db)
    if not os.path.isfile(chartjs):
        sys.stderr.write("[dashboard] WARNING: Chart.js not found at %s; the page will show no charts. "
                         "Run tools/setup.sh (or: npm ci --prefix dashboards).\n" % chartjs)
    print("hakmem dashboard: http://%s:%d/" % (shown, port), flush=True)

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    sys.stderr.write("[dashboard] stopped\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
