#!/usr/bin/env python3
"""hakmem performance dashboard: a Flask app over a SQLite database, served by waitress.

Benchmark runs are pushed as JSON (POST /api/runs; the format is
run.schema.json, see dashboards/README.md and dashboards/SCHEMA.md), stored
in SQLite, compared with the previous run of the same configuration on the
same machine (regression alerts), and shown by the page in
dashboards/static/, which compares hakmem with glibc, mimalloc, jemalloc and
tcmalloc across commits.

Debian packages: python3-flask, python3-waitress, python3-jsonschema.

    dashboards/server.py [--host 127.0.0.1] [--port 8321] [--db PATH] [--token-file FILE]
    bazel run //dashboards:serve -- [same flags]
"""

import argparse
import datetime
import hmac
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

import flask
import waitress
from werkzeug.exceptions import HTTPException

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # runschema.py beside this file
import runschema  # noqa: E402

SCHEMA_VERSION = 2  # version of the database layout (schema_version table); 2 added alert_triage

MAX_BODY_BYTES = 10 * 1024 * 1024
# waitress answers 413 itself, before the app and its token check, to a body of this many bytes or more
# (it refuses at >= its limit, so +1 lets a body of exactly MAX_BODY_BYTES through)
WAITRESS_BODY_LIMIT = MAX_BODY_BYTES + 1
MAX_STRING = 200
MAX_RUN_ID = 2**63 - 1
TOKEN_ENV = "HAKMEM_DASHBOARD_TOKEN"
MIN_TOKEN_CHARS = 16  # a shorter secret is guessable
NOISE_FLOOR = 0.03  # moves under 3% are never flagged, however tight the rounds

HAKMEM = "hakmem"
BASELINE = "glibc"

HERE = os.path.dirname(os.path.abspath(__file__))  # runfiles dir under Bazel
REAL_HERE = os.path.dirname(os.path.realpath(__file__))  # the source tree
CHARTJS_REL = os.path.join("node_modules", "chart.js", "dist", "chart.umd.js")

# --------------------------------------------------------------------------
# Storage

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
CREATE TABLE IF NOT EXISTS alert_triage (
    id         INTEGER PRIMARY KEY,
    run_id     INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    benchmark  TEXT NOT NULL,
    params     TEXT NOT NULL,
    threads    INTEGER NOT NULL,
    metric     TEXT NOT NULL,
    variant    TEXT NOT NULL,
    figure     TEXT NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('triaged', 'accepted')),
    note       TEXT NOT NULL DEFAULT '',
    updated_at TEXT NOT NULL,
    UNIQUE (run_id, benchmark, params, threads, metric, variant, figure)
);
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
            elif row[0] < SCHEMA_VERSION:  # 1 -> 2: the DDL above has just added alert_triage
                conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))
            elif row[0] > SCHEMA_VERSION:
                conn.execute("ROLLBACK")
                raise RuntimeError("%s has schema version %d; this server knows only up to %d"
                                   % (self.path, row[0], SCHEMA_VERSION))
            conn.execute("COMMIT")
        finally:
            conn.close()

    # ---- writes -----------------------------------------------------------

    def insert_run(self, run):
        """Stores run in one transaction; returns (run id, alert report against its predecessor).

        Any failure (a refused run, a database error, the process dying) leaves
        the file as it was: SQLite rolls back what COMMIT did not seal.
        """
        conn = self.connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                run_id = self._insert(conn, run)
                report = alert_report(conn, run_id)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return run_id, report
        finally:
            conn.close()

    def delete_run(self, run_id):
        """Deletes a run and its results in one transaction; False if there was none."""
        conn = self.connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                gone = conn.execute("DELETE FROM runs WHERE id = ?", (run_id,)).rowcount
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return gone > 0
        finally:
            conn.close()

    def triage(self, run_id, key, status, note):
        """Marks one current alert of run_id; None if the run is unknown, False if it has no such alert."""
        conn = self.connect()
        try:
            conn.execute("BEGIN IMMEDIATE")  # the alert check and the write see one state
            try:
                if conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
                    conn.execute("ROLLBACK")
                    return None
                report = alert_report(conn, run_id, key[0], key[2], key[3])
                if not any(alert_key(a) == key for a in report["alerts"]):
                    conn.execute("ROLLBACK")
                    return False
                args = (run_id,) + key
                if status == "open":
                    conn.execute("DELETE FROM alert_triage WHERE run_id = ? AND benchmark = ? AND params = ? "
                                 "AND threads = ? AND metric = ? AND variant = ? AND figure = ?", args)
                else:
                    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
                    conn.execute("INSERT INTO alert_triage (run_id, benchmark, params, threads, metric, variant, "
                                 "figure, status, note, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                                 "ON CONFLICT (run_id, benchmark, params, threads, metric, variant, figure) "
                                 "DO UPDATE SET status = excluded.status, note = excluded.note, "
                                 "updated_at = excluded.updated_at", args + (status, note, now))
                report = alert_report(conn, run_id, key[0], key[2], key[3])
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return next(a for a in report["alerts"] if alert_key(a) == key)
        finally:
            conn.close()

    def changes(self, config=None, machine=None):
        """The newest run (of config and machine) against its previous run: every benchmark, alerts first."""
        where = ["1"]
        args = []
        where_config(config, where, args)
        where_machine(machine, where, args)
        conn = self.connect()
        try:
            conn.execute("BEGIN")
            row = conn.execute("SELECT r.*, (SELECT COUNT(*) FROM results x WHERE x.run_id = r.id) AS n "
                               "FROM runs r WHERE " + " AND ".join(where) +
                               " ORDER BY r.order_time DESC, r.run_time DESC, r.id DESC LIMIT 1", args).fetchone()
            if row is None:
                return {"run": None, "previous_run": None, "rows": [], "geomean": []}
            report = alert_report(conn, row["id"])
            prev = report["previous_run"]
            cur_rows = _results_of(conn, row["id"])
            prev_rows = _results_of(conn, prev["id"]) if prev else []
            conn.execute("COMMIT")
        finally:
            conn.close()
        return change_table(run_summary(row), prev, prev_rows, cur_rows, report)

    def alerts(self, run_id):
        conn = self.connect()
        try:
            conn.execute("BEGIN")  # one snapshot for the run and its predecessor
            if conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
                return None
            return alert_report(conn, run_id)
        finally:
            conn.execute("COMMIT")
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
                "SELECT x.benchmark, x.threads, x.metric, r.mode, r.build, r.hostname, "
                "MAX(x.unit) AS unit, MAX(x.higher_is_better) AS hib, "
                "COUNT(DISTINCT r.id) AS runs, MAX(r.run_time) AS last_time "
                "FROM results x JOIN runs r ON r.id = x.run_id "
                "GROUP BY x.benchmark, x.threads, x.metric, r.mode, r.build, r.hostname "
                "ORDER BY x.benchmark, x.threads, x.metric, r.mode, r.build, r.hostname").fetchall()
        finally:
            conn.close()
        items = []
        configs = set()
        machines = set()
        for row in rows:
            config = config_label(row["mode"], row["build"])
            configs.add(config)
            machines.add(row["hostname"])
            items.append({"benchmark": row["benchmark"], "threads": row["threads"], "metric": row["metric"],
                          "mode": row["mode"], "build": row["build"], "config": config,
                          "machine": row["hostname"],
                          "unit": row["unit"], "higher_is_better": bool(row["hib"]),
                          "runs": row["runs"], "last_time": row["last_time"]})
        return {"benchmarks": items, "configs": sorted(configs), "machines": sorted(machines)}

    def series(self, benchmark, threads=None, metric=None, config=None, machine=None):
        """machine: a hostname, a list of them, or None for every machine; each machine gets its own lines."""
        where = ["x.benchmark = ?"]
        args = [benchmark]
        where_machine(machine, where, args)
        if threads is not None:
            where.append("x.threads = ?")
            args.append(threads)
        if metric is not None:
            where.append("x.metric = ?")
            args.append(metric)
        where_config(config, where, args)
        conn = self.connect()
        try:
            conn.execute("BEGIN")  # the rows and the alerts from one snapshot
            rows = conn.execute(
                "SELECT r.id AS run_id, r.commit_sha, r.commit_subject, r.commit_time, r.run_time, "
                "r.mode, r.build, r.hostname, x.* FROM results x JOIN runs r ON r.id = x.run_id "
                "WHERE " + " AND ".join(where) +
                " ORDER BY r.order_time, r.run_time, r.id, x.idx", args).fetchall()
            alerts = []
            seen_runs = []
            for row in rows:
                if row["run_id"] not in seen_runs:
                    seen_runs.append(row["run_id"])
            for index, run_id in enumerate(seen_runs):
                report = alert_report(conn, run_id, benchmark, threads, metric)
                for a in report["alerts"]:
                    a["index"] = index
                    alerts.append(a)
            conn.execute("COMMIT")
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
            key = (row["allocator"], row["variant"], row["threads"], row["metric"], row["params"], row["hostname"])
            groups.setdefault(key, []).append(row)
        # A line never joins runs of two machines: their figures are not comparable.
        varying = [len({k[i] for k in groups}) > 1 for i in range(6)]
        series = []
        for key in sorted(groups, key=series_sort_key):
            allocator, variant, threads_, metric_, params, host = key
            label = series_label(allocator, variant)
            extra = []
            if varying[2]:
                extra.append("%dT" % threads_)
            if varying[3]:
                extra.append(metric_)
            if varying[4]:
                extra.append(params or "default params")
            if varying[5]:
                extra.append(host)
            if extra:
                label += " [" + ", ".join(extra) + "]"
            first = groups[key][0]
            series.append({
                "allocator": allocator, "variant": variant, "threads": threads_, "metric": metric_,
                "params": params, "machine": host, "label": label, "unit": first["unit"],
                "higher_is_better": bool(first["higher_is_better"]),
                "points": [{"run_id": row["run_id"], "index": run_index[row["run_id"]],
                            "commit": row["commit_sha"], "time": row["run_time"],
                            "median": row["median"], "min": row["min_value"], "max": row["max_value"],
                            "peak_rss_kb": row["peak_rss_kb"]} for row in groups[key]],
            })
        unit = series[0]["unit"] if series else ""
        hib = series[0]["higher_is_better"] if series else True
        return {"benchmark": benchmark, "threads": threads, "metric": metric, "config": config,
                "machine": machine, "unit": unit, "higher_is_better": hib, "runs": runs, "series": series,
                "ratios": ratio_series(rows, run_index, varying), "alerts": alerts}

    def latest(self, config=None, benchmark=None, threads=None, metric=None, machine=None):
        where = ["1"]
        args = []
        where_config(config, where, args, prefix="r.")
        where_machine(machine, where, args)
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
        if run is None:  # deleted between the two reads
            return {"run": None, "comparisons": [], "results": []}
        results = run.pop("results")
        run["results_count"] = len(results)
        return {"run": run, "comparisons": compare(results), "results": results}


def where_machine(machine, where, args):
    """Runs of one hostname, of any in a list, or (None, []) of every machine."""
    hosts = [machine] if isinstance(machine, str) else list(machine or [])
    if hosts:
        where.append("r.hostname IN (%s)" % ", ".join("?" * len(hosts)))
        args.extend(hosts)


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
    return (allocator_rank(key[0]), key[0], key[1], key[2], key[3], key[4], key[5])


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
# Regression alerts
#
# A run is compared with the previous run (commit order) of the same
# configuration (config.mode and config.build) on the same machine
# (machine.hostname). Per benchmark group (benchmark, params, threads,
# metric) and hakmem variant, three figures are compared: hakmem's median,
# hakmem's peak RSS, and hakmem's ratio to the best peer of its own run. A
# figure is flagged when it moved by more than the noise: half the sum of the
# two runs' relative spreads ((max - min) / median; for the ratio, hakmem's
# spread plus the best peer's), and at least NOISE_FLOOR.


def previous_run(conn, run_id):
    """The run before run_id in commit order with the same mode, build and hostname."""
    return conn.execute(
        "SELECT p.id, p.commit_sha FROM runs r JOIN runs p ON p.hostname = r.hostname "
        "AND p.mode = r.mode AND p.build = r.build "
        "AND (p.order_time, p.run_time, p.id) < (r.order_time, r.run_time, r.id) "
        "WHERE r.id = ? ORDER BY p.order_time DESC, p.run_time DESC, p.id DESC LIMIT 1",
        (run_id,)).fetchone()


def _results_of(conn, run_id, benchmark=None, threads=None, metric=None):
    where = ["run_id = ?"]
    args = [run_id]
    for column, value in (("benchmark", benchmark), ("threads", threads), ("metric", metric)):
        if value is not None:
            where.append(column + " = ?")
            args.append(value)
    return [result_json(x) for x in conn.execute(
        "SELECT * FROM results WHERE " + " AND ".join(where) + " ORDER BY idx", args)]


def spread(r):
    """Relative spread of a result's rounds; 0 when min and max are unknown."""
    if r["min"] is None or r["max"] is None or r["median"] <= 0:
        return 0.0
    return max(0.0, (r["max"] - r["min"]) / r["median"])


def best_peer(rows, hib, key="median"):
    best = None
    for r in rows:
        if r["allocator"] == HAKMEM or r[key] is None or r[key] <= 0:
            continue
        if best is None or (r[key] > best[key] if hib else r[key] < best[key]):
            best = r
    return best


def figures(rows):
    """{(benchmark, params, threads, metric, variant): {figure: (value, spread, higher_is_better, peer)}}."""
    groups = {}
    for r in rows:
        groups.setdefault((r["benchmark"], r["params"], r["threads"], r["metric"]), []).append(r)
    out = {}
    for key, group in groups.items():
        hib = group[0]["higher_is_better"]
        best = best_peer(group, hib)
        for h in group:
            if h["allocator"] != HAKMEM:
                continue
            f = {"median": (h["median"], spread(h), hib, None)}
            if h["peak_rss_kb"] is not None:
                f["peak_rss_kb"] = (h["peak_rss_kb"], 0.0, False, None)  # no per-round RSS: floor only
            if best is not None:
                f["vs_best_peer"] = (h["median"] / best["median"], spread(h) + spread(best), hib,
                                     series_label(best["allocator"], best["variant"]))
            out[key + (h["variant"],)] = f
    return out


def compare_runs(prev_rows, cur_rows):
    """(regressions, improvements) of cur against prev, each a list of dicts."""
    before = figures(prev_rows)
    worse, better = [], []
    for key, figs in figures(cur_rows).items():
        old = before.get(key)
        if old is None:
            continue
        for name, (value, cur_spread, hib, peer) in figs.items():
            if name not in old:
                continue
            prev_value, prev_spread, _, prev_peer = old[name]
            if prev_value <= 0:
                continue
            change = value / prev_value - 1.0
            threshold = max(NOISE_FLOOR, (prev_spread + cur_spread) / 2.0)
            if abs(change) <= threshold:
                continue
            benchmark, params, threads, metric, variant = key
            entry = {"benchmark": benchmark, "params": params, "threads": threads, "metric": metric,
                     "variant": variant, "label": series_label(HAKMEM, variant), "figure": name,
                     "previous": prev_value, "current": value, "change": change, "threshold": threshold,
                     "higher_is_better": hib}
            if peer is not None:
                entry["peer"] = peer
                entry["previous_peer"] = prev_peer
            (better if (change > 0) == hib else worse).append(entry)
    order = lambda a: (a["benchmark"], a["threads"], a["metric"], a["params"], a["variant"], a["figure"])
    return sorted(worse, key=order), sorted(better, key=order)


def alert_report(conn, run_id, benchmark=None, threads=None, metric=None):
    """Regressions and improvements of run_id against its previous run (optionally one benchmark)."""
    prev = previous_run(conn, run_id)
    report = {"previous_run": None, "alerts": [], "improvements": []}
    if prev is None:
        return report
    cur = conn.execute("SELECT id, commit_sha FROM runs WHERE id = ?", (run_id,)).fetchone()
    report["previous_run"] = {"id": prev["id"], "commit": prev["commit_sha"]}
    worse, better = compare_runs(_results_of(conn, prev["id"], benchmark, threads, metric),
                                 _results_of(conn, run_id, benchmark, threads, metric))
    marks = {tuple(m)[1:7]: {"status": m["status"], "note": m["note"], "updated_at": m["updated_at"]}
             for m in conn.execute("SELECT run_id, benchmark, params, threads, metric, variant, figure, status, "
                                   "note, updated_at FROM alert_triage WHERE run_id = ?", (run_id,))}
    for a in worse + better:
        a.update({"run_id": run_id, "commit": cur["commit_sha"],
                  "previous_run_id": prev["id"], "previous_commit": prev["commit_sha"]})
    for a in worse:
        a["triage"] = marks.get(alert_key(a))
    report["alerts"] = worse
    report["improvements"] = better
    return report


def alert_key(a):
    """What names one alert of a run: (benchmark, params, threads, metric, variant, figure)."""
    return (a["benchmark"], a["params"], a["threads"], a["metric"], a["variant"], a["figure"])


def change_table(run, prev, prev_rows, cur_rows, report):
    """Every hakmem figure of run against prev: alerts first (untriaged before triaged), then worst first.

    better = how much better the current median is (current / previous when higher is better, the
    inverse otherwise), so > 1 is an improvement; geomean is its geometric mean per hakmem variant.
    """
    alerts = {}
    for a in report["alerts"]:
        alerts.setdefault(alert_key(a)[:5], []).append(a)
    before = {(r["benchmark"], r["params"], r["threads"], r["metric"], r["variant"]): r
              for r in prev_rows if r["allocator"] == HAKMEM}
    rows = []
    logs = {}
    for r in cur_rows:
        if r["allocator"] != HAKMEM:
            continue
        key = (r["benchmark"], r["params"], r["threads"], r["metric"], r["variant"])
        old = before.get(key)
        hib = r["higher_is_better"]
        change = better = None
        if old is not None and old["median"] > 0 and r["median"] > 0:
            change = r["median"] / old["median"] - 1.0
            better = r["median"] / old["median"] if hib else old["median"] / r["median"]
            logs.setdefault(r["variant"], []).append(math.log(better))
        mine = alerts.get(key, [])
        rows.append({"benchmark": r["benchmark"], "params": r["params"], "threads": r["threads"],
                     "metric": r["metric"], "variant": r["variant"], "label": series_label(HAKMEM, r["variant"]),
                     "unit": r["unit"], "higher_is_better": hib, "previous": None if old is None else old["median"],
                     "current": r["median"], "change": change, "better": better, "alerts": mine,
                     "open_alerts": sum(1 for a in mine if not a.get("triage"))})
    rows.sort(key=lambda x: (-x["open_alerts"], -len(x["alerts"]),
                             x["better"] if x["better"] is not None else float("inf"),
                             x["benchmark"], x["threads"], x["metric"], x["params"], x["variant"]))
    geomean = [{"variant": v, "label": series_label(HAKMEM, v), "n": len(ls),
                "better": math.exp(sum(ls) / len(ls))} for v, ls in sorted(logs.items())]
    return {"run": run, "previous_run": prev, "rows": rows, "geomean": geomean}


TRIAGE_FIELDS = {"benchmark": str, "params": str, "threads": int, "metric": str, "variant": str,
                 "figure": str, "status": str, "note": str}
TRIAGE_STATUSES = ("triaged", "accepted", "open")


def triage_request(doc):
    """(alert key, status, note) of a POST /api/runs/<id>/triage body, or ApiError 400."""
    if not isinstance(doc, dict):
        raise ApiError(400, "the body must be a JSON object naming an alert and a status")
    unknown = sorted(set(doc) - set(TRIAGE_FIELDS))
    if unknown:
        name = runschema.short_repr(unknown[0])  # escaped: a raw lone surrogate could not be encoded in the reply
        raise ApiError(400, "unknown field %s (allowed: %s)" % (name, ", ".join(TRIAGE_FIELDS)), field=name)
    out = {}
    for name, kind in TRIAGE_FIELDS.items():
        value = doc.get(name, "" if name in ("params", "variant", "note") else None)
        if value is None:
            raise ApiError(400, "%s: missing required field" % name, field=name)
        if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise ApiError(400, "%s: expected an integer, got %s" % (name, runschema.json_type(value)), field=name)
        if kind is int and not 1 <= value <= 4096:  # the results table's range; a bigger int would overflow SQLite
            raise ApiError(400, "%s: %s is out of range (allowed 1..4096)" % (name, value), field=name)
        if kind is str:
            if not isinstance(value, str):
                raise ApiError(400, "%s: expected a string, got %s" % (name, runschema.json_type(value)), field=name)
            if len(value) > MAX_STRING:
                raise ApiError(400, "%s: string is %d characters long; the limit is %d"
                               % (name, len(value), MAX_STRING), field=name)
            why = runschema._text_problem(value) or ("must not contain NUL characters" if "\0" in value else None)
            if why:
                raise ApiError(400, "%s: %s" % (name, why), field=name)
        out[name] = value
    if out["status"] not in TRIAGE_STATUSES:
        raise ApiError(400, "status: must be one of %s, got %s" % (", ".join(TRIAGE_STATUSES),
                                                                   runschema.short_repr(out["status"])), field="status")
    key = (out["benchmark"], out["params"], out["threads"], out["metric"], out["variant"], out["figure"])
    return key, out["status"], out["note"]


def ratio_series(rows, run_index, varying):
    """hakmem / glibc and hakmem / best peer across commits, for the metric and for peak RSS."""
    by_run = {}
    for row in rows:
        r = result_json(row)
        by_run.setdefault((row["run_id"], r["threads"], r["metric"], r["params"], row["hostname"]), []).append(r)
    lines = {}
    for (run_id, threads, metric, params, host), group in by_run.items():
        hib = group[0]["higher_is_better"]
        glibc = next((r for r in group if r["allocator"] == BASELINE), None)
        peers = {
            ("median", "glibc"): glibc,
            ("median", "best"): best_peer(group, hib),
            ("peak_rss_kb", "glibc"): glibc,
            ("peak_rss_kb", "best"): best_peer(group, False, "peak_rss_kb"),
        }
        for h in group:
            if h["allocator"] != HAKMEM:
                continue
            for (figure, kind), peer in peers.items():
                if peer is None or h[figure] is None or not peer[figure]:
                    continue
                extra = []
                if varying[2]:
                    extra.append("%dT" % threads)
                if varying[3]:
                    extra.append(metric)
                if varying[4]:
                    extra.append(params or "default params")
                if varying[5]:
                    extra.append(host)
                label = "%s / %s" % (series_label(HAKMEM, h["variant"]), "glibc" if kind == "glibc" else "best peer")
                if extra:
                    label += " [" + ", ".join(extra) + "]"
                line = lines.setdefault((figure, label), {
                    "figure": figure, "kind": kind, "variant": h["variant"], "label": label, "machine": host,
                    "threads": threads, "metric": metric, "params": params, "points": []})
                line["points"].append({"index": run_index[run_id], "run_id": run_id,
                                       "ratio": h[figure] / peer[figure],
                                       "peer": series_label(peer["allocator"], peer["variant"])})
    return [lines[k] for k in sorted(lines, key=lambda k: (k[0] != "median", k[1]))]


# --------------------------------------------------------------------------
# HTTP (Flask)

STATIC_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".json": "application/json; charset=utf-8",
}
STATIC_FILES = ("index.html", "app.js", "style.css", "favicon.svg")
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
       "frame-ancestors 'none'")


class ApiError(Exception):
    """An answer other than 2xx, as {"error": message, ...extra}."""

    def __init__(self, status, message, headers=None, **extra):
        self.status = status
        self.message = message
        self.headers = headers or {}
        self.extra = extra
        super().__init__(message)


def json_response(status, obj, headers=None):
    body = json.dumps(obj, allow_nan=False, ensure_ascii=False)
    response = flask.Response(body, status=status, mimetype="application/json")
    response.headers["Content-Type"] = "application/json; charset=utf-8"
    for k, v in (headers or {}).items():
        response.headers[k] = v
    return response


def load_token(token_file=None):
    """The push token from --token-file, else $HAKMEM_DASHBOARD_TOKEN, else None (open pushes)."""
    if token_file:
        with open(token_file, encoding="utf-8") as f:
            token = f.read().strip()
        source = token_file
    else:
        token = os.environ.get(TOKEN_ENV, "").strip()
        source = "$" + TOKEN_ENV
        if not token:
            return None
    if len(token) < MIN_TOKEN_CHARS or any(c.isspace() for c in token):
        raise ValueError("the token in %s must be at least %d characters with no white space "
                         "(e.g. python3 -c 'import secrets; print(secrets.token_hex(32))')"
                         % (source, MIN_TOKEN_CHARS))
    return token


def create_app(store, static_dir=None, chartjs_path=None, token=None, quiet=True, commit_url=""):
    """The dashboard as a WSGI app; tests drive it with app.test_client()."""
    app = flask.Flask(__name__, static_folder=None)
    app.config["JSON_SORT_KEYS"] = False
    static_dir = static_dir or default_static_dir()
    chartjs_path = chartjs_path if chartjs_path is not None else default_chartjs_path()
    expected = token.encode("utf-8") if token else None

    def require_token(what):
        """401 without credentials, 403 with wrong ones; open when the server has no token."""
        if expected is None:
            if what in ("delete", "triage"):  # never open: only a server with a token allows them
                raise ApiError(403, "%s needs a server started with --token-file or $%s"
                               % ("deleting runs" if what == "delete" else "triaging alerts", TOKEN_ENV))
            return
        header = flask.request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        if not header or scheme.lower() != "bearer" or not given.strip():
            raise ApiError(401, "%s needs 'Authorization: Bearer <token>' (this server requires a token)"
                           % {"push": "pushing a run", "delete": "deleting a run", "triage": "triaging an alert"}[what],
                           {"WWW-Authenticate": 'Bearer realm="hakmem-dashboard"'})
        # compare_digest takes time independent of where the strings differ
        if not hmac.compare_digest(given.strip().encode("utf-8"), expected):
            raise ApiError(403, "wrong token")

    def param(name, kind=str, required=False):
        value = flask.request.args.getlist(name)
        if not value or value[-1] == "":
            if required:
                raise ApiError(400, "missing query parameter: %s" % name)
            return None
        value = value[-1]
        if len(value) > MAX_STRING:
            raise ApiError(400, "query parameter %s is too long" % name)
        if kind is int:
            if not re.fullmatch(r"[0-9]{1,9}", value):  # str.isdigit() also takes "²"
                raise ApiError(400, "query parameter %s must be a positive integer, got %r" % (name, value))
            return int(value)
        return value

    @app.errorhandler(ApiError)
    def on_api_error(e):
        return json_response(e.status, dict({"error": e.message}, **e.extra), e.headers)

    @app.errorhandler(runschema.RunError)
    def on_run_error(e):
        body = {"error": str(e), "field": e.field}
        if e.index is not None:
            body["index"] = e.index
        return json_response(400, body)

    @app.errorhandler(HTTPException)
    def on_http_error(e):
        headers = {}
        if e.code == 405:
            allow = e.valid_methods or []
            headers["Allow"] = ", ".join(sorted(allow))
            message = "%s is not allowed on %s (allowed: %s)" % (
                flask.request.method, flask.request.path, ", ".join(sorted(allow)))
        elif e.code == 404:
            what = "API endpoint" if flask.request.path.startswith("/api/") else "page"
            message = "no such %s: %s" % (what, flask.request.path)
        else:
            message = e.description or e.name
        return json_response(e.code, {"error": message}, headers)

    @app.errorhandler(Exception)
    def on_crash(e):
        app.logger.exception("internal error on %s %s", flask.request.method, flask.request.path)
        return json_response(500, {"error": "internal server error (see the server log)"})

    @app.before_request
    def started():
        flask.g.started = time.monotonic()

    @app.after_request
    def headers_and_log(response):
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Content-Security-Policy"] = CSP
        if not quiet:
            ms = (time.monotonic() - flask.g.get("started", time.monotonic())) * 1000
            sys.stderr.write("[dashboard] %s %s -> %d (%.1f ms)\n" % (
                flask.request.method, flask.request.full_path.rstrip("?")[:200], response.status_code, ms))
        return response

    # ---- static files -------------------------------------------------------

    def send_static(path):
        ctype = STATIC_TYPES.get(os.path.splitext(path)[1], "application/octet-stream")
        with open(path, "rb") as fh:
            return flask.Response(fh.read(), status=200, content_type=ctype)

    @app.get("/")
    @app.get("/<name>")
    def static_file(name="index.html"):
        if name not in STATIC_FILES or not os.path.isfile(os.path.join(static_dir, name)):
            flask.abort(404)
        return send_static(os.path.join(static_dir, name))

    @app.get("/vendor/chart.umd.js")
    def chartjs():
        if not chartjs_path or not os.path.isfile(chartjs_path):
            msg = "// Chart.js is not installed: run tools/setup.sh or npm ci --prefix dashboards\n"
            return flask.Response(msg, status=404, content_type="text/javascript; charset=utf-8")
        return send_static(chartjs_path)

    # ---- reads (open to everyone) -------------------------------------------

    @app.get("/healthz")
    def health():
        conn = store.connect()
        try:
            runs = conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
            version = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]
        finally:
            conn.close()
        chart = bool(chartjs_path and os.path.isfile(chartjs_path))
        return json_response(200, {"ok": True, "runs": runs, "schema_version": version, "chartjs": chart,
                                   "auth": expected is not None, "commit_url": commit_url})

    @app.get("/api/runs")
    def list_runs():
        return json_response(200, store.list_runs())

    def known_id(run_id):
        """SQLite ids are 64-bit: a longer number names no run (and must not reach sqlite3)."""
        if run_id > MAX_RUN_ID:
            raise ApiError(404, "no run with id %d" % run_id)
        return run_id

    @app.get("/api/runs/<int:run_id>")
    def get_run(run_id):
        run = store.get_run(known_id(run_id))
        if run is None:
            raise ApiError(404, "no run with id %d" % run_id)
        return json_response(200, run)

    @app.get("/api/runs/<int:run_id>/alerts")
    def get_alerts(run_id):
        report = store.alerts(known_id(run_id))
        if report is None:
            raise ApiError(404, "no run with id %d" % run_id)
        return json_response(200, report)

    @app.get("/api/benchmarks")
    def benchmarks():
        return json_response(200, store.benchmarks())

    def machines():
        """Every non-empty machine=H parameter (repeat it for several machines); None for all."""
        hosts = [h for h in flask.request.args.getlist("machine") if h != ""]
        for h in hosts:
            if len(h) > MAX_STRING:
                raise ApiError(400, "query parameter machine is too long")
        return hosts or None

    @app.get("/api/series")
    def series():
        return json_response(200, store.series(
            param("benchmark", required=True), param("threads", int), param("metric"), param("config"),
            machines()))

    @app.get("/api/latest")
    def latest():
        return json_response(200, store.latest(
            param("config"), param("benchmark"), param("threads", int), param("metric"), machines()))

    # ---- writes (token when the server has one) ------------------------------

    @app.post("/api/runs")
    def push():
        require_token("push")
        req = flask.request
        ctype = (req.mimetype or "").lower()
        if req.content_length is None:
            raise ApiError(400, "Content-Length header missing or invalid")
        if ctype != "application/json":
            raise ApiError(400, "Content-Type must be application/json, got %s" % (ctype or "none"))
        if req.content_length > MAX_BODY_BYTES:
            raise ApiError(400, "request body too large: %d bytes; the limit is %d bytes (10 MiB)"
                           % (req.content_length, MAX_BODY_BYTES))
        body = req.get_data(cache=False)
        if not body:
            raise ApiError(400, "empty request body: expected a run as JSON")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ApiError(400, "malformed JSON: body is not valid UTF-8 (byte %d)" % e.start)
        try:
            doc = runschema.loads(text)
        except json.JSONDecodeError as e:
            raise ApiError(400, "malformed JSON: %s at line %d column %d" % (e.msg, e.lineno, e.colno))
        except RecursionError:
            raise ApiError(400, "malformed JSON: nested too deeply")
        except ValueError as e:  # JsonError, or a number json.loads cannot convert
            raise ApiError(400, "malformed JSON: %s" % e)
        run, ignored = runschema.check(doc)
        try:
            run_id, report = store.insert_run(run)
        except DuplicateRun as e:
            raise ApiError(409, "duplicate run: commit %s at %s on %s is already stored as run %d; "
                                "nothing changed" % (run["commit"], run["time"], run["machine"]["hostname"],
                                                     e.run_id), id=e.run_id)
        except sqlite3.IntegrityError as e:  # the checks should have caught it; nothing was stored
            raise ApiError(400, "rejected by the database: %s" % e)
        reply = {"id": run_id, "results": len(run["results"])}
        if ignored:
            reply["ignored_fields"] = ignored
        reply.update(report)
        return json_response(201, reply, {"Location": "/api/runs/%d" % run_id})

    @app.get("/api/changes")
    def changes():
        return json_response(200, store.changes(param("config"), machines()))

    @app.post("/api/runs/<int:run_id>/triage")
    def triage(run_id):
        require_token("triage")
        req = flask.request
        if (req.mimetype or "").lower() != "application/json":
            raise ApiError(400, "Content-Type must be application/json, got %s" % (req.mimetype or "none"))
        if req.content_length is None or req.content_length > 64 * 1024:
            raise ApiError(400, "a triage body has a Content-Length of at most 64 KiB")
        try:
            doc = runschema.loads(req.get_data(cache=False).decode("utf-8"))
        except UnicodeDecodeError as e:
            raise ApiError(400, "malformed JSON: body is not valid UTF-8 (byte %d)" % e.start)
        except json.JSONDecodeError as e:
            raise ApiError(400, "malformed JSON: %s at line %d column %d" % (e.msg, e.lineno, e.colno))
        except (ValueError, RecursionError) as e:
            raise ApiError(400, "malformed JSON: %s" % e)
        key, status, note = triage_request(doc)
        alert = store.triage(known_id(run_id), key, status, note)
        if alert is None:
            raise ApiError(404, "no run with id %d" % run_id)
        if alert is False:
            raise ApiError(404, "run %d has no such alert now: benchmark %r, params %r, %d threads, metric %r, "
                                "variant %r, figure %r" % ((run_id,) + key))
        return json_response(200, alert)

    @app.delete("/api/runs/<int:run_id>")
    def delete(run_id):
        require_token("delete")
        if not store.delete_run(known_id(run_id)):
            raise ApiError(404, "no run with id %d" % run_id)
        return json_response(200, {"deleted": run_id})

    return app


# --------------------------------------------------------------------------
# Command line


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
                        help="address to bind (default 127.0.0.1; a non-loopback address needs a token)")
    parser.add_argument("--port", type=int, default=8321,
                        help="TCP port (default 8321; 0 picks a free port, printed on start)")
    parser.add_argument("--db", default=None,
                        help="SQLite database file (default: $HAKMEM_DASHBOARD_DB, else "
                             "<workspace>/dashboards/data/hakmem.db)")
    parser.add_argument("--token-file", default=None, metavar="FILE",
                        help="pushes and deletions must carry 'Authorization: Bearer <the token in FILE>' "
                             "(default: $%s; without either, pushes are open and deletion is off)" % TOKEN_ENV)
    parser.add_argument("--commit-url", default=os.environ.get("HAKMEM_DASHBOARD_COMMIT_URL", ""),
                        metavar="TEMPLATE",
                        help="link of a commit on the page, {commit} replaced by the sha "
                             "(default $HAKMEM_DASHBOARD_COMMIT_URL; none: the run's JSON)")
    parser.add_argument("--threads", type=int, default=4, help="waitress worker threads (default 4)")
    parser.add_argument("--static-dir", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--chartjs", default=None,
                        help="path of chart.umd.js (default: dashboards/node_modules/chart.js/dist/chart.umd.js)")
    parser.add_argument("--quiet", action="store_true", help="do not log each request")
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error("--port must be in 0..65535")
    if not 1 <= args.threads <= 64:
        parser.error("--threads must be in 1..64")
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        token = load_token(args.token_file)
    except (OSError, ValueError) as e:
        sys.stderr.write("hakmem dashboard: cannot use the token: %s\n" % e)
        return 2
    if token is None and not is_loopback(args.host):
        sys.stderr.write("hakmem dashboard: refusing to listen on non-loopback address %r without a token: "
                         "anyone who reaches it could push runs. Start it with --token-file FILE or $%s.\n"
                         % (args.host, TOKEN_ENV))
        return 2
    db = os.path.abspath(args.db or default_db_path())
    store = Store(db)
    try:
        store.init()
    except (sqlite3.Error, OSError, RuntimeError) as e:
        sys.stderr.write("hakmem dashboard: cannot open database %s: %s\n" % (db, e))
        return 1
    static_dir = os.path.abspath(args.static_dir or default_static_dir())
    chartjs = args.chartjs if args.chartjs is not None else default_chartjs_path()
    app = create_app(store, static_dir, chartjs, token, args.quiet, args.commit_url)
    try:
        server = waitress.create_server(app, host=args.host.strip("[]"), port=args.port, threads=args.threads,
                                        max_request_body_size=WAITRESS_BODY_LIMIT, ident="hakmem-dashboard",
                                        clear_untrusted_proxy_headers=True)
    except (OSError, ValueError) as e:
        sys.stderr.write("hakmem dashboard: cannot listen on %s:%d: %s\n" % (args.host, args.port, e))
        return 1
    host, port = server.effective_host, int(server.effective_port)
    shown = "[%s]" % host if ":" in host else host
    sys.stderr.write("[dashboard] database: %s\n" % db)
    sys.stderr.write("[dashboard] pushes: %s\n" % ("need the token" if token else "open (no token)"))
    if not os.path.isfile(chartjs):
        sys.stderr.write("[dashboard] WARNING: Chart.js not found at %s; the page will show no charts. "
                         "Run tools/setup.sh (or: npm ci --prefix dashboards).\n" % chartjs)
    print("hakmem dashboard: http://%s:%d/" % (shown, port), flush=True)

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    sys.stderr.write("[dashboard] stopped\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
