#!/usr/bin/env python3
"""API tests of the hakmem dashboard (//dashboards:api_test).

Most tests drive the Flask app in-process with its test client; the last
class starts server.py as a process (waitress) to check the command line and
that a server killed with SIGKILL in the middle of a push loses nothing.

    bazel test //dashboards:api_test
    /usr/bin/python3 dashboards/api_test.py -v
"""

import copy
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import runschema  # noqa: E402
import server  # noqa: E402

TMP_ROOT = os.environ.get("TEST_TMPDIR") or None
TOKEN = "test-token-0123456789abcdef"
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
PEERS = ("glibc", "mimalloc", "jemalloc", "tcmalloc")


def result(benchmark, allocator, median, variant="", threads=2, spread=0.0, rss=10000,
           metric="ops_per_sec", hib=True):
    """One result whose rounds spread by `spread` (relative) around the median."""
    lo, hi = median * (1 - spread / 2), median * (1 + spread / 2)
    return {"benchmark": benchmark, "params": "p", "threads": threads, "allocator": allocator,
            "variant": variant, "metric": metric, "unit": "ops/s" if hib else "ns",
            "higher_is_better": hib, "median": median, "min": lo, "max": hi,
            "values": [lo, median, hi], "wall_s": 1.0, "cpu_s": 2.0, "peak_rss_kb": rss}


def group(benchmark, hakmem, peers=None, spread=0.0, rss=10000, **kw):
    """hakmem (fastcache) and the four peers on one benchmark."""
    peers = peers or {"glibc": 50.0, "mimalloc": 80.0, "jemalloc": 70.0, "tcmalloc": 75.0}
    out = [result(benchmark, "hakmem", hakmem, "fastcache", spread=spread, rss=rss, **kw)]
    out += [result(benchmark, name, value, spread=spread, **kw) for name, value in peers.items()]
    return out


def make_run(commit, when, results, host="host-a", mode="quick", build="release"):
    return {"schema": 1, "commit": commit, "commit_subject": "subject of " + commit,
            "commit_time": when, "time": when, "branch": "main",
            "machine": {"hostname": host, "cpus": 2, "cpu_model": "cpu", "kernel": "6.1", "mem_gb": 8},
            "config": {"mode": mode, "rounds": 3, "build": build}, "results": results}


def base_results():
    return (group("larson", 100.0) + group("mtstress/churn", 200.0, spread=0.02)
            + group("mtstress/prodcons", 300.0, spread=0.30))


class AppTest(unittest.TestCase):
    token = None

    def setUp(self):
        self.tmp = tempfile.mkdtemp(dir=TMP_ROOT)
        self.db = os.path.join(self.tmp, "dash.db")
        self.store = server.Store(self.db)
        self.store.init()
        self.app = server.create_app(self.store, chartjs_path="", token=self.token)
        self.client = self.app.test_client()

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def auth(self, token=None):
        return {"Authorization": "Bearer " + (token or self.token)} if (token or self.token) else {}

    def push(self, run, headers=None, client=None):
        body = run if isinstance(run, (bytes, str)) else json.dumps(run)
        return (client or self.client).post("/api/runs", data=body, content_type="application/json",
                                            headers=self.auth() if headers is None else headers)

    def snapshot(self):
        """Everything the API shows, to prove a refused request changed nothing."""
        out = {"runs": self.client.get("/api/runs").data, "benchmarks": self.client.get("/api/benchmarks").data}
        for r in json.loads(out["runs"])["runs"]:
            out[r["id"]] = self.client.get("/api/runs/%d" % r["id"]).data
        return out

    def count(self, table):
        conn = sqlite3.connect(self.db)
        try:
            return conn.execute("SELECT COUNT(*) FROM " + table).fetchone()[0]
        finally:
            conn.close()


class PushTest(AppTest):
    def test_push_and_read_back(self):
        run = make_run("abc1234", "2026-01-01T00:00:00Z", base_results())
        res = self.push(run)
        self.assertEqual(res.status_code, 201, res.data)
        body = res.get_json()
        self.assertEqual(body["results"], 15)
        self.assertEqual(body["alerts"], [])
        self.assertIsNone(body["previous_run"])
        self.assertEqual(res.headers["Location"], "/api/runs/%d" % body["id"])
        got = self.client.get("/api/runs/%d" % body["id"]).get_json()
        self.assertEqual(got["commit"], "abc1234")
        self.assertEqual([(r["benchmark"], r["allocator"], r["median"]) for r in got["results"]],
                         [(r["benchmark"], r["allocator"], r["median"]) for r in run["results"]])
        self.assertEqual(self.push(run).status_code, 409)
        self.assertEqual(self.count("runs"), 1)

    def test_fixture_runs_validate(self):
        with open(os.path.join(HERE, "testdata", "run_fixture.json")) as f:
            for run in json.load(f):
                self.assertEqual(runschema.problems(run), [])
                self.assertEqual(self.push(run).status_code, 201)

    def test_new_benchmark_ids_are_listed_and_compared(self):
        """Benchmark ids are data: the issue 11/15 shapes need no change to the server."""
        new = {"mtstress/xthread-mixed": 2, "mtstress/huge": 1, "mtstress/oversubscribed": 32,
               "mtstress/batch-lifo": 1, "mtstress/batch-fifo": 1, "mtstress/workingset": 1,
               "mtstress/oneway64": 2}
        results = []
        for name, t in new.items():
            results += group(name, 100.0, threads=t)
        results += group("micro/BM_BatchLIFO/size:64/n:1600", 4.0, metric="ns_per_op", hib=False,
                         threads=1, peers={"glibc": 8.0, "mimalloc": 2.0})
        results += group("micro/BM_OneWay64/threads:2", 30.0, metric="ns_per_op", hib=False,
                         peers={"glibc": 60.0, "mimalloc": 40.0})
        res = self.push(make_run("abc1234", "2026-01-01T00:00:00Z", results))
        self.assertEqual(res.status_code, 201, res.data)
        listed = {(b["benchmark"], b["threads"], b["metric"])
                  for b in self.client.get("/api/benchmarks").get_json()["benchmarks"]}
        want = {(name, t, "ops_per_sec") for name, t in new.items()}
        want |= {("micro/BM_BatchLIFO/size:64/n:1600", 1, "ns_per_op"),
                 ("micro/BM_OneWay64/threads:2", 2, "ns_per_op")}
        self.assertEqual(listed, want)
        for name, t in new.items():
            s = self.client.get("/api/series", query_string={"benchmark": name, "threads": t}).get_json()
            self.assertEqual(len(s["runs"]), 1, name)
            best = [r for r in s["ratios"] if (r["figure"], r["kind"]) == ("median", "best")][0]
            self.assertEqual([(round(p["ratio"], 6), p["peer"]) for p in best["points"]],
                             [(1.25, "mimalloc")], name)
        latest = self.client.get("/api/latest").get_json()
        by = {(c["benchmark"], c["threads"]): c for c in latest["comparisons"]}
        self.assertEqual(len(by), len(want))
        lifo = by[("micro/BM_BatchLIFO/size:64/n:1600", 1)]["hakmem"][0]
        self.assertEqual((lifo["vs_best_peer"]["peer"], lifo["vs_best_peer"]["ratio"],
                          lifo["vs_best_peer"]["better"]), ("mimalloc", 2.0, False))
        oneway = by[("micro/BM_OneWay64/threads:2", 2)]["hakmem"][0]
        self.assertEqual((oneway["vs_glibc"]["ratio"], oneway["vs_glibc"]["better"]), (0.5, True))

    def test_unknown_fields_are_reported(self):
        run = make_run("abc1234", "2026-01-01T00:00:00Z", group("larson", 100.0))
        run["extra"] = 1
        run["results"][0]["note"] = "x"
        body = self.push(run).get_json()
        self.assertEqual(body["ignored_fields"], ["extra", "results[*].note"])

    def test_reads_and_errors_are_json(self):
        self.assertEqual(self.client.get("/api/nope").status_code, 404)
        self.assertIn("no such API endpoint", self.client.get("/api/nope").get_json()["error"])
        res = self.client.post("/api/latest", data="")
        self.assertEqual(res.status_code, 405)
        self.assertIn("GET", res.headers["Allow"])
        self.assertEqual(self.client.get("/api/series").status_code, 400)
        self.assertEqual(self.client.get("/api/series?benchmark=x&threads=two").status_code, 400)
        self.assertEqual(self.client.get("/api/runs/77").status_code, 404)
        self.assertEqual(self.client.get("/api/runs/%d" % 2**70).status_code, 404)
        self.assertEqual(self.client.get("/api/runs/%d/alerts" % 2**70).status_code, 404)
        self.assertEqual(self.client.get("/api/series?benchmark=x&threads=%C2%B2").status_code, 400)
        self.assertEqual(self.client.head("/api/runs").status_code, 200)
        self.assertEqual(self.client.get("/healthz").get_json()["runs"], 0)
        res = self.client.get("/")
        self.assertEqual(res.status_code, 200)
        self.assertIn("default-src 'self'", res.headers["Content-Security-Policy"])
        self.assertEqual(self.client.get("/../server.py").status_code, 404)
        self.assertEqual(self.client.get("/vendor/chart.umd.js").status_code, 404)


class SchemaRefusalTest(AppTest):
    def setUp(self):
        super().setUp()
        self.good = make_run("abc1234", "2026-01-01T00:00:00Z", group("larson", 100.0))
        self.assertEqual(self.push(self.good).status_code, 201)
        self.before = self.snapshot()

    def refused(self, doc, pattern, field=None, ctype="application/json"):
        body = doc if isinstance(doc, (str, bytes)) else json.dumps(doc)
        res = self.client.post("/api/runs", data=body, content_type=ctype, headers=self.auth())
        self.assertEqual(res.status_code, 400, res.data)
        message = res.get_json()["error"]
        self.assertRegex(message, pattern)
        if field is not None:
            self.assertEqual(res.get_json()["field"], field)
        self.assertEqual(self.snapshot(), self.before, "a refused push changed stored data")

    def bad(self, change):
        doc = copy.deepcopy(self.good)
        doc["commit"] = "def5678"  # else a good body would be a 409, not a schema refusal
        change(doc)
        return doc

    def test_refusals(self):
        self.refused(b"{", r"^malformed JSON")
        self.refused(b"\xff\xfe", r"not valid UTF-8")
        self.refused("[1]", r"must be a JSON object")
        self.refused(json.dumps(self.good), r"Content-Type must be application/json", ctype="text/plain")
        self.refused(self.bad(lambda d: d.pop("time")), r"^time: missing required field", "time")
        self.refused(self.bad(lambda d: d["results"][1].pop("median")),
                     r"^results\[1\]\.median: missing required field \(result index 1\)", "results[1].median")
        self.refused(self.bad(lambda d: d["results"][0].update(threads="2")),
                     r"threads: expected an integer, got string")
        self.refused(self.bad(lambda d: d["results"][0].update(threads=True)),
                     r"threads: expected an integer, got boolean")
        self.refused(self.bad(lambda d: d["results"][0].update(higher_is_better=1)),
                     r"higher_is_better: expected true or false, got number")
        self.refused(self.bad(lambda d: d["results"][2].update(median=-1)), r"must not be negative")
        self.refused(self.bad(lambda d: d["results"][2].update(peak_rss_kb=2e10)), r"absurd peak RSS")
        self.refused(self.bad(lambda d: d.update(commit="not-hex")), r"^commit: invalid value")
        self.refused(self.bad(lambda d: d["machine"].update(hostname=" ")), r"^machine\.hostname: must not be empty")
        self.refused(self.bad(lambda d: d["config"].update(mode="a\u0000b")), r"NUL")
        self.refused(self.bad(lambda d: d.update(schema=2)), r"^schema: unsupported run schema 2")
        self.refused(self.bad(lambda d: d.update(time="2026-13-01")), r"^time: not an ISO-8601 time")
        self.refused(self.bad(lambda d: d.update(time="1999-01-01T00:00:00Z")), r"year outside 2000\.\.2100")
        self.refused(self.bad(lambda d: d["results"][0].update(min=101.0, values=[])),
                     r"min 101\.0 is greater than median")
        self.refused(self.bad(lambda d: d["results"][0].update(values=[1.0])), r"values\[0\]: value 1\.0 lies outside")
        self.refused(self.bad(lambda d: d["results"].append(dict(d["results"][0]))), r"duplicates results\[0\]")
        self.refused(self.bad(lambda d: d.update(results=[])), r"^results: must not be empty")
        self.refused(json.dumps(self.bad(lambda d: d["results"][0].update(max="NaN"))).replace('"NaN"', "NaN"),
                     r"results\[0\]\.max: must be a finite number, got NaN")
        self.refused(json.dumps({"schema": 1, "pad": "x" * (11 * 1024 * 1024)}), r"request body too large")

    def test_overlong_numbers(self):
        # Python refuses to convert integers over 4300 digits with a bare ValueError (it was a 500).
        text = json.dumps(self.bad(lambda d: d["results"][0].update(median=12345)))
        self.refused(text.replace("12345", "9" * 5000), r"^malformed JSON: a number with 5000 digits")
        text = json.dumps(self.bad(lambda d: d["results"][0].update(threads=2)))
        self.refused(text.replace('"threads": 2', '"threads": -' + "1" * 5000), r"number with 5000 digits")
        # A 5000-digit decimal fraction is a float, infinite in Python.
        text = json.dumps(self.bad(lambda d: d["results"][0].update(max=12345)))
        self.refused(text.replace("12345", "9" * 5000 + ".5"), r"results\[0\]\.max: must be a finite number")

    def test_lone_surrogates(self):
        # json.dumps writes the surrogate as the escape \ud800, as any pusher would send it.
        self.refused(self.bad(lambda d: d["results"][1].update(benchmark="lar\ud800son")),
                     r"^results\[1\]\.benchmark: contains a lone UTF-16 surrogate U\+D800", "results[1].benchmark")
        self.refused(self.bad(lambda d: d["machine"].update(hostname="\udfffhost")),
                     r"^machine\.hostname: contains a lone UTF-16 surrogate U\+DFFF", "machine.hostname")
        self.refused(self.bad(lambda d: d.update(commit_subject="fix \udc00")), r"lone UTF-16 surrogate")
        self.refused(self.bad(lambda d: d["results"][0].update({"x\ud800": 1})),
                     r"^results\[0\]: a field name contains a lone UTF-16 surrogate", "results[0]")
        # A surrogate pair is one real character, and is stored.
        ok = self.bad(lambda d: d["machine"].update(hostname="host-\U0001F600"))
        res = self.push(ok)
        self.assertEqual(res.status_code, 201, res.data)
        got = self.client.get("/api/runs/%d" % res.get_json()["id"]).get_json()
        self.assertEqual(got["machine"]["hostname"], "host-\U0001F600")

    def test_bidirectional_controls(self):
        for ch in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c":
            code = "U\\+%04X" % ord(ch)
            self.refused(self.bad(lambda d: d["results"][0].update(benchmark="larson" + ch + "x")),
                         r"^results\[0\]\.benchmark: contains the bidirectional control character " + code,
                         "results[0].benchmark")
            self.refused(self.bad(lambda d: d["machine"].update(hostname=ch + "host")),
                         r"^machine\.hostname: contains the bidirectional control character " + code)
            self.refused(self.bad(lambda d: d["results"][0].update(allocator="glibc" + ch)),
                         r"^results\[0\]\.allocator: contains the bidirectional")
        # Other non-ASCII text is fine.
        res = self.push(self.bad(lambda d: d["results"][0].update(benchmark="größe/\u05d0")))
        self.assertEqual(res.status_code, 201, res.data)

    def test_duplicate_keys(self):
        text = json.dumps(self.bad(lambda d: None))
        self.refused(text.replace('"commit": "def5678"', '"commit": "abc1234", "commit": "def5678"'),
                     r'^malformed JSON: duplicate key "commit" in one object')
        text = json.dumps(self.bad(lambda d: d["results"][0].update(median=100.0)))
        self.refused(text.replace('"median": 100.0', '"median": 100.0, "median": 1e300', 1),
                     r'^malformed JSON: duplicate key "median"')
        self.refused(text.replace('"hostname": "host-a"', '"hostname": "host-a", "hostname": "host-b"'),
                     r'duplicate key "hostname"')
        with self.assertRaisesRegex(runschema.JsonError, "duplicate key"):
            runschema.loads('{"a": {"b": 1, "b": 1}}')
        self.assertEqual(runschema.loads('{"a": {"b": 1, "c": [{"b": 2}]}}'), {"a": {"b": 1, "c": [{"b": 2}]}})

    def test_problems_lists_every_schema_error(self):
        doc = self.bad(lambda d: (d["results"][0].update(threads=0), d["results"][1].update(median="x")))
        found = [str(p) for p in runschema.problems(doc)]
        self.assertEqual(len(found), 2, found)
        self.assertRegex(found[0], r"results\[0\]\.threads: 0 is out of range")
        self.assertRegex(found[1], r"results\[1\]\.median: expected a number, got string")

    def test_schema_file_is_a_valid_json_schema(self):
        import jsonschema
        schema = runschema.load_schema()
        jsonschema.validators.validator_for(schema).check_schema(schema)


class AuthTest(AppTest):
    token = TOKEN

    def test_push_needs_the_token(self):
        run = make_run("abc1234", "2026-01-01T00:00:00Z", group("larson", 100.0))
        res = self.push(run, headers={})
        self.assertEqual(res.status_code, 401)
        self.assertIn("Bearer", res.headers["WWW-Authenticate"])
        self.assertIn("Authorization: Bearer", res.get_json()["error"])
        self.assertEqual(self.push(run, headers={"Authorization": "Basic " + TOKEN}).status_code, 401)
        self.assertEqual(self.push(run, headers={"Authorization": "Bearer"}).status_code, 401)
        res = self.push(run, headers={"Authorization": "Bearer " + TOKEN[:-1] + "X"})
        self.assertEqual(res.status_code, 403)
        self.assertEqual(res.get_json()["error"], "wrong token")
        self.assertEqual(self.push(run, headers={"Authorization": "Bearer " + TOKEN + "X"}).status_code, 403)
        self.assertEqual(self.count("runs"), 0)
        # Auth comes first: a stranger learns nothing about the body's problems.
        self.assertEqual(self.push(b"{", headers={}).status_code, 401)
        self.assertEqual(self.push(run).status_code, 201)
        self.assertEqual(self.count("runs"), 1)

    def test_reads_stay_open(self):
        self.push(make_run("abc1234", "2026-01-01T00:00:00Z", group("larson", 100.0)))
        for path in ("/healthz", "/api/runs", "/api/runs/1", "/api/benchmarks", "/api/latest",
                     "/api/series?benchmark=larson", "/api/runs/1/alerts", "/"):
            self.assertEqual(self.client.get(path).status_code, 200, path)
        self.assertTrue(self.client.get("/healthz").get_json()["auth"])

    def test_load_token(self):
        path = os.path.join(self.tmp, "token")
        with open(path, "w") as f:
            f.write(TOKEN + "\n")
        self.assertEqual(server.load_token(path), TOKEN)
        with open(path, "w") as f:
            f.write("short\n")
        with self.assertRaisesRegex(ValueError, "at least 16 characters"):
            server.load_token(path)
        old = os.environ.get(server.TOKEN_ENV)
        try:
            os.environ[server.TOKEN_ENV] = TOKEN
            self.assertEqual(server.load_token(None), TOKEN)
            os.environ[server.TOKEN_ENV] = ""
            self.assertIsNone(server.load_token(None))
        finally:
            if old is None:
                os.environ.pop(server.TOKEN_ENV, None)
            else:
                os.environ[server.TOKEN_ENV] = old


class DeleteTest(AppTest):
    token = TOKEN

    def test_delete(self):
        ids = [self.push(make_run(c, t, base_results())).get_json()["id"]
               for c, t in (("aaa1111", "2026-01-01T00:00:00Z"), ("bbb2222", "2026-01-02T00:00:00Z"))]
        self.assertEqual(self.client.delete("/api/runs/%d" % ids[0]).status_code, 401)
        self.assertEqual(self.client.delete("/api/runs/%d" % ids[0],
                                            headers=self.auth("x" * 20)).status_code, 403)
        self.assertEqual(self.count("results"), 30)
        res = self.client.delete("/api/runs/%d" % ids[0], headers=self.auth())
        self.assertEqual(res.status_code, 200)
        self.assertEqual(res.get_json(), {"deleted": ids[0]})
        self.assertEqual(self.client.get("/api/runs/%d" % ids[0]).status_code, 404)
        self.assertEqual(self.count("results"), 15)
        self.assertEqual(self.client.delete("/api/runs/%d" % ids[0], headers=self.auth()).status_code, 404)
        # The other run is untouched, and now has no predecessor to be compared with.
        self.assertEqual(len(self.client.get("/api/runs/%d" % ids[1]).get_json()["results"]), 15)
        self.assertIsNone(self.client.get("/api/runs/%d/alerts" % ids[1]).get_json()["previous_run"])

    def test_delete_is_off_without_a_token(self):
        app = server.create_app(self.store, chartjs_path="", token=None)
        client = app.test_client()
        self.push(make_run("aaa1111", "2026-01-01T00:00:00Z", base_results()), client=client, headers={})
        res = client.delete("/api/runs/1")
        self.assertEqual(res.status_code, 403)
        self.assertIn("--token-file", res.get_json()["error"])
        self.assertEqual(self.count("runs"), 1)


class AlertTest(AppTest):
    def alerts_of(self, body):
        return sorted((a["benchmark"], a["figure"]) for a in body["alerts"])

    def test_regressed_and_steady_benchmarks(self):
        first = self.push(make_run("aaa1111", "2026-01-01T00:00:00Z", base_results())).get_json()
        self.assertIsNone(first["previous_run"])
        # larson: hakmem 100 -> 80 with tight rounds (a regression of its figure and of its
        # ratio to the best peer); mtstress/churn: 200 -> 196 (-2%, inside the 3% floor);
        # mtstress/prodcons: 300 -> 270 (-10%) with rounds spread by 30% (noise).
        second = (group("larson", 80.0) + group("mtstress/churn", 196.0, spread=0.02)
                  + group("mtstress/prodcons", 270.0, spread=0.30))
        body = self.push(make_run("bbb2222", "2026-01-02T00:00:00Z", second)).get_json()
        self.assertEqual(body["previous_run"], {"id": first["id"], "commit": "aaa1111"})
        self.assertEqual(self.alerts_of(body), [("larson", "median"), ("larson", "vs_best_peer")])
        self.assertEqual(body["improvements"], [])
        a = next(a for a in body["alerts"] if a["figure"] == "median")
        self.assertEqual((a["previous"], a["current"], a["threads"], a["variant"]), (100.0, 80.0, 2, "fastcache"))
        self.assertAlmostEqual(a["change"], -0.2)
        self.assertAlmostEqual(a["threshold"], 0.03)
        self.assertEqual((a["commit"], a["previous_commit"], a["run_id"]), ("bbb2222", "aaa1111", body["id"]))
        r = next(a for a in body["alerts"] if a["figure"] == "vs_best_peer")
        self.assertAlmostEqual(r["previous"], 100.0 / 80.0)
        self.assertAlmostEqual(r["current"], 80.0 / 80.0)
        self.assertEqual(r["peer"], "mimalloc")
        # The same report later, and on the charts' series.
        self.assertEqual(self.client.get("/api/runs/%d/alerts" % body["id"]).get_json()["alerts"], body["alerts"])
        series = self.client.get("/api/series?benchmark=larson&threads=2&metric=ops_per_sec").get_json()
        self.assertEqual(sorted((a["index"], a["figure"]) for a in series["alerts"]),
                         [(1, "median"), (1, "vs_best_peer")])
        steady = self.client.get("/api/series?benchmark=mtstress/churn&threads=2").get_json()
        self.assertEqual(steady["alerts"], [])

    def test_noise_threshold_comes_from_both_runs(self):
        self.push(make_run("aaa1111", "2026-01-01T00:00:00Z", group("larson", 100.0, spread=0.10)))
        # -8%: more than the floor but less than the mean spread (10% and 10%).
        body = self.push(make_run("bbb2222", "2026-01-02T00:00:00Z", group("larson", 92.0, spread=0.10))).get_json()
        self.assertEqual(body["alerts"], [])
        # -16% against 92: beyond (10% + 10%) / 2 for hakmem's own figure; its ratio to the best
        # peer carries both allocators' spreads (20% per run), so it stays inside the noise.
        body = self.push(make_run("ccc3333", "2026-01-03T00:00:00Z", group("larson", 77.0, spread=0.10))).get_json()
        self.assertEqual(self.alerts_of(body), [("larson", "median")])
        self.assertAlmostEqual(body["alerts"][0]["threshold"], 0.10)

    def test_peak_rss_and_lower_is_better_metrics(self):
        self.push(make_run("aaa1111", "2026-01-01T00:00:00Z",
                           group("larson", 100.0) + group("micro/x", 5.0, metric="ns_per_op", hib=False,
                                                          peers={"glibc": 6.0})))
        body = self.push(make_run("bbb2222", "2026-01-02T00:00:00Z",
                                  group("larson", 100.0, rss=11000) +
                                  group("micro/x", 6.0, metric="ns_per_op", hib=False,
                                        peers={"glibc": 6.0}))).get_json()
        self.assertEqual(self.alerts_of(body), [("larson", "peak_rss_kb"), ("micro/x", "median"),
                                                ("micro/x", "vs_best_peer")])
        # And back: every figure improves, nothing is an alert.
        body = self.push(make_run("ccc3333", "2026-01-03T00:00:00Z",
                                  group("larson", 100.0) + group("micro/x", 5.0, metric="ns_per_op", hib=False,
                                                                 peers={"glibc": 6.0}))).get_json()
        self.assertEqual(body["alerts"], [])
        self.assertEqual(sorted((a["benchmark"], a["figure"]) for a in body["improvements"]),
                         [("larson", "peak_rss_kb"), ("micro/x", "median"), ("micro/x", "vs_best_peer")])

    def test_only_same_machine_and_configuration(self):
        self.push(make_run("aaa1111", "2026-01-01T00:00:00Z", group("larson", 100.0)))
        for commit, host, mode, build in (("bbb2222", "host-b", "quick", "release"),
                                          ("bbb2223", "host-a", "full", "release"),
                                          ("bbb2224", "host-a", "quick", "debug")):
            body = self.push(make_run(commit, "2026-01-02T00:00:00Z", group("larson", 50.0),
                                      host=host, mode=mode, build=build)).get_json()
            self.assertIsNone(body["previous_run"], (host, mode, build))
            self.assertEqual(body["alerts"], [])
        # A run of an older commit pushed late is compared with the run before it in commit order.
        self.push(make_run("ccc3333", "2026-01-05T00:00:00Z", group("larson", 100.0)))
        body = self.push(make_run("ddd4444", "2026-01-03T00:00:00Z", group("larson", 60.0))).get_json()
        self.assertEqual(body["previous_run"]["commit"], "aaa1111")

    def test_history_ratios(self):
        self.push(make_run("aaa1111", "2026-01-01T00:00:00Z", group("larson", 100.0, rss=12000)))
        self.push(make_run("bbb2222", "2026-01-02T00:00:00Z", group("larson", 120.0, rss=9000)))
        s = self.client.get("/api/series?benchmark=larson&threads=2&metric=ops_per_sec&machine=host-a").get_json()
        lines = {(r["figure"], r["kind"]): [(p["index"], round(p["ratio"], 6), p["peer"]) for p in r["points"]]
                 for r in s["ratios"]}
        self.assertEqual(lines[("median", "glibc")], [(0, 2.0, "glibc"), (1, 2.4, "glibc")])
        self.assertEqual(lines[("median", "best")], [(0, 1.25, "mimalloc"), (1, 1.5, "mimalloc")])
        self.assertEqual(lines[("peak_rss_kb", "glibc")], [(0, 1.2, "glibc"), (1, 0.9, "glibc")])
        self.assertEqual(self.client.get("/api/series?benchmark=larson&machine=nobody").get_json()["runs"], [])
        self.assertEqual(self.client.get("/api/benchmarks").get_json()["machines"], ["host-a"])


class MachineSeriesTest(AppTest):
    def test_one_line_per_machine(self):
        # host-a and host-b alternate in commit order; a line must never join their runs.
        for i, (host, value) in enumerate((("host-a", 100.0), ("host-b", 10.0), ("host-a", 110.0),
                                           ("host-b", 12.0))):
            self.push(make_run("%07x" % (0xaaa0000 + i), "2026-01-0%dT00:00:00Z" % (i + 1),
                               group("larson", value), host=host))

        def lines(query):
            s = self.client.get("/api/series?benchmark=larson&threads=2&metric=ops_per_sec" + query).get_json()
            out = {x["label"]: [(p["index"], p["median"]) for p in x["points"]] for x in s["series"]
                   if x["allocator"] == "hakmem"}
            ratios = {x["label"]: [p["index"] for p in x["points"]] for x in s["ratios"]
                      if (x["figure"], x["kind"]) == ("median", "glibc")}
            return len(s["runs"]), out, ratios

        both = (4, {"hakmem (fastcache) [host-a]": [(0, 100.0), (2, 110.0)],
                    "hakmem (fastcache) [host-b]": [(1, 10.0), (3, 12.0)]},
                {"hakmem (fastcache) / glibc [host-a]": [0, 2], "hakmem (fastcache) / glibc [host-b]": [1, 3]})
        self.assertEqual(lines(""), both)  # every machine
        self.assertEqual(lines("&machine=host-a&machine=host-b"), both)
        self.assertEqual(lines("&machine=host-b"),
                         (2, {"hakmem (fastcache)": [(0, 10.0), (1, 12.0)]}, {"hakmem (fastcache) / glibc": [0, 1]}))
        self.assertEqual(lines("&machine=host-a&machine=nobody")[1], {"hakmem (fastcache)": [(0, 100.0), (1, 110.0)]})
        s = self.client.get("/api/series?benchmark=larson&machine=host-a&machine=host-b").get_json()
        self.assertEqual({x["machine"] for x in s["series"]}, {"host-a", "host-b"})
        latest = self.client.get("/api/latest?machine=host-a&machine=nobody").get_json()
        self.assertEqual(latest["run"]["machine"]["hostname"], "host-a")
        self.assertEqual(self.client.get("/api/series?benchmark=larson&machine=" + "h" * 201).status_code, 400)


class ChangesAndTriageTest(AppTest):
    token = TOKEN

    def setUp(self):
        super().setUp()
        self.push(make_run("aaa1111", "2026-01-01T00:00:00Z", base_results()))
        # larson regresses (-20%), churn moves inside the noise (+1%), prodcons improves (+10%, noisy).
        second = (group("larson", 80.0) + group("mtstress/churn", 202.0, spread=0.02)
                  + group("mtstress/prodcons", 330.0, spread=0.30))
        self.body = self.push(make_run("bbb2222", "2026-01-02T00:00:00Z", second)).get_json()
        self.run_id = self.body["id"]
        self.median_alert = next(a for a in self.body["alerts"] if a["figure"] == "median")

    def mark(self, status, alert=None, headers=None, **extra):
        a = alert or self.median_alert
        doc = {k: a[k] for k in ("benchmark", "params", "threads", "metric", "variant", "figure")}
        doc.update(status=status, **extra)
        return self.client.post("/api/runs/%d/triage" % self.run_id, data=json.dumps(doc),
                                content_type="application/json",
                                headers=self.auth() if headers is None else headers)

    def test_changes_lists_every_benchmark_alerts_first(self):
        body = self.client.get("/api/changes").get_json()
        self.assertEqual(body["run"]["id"], self.run_id)
        self.assertEqual(body["previous_run"]["commit"], "aaa1111")
        got = [(r["benchmark"], round(r["change"], 4), len(r["alerts"])) for r in body["rows"]]
        self.assertEqual(got, [("larson", -0.2, 2), ("mtstress/churn", 0.01, 0), ("mtstress/prodcons", 0.1, 0)])
        self.assertEqual(sorted(a["figure"] for a in body["rows"][0]["alerts"]), ["median", "vs_best_peer"])
        self.assertEqual(len(body["geomean"]), 1)
        g = body["geomean"][0]
        self.assertEqual((g["label"], g["n"]), ("hakmem (fastcache)", 3))
        self.assertAlmostEqual(g["better"], (0.8 * 1.01 * 1.1) ** (1 / 3))
        # Lower is better: a time that rises is a change for the worse (better < 1).
        self.push(make_run("ccc3333", "2026-01-03T00:00:00Z", group("micro/x", 5.0, metric="ns_per_op", hib=False),
                           host="host-b"))
        self.push(make_run("ddd4444", "2026-01-04T00:00:00Z", group("micro/x", 6.0, metric="ns_per_op", hib=False),
                           host="host-b"))
        b = self.client.get("/api/changes?machine=host-b").get_json()
        self.assertEqual(b["run"]["commit"], "ddd4444")
        self.assertAlmostEqual(b["rows"][0]["better"], 5.0 / 6.0)
        self.assertEqual(self.client.get("/api/changes?machine=host-a").get_json()["run"]["id"], self.run_id)
        first = self.client.get("/api/changes?machine=nobody").get_json()
        self.assertEqual((first["run"], first["rows"]), (None, []))

    def test_triage_is_stored_and_shown(self):
        res = self.mark("accepted", note="expected: bigger slabs")
        self.assertEqual(res.status_code, 200, res.data)
        self.assertEqual(res.get_json()["triage"]["status"], "accepted")
        alerts = self.client.get("/api/runs/%d/alerts" % self.run_id).get_json()["alerts"]
        marks = {a["figure"]: a["triage"] for a in alerts}
        self.assertEqual((marks["median"]["status"], marks["median"]["note"]), ("accepted", "expected: bigger slabs"))
        self.assertIsNone(marks["vs_best_peer"])
        # An open alert sorts before a triaged one in the change view; the series carries the mark too.
        rows = self.client.get("/api/changes").get_json()["rows"]
        self.assertEqual((rows[0]["open_alerts"], len(rows[0]["alerts"])), (1, 2))
        series = self.client.get("/api/series?benchmark=larson&threads=2&metric=ops_per_sec").get_json()
        self.assertEqual({a["figure"]: (a["triage"] or {}).get("status") for a in series["alerts"]},
                         {"median": "accepted", "vs_best_peer": None})
        self.assertEqual(self.mark("triaged").get_json()["triage"]["status"], "triaged")
        self.assertEqual(self.count("alert_triage"), 1)
        self.assertIsNone(self.mark("open").get_json()["triage"])
        self.assertEqual(self.count("alert_triage"), 0)
        # Marks go with their run.
        self.mark("accepted")
        self.assertEqual(self.client.delete("/api/runs/%d" % self.run_id, headers=self.auth()).status_code, 200)
        self.assertEqual(self.count("alert_triage"), 0)

    def test_triage_refusals(self):
        self.mark("accepted")
        before = (self.snapshot(), self.client.get("/api/runs/%d/alerts" % self.run_id).data)
        self.assertEqual(self.mark("accepted", headers={}).status_code, 401)
        self.assertEqual(self.mark("accepted", headers=self.auth("x" * 20)).status_code, 403)
        for status, pattern, extra in (
                (400, r"^status: must be one of triaged, accepted, open", {"status": "fixed"}),
                (400, r"^threads: expected an integer, got string", {"threads": "2"}),
                (400, r"^threads: 10{30} is out of range \(allowed 1\.\.4096\)", {"threads": 10 ** 30}),
                (400, r"^threads: expected an integer, got boolean", {"threads": True}),
                (400, r"^note: string is 201 characters", {"note": "n" * 201}),
                (400, r"^note: contains the bidirectional control character U\+202E", {"note": "a\u202eb"}),
                (400, r"^benchmark: contains a lone UTF-16 surrogate", {"benchmark": "\ud800"}),
                (400, r'^unknown field "colour"', {"colour": "red"}),
                (400, r'^unknown field "\\ud800"', {"\ud800": 1}),
                (404, r"has no such alert now: benchmark 'mtstress/churn'", {"benchmark": "mtstress/churn"}),
                (404, r"no such alert now.*figure 'peak_rss_kb'", {"figure": "peak_rss_kb"})):
            doc = dict({k: self.median_alert[k] for k in ("benchmark", "params", "threads", "metric", "variant",
                                                          "figure")}, status="triaged")
            doc.update(extra)
            res = self.client.post("/api/runs/%d/triage" % self.run_id, data=json.dumps(doc),
                                   content_type="application/json", headers=self.auth())
            self.assertEqual(res.status_code, status, (extra, res.data))
            self.assertRegex(res.get_json()["error"], pattern)
        url = "/api/runs/%d/triage" % self.run_id
        for data, pattern in (('{"status": "open", "status": "accepted"}', r'duplicate key "status"'),
                              ("{", r"^malformed JSON"), ("[1]", r"must be a JSON object")):
            res = self.client.post(url, data=data, content_type="application/json", headers=self.auth())
            self.assertEqual(res.status_code, 400)
            self.assertRegex(res.get_json()["error"], pattern)
        self.assertEqual(self.client.post(url, data="{}", content_type="text/plain", headers=self.auth()).status_code,
                         400)
        res = self.client.post("/api/runs/999/triage", data=json.dumps(dict(self.median_alert, status="open")),
                               content_type="application/json", headers=self.auth())
        self.assertEqual(res.status_code, 400)  # the alert's own extra fields are unknown here
        self.assertEqual((self.snapshot(), self.client.get("/api/runs/%d/alerts" % self.run_id).data), before)
        # A server without a token never triages.
        open_app = server.create_app(self.store, chartjs_path="", token=None).test_client()
        res = open_app.post(url, data="{}", content_type="application/json")
        self.assertEqual(res.status_code, 403)
        self.assertIn("triaging alerts needs a server started with --token-file", res.get_json()["error"])

    def test_old_database_is_migrated(self):
        conn = sqlite3.connect(self.db)
        conn.execute("DROP TABLE alert_triage")
        conn.execute("UPDATE schema_version SET version = 1")
        conn.commit()
        conn.close()
        server.Store(self.db).init()
        conn = sqlite3.connect(self.db)
        try:
            self.assertEqual(conn.execute("SELECT version FROM schema_version").fetchall(), [(2,)])
        finally:
            conn.close()
        self.assertEqual(self.mark("accepted").status_code, 200)
        self.assertEqual(self.count("runs"), 2)


class ConcurrencyTest(AppTest):
    token = TOKEN

    def test_concurrent_pushes(self):
        runs = [make_run("%07x" % (0xa000000 + i), "2026-01-%02dT00:00:00Z" % (i + 1), base_results())
                for i in range(8)]
        statuses = [None] * len(runs)

        def worker(i):
            statuses[i] = self.push(runs[i], client=self.app.test_client()).status_code

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(runs))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(statuses, [201] * len(runs))
        listed = self.client.get("/api/runs").get_json()["runs"]
        self.assertEqual(len(listed), 8)
        self.assertTrue(all(r["results"] == 15 for r in listed))

    def test_same_run_pushed_at_once_is_stored_once(self):
        run = make_run("abc1234", "2026-01-01T00:00:00Z", base_results())
        statuses = []
        lock = threading.Lock()

        def worker():
            code = self.push(run, client=self.app.test_client()).status_code
            with lock:
                statuses.append(code)

        threads = [threading.Thread(target=worker) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(sorted(statuses), [201] + [409] * 5)
        self.assertEqual(self.count("runs"), 1)
        self.assertEqual(self.count("results"), 15)


class RollbackTest(AppTest):
    def test_failing_insert_rolls_back_everything(self):
        self.push(make_run("aaa1111", "2026-01-01T00:00:00Z", base_results()))
        before = self.snapshot()
        machines = self.count("machines")
        conn = sqlite3.connect(self.db)
        # A database-level failure on the very last row, after the run and its machine were written.
        conn.execute("CREATE TRIGGER boom BEFORE INSERT ON results WHEN NEW.benchmark = 'boom' "
                     "BEGIN SELECT RAISE(ABORT, 'boom refused'); END")
        conn.commit()
        conn.close()
        run = make_run("bbb2222", "2026-01-02T00:00:00Z", base_results() + group("boom", 1.0), host="new-host")
        res = self.push(run)
        self.assertEqual(res.status_code, 400)
        self.assertIn("boom refused", res.get_json()["error"])
        self.assertEqual(self.snapshot(), before)
        self.assertEqual(self.count("machines"), machines)
        self.assertEqual(self.count("results"), 15)


class ProcessTest(unittest.TestCase):
    """server.py as a process: command line, and SIGKILL in the middle of a push."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(dir=TMP_ROOT)
        self.db = os.path.join(self.tmp, "dash.db")
        self.token_file = os.path.join(self.tmp, "token")
        with open(self.token_file, "w") as f:
            f.write(TOKEN + "\n")
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
            p.stdout.close()
            p.stderr.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def start(self, *args):
        env = {k: v for k, v in os.environ.items() if k != server.TOKEN_ENV}
        p = subprocess.Popen([PYTHON, os.path.join(HERE, "server.py"), "--port", "0", "--db", self.db,
                              "--quiet", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        self.procs.append(p)
        line = p.stdout.readline().decode()
        m = re.fullmatch(r"hakmem dashboard: (http://127\.0\.0\.1:\d+/)\n", line)
        if not m:  # stderr is read only then: reading it waits for the server to exit
            p.kill()
            self.fail("no URL line on stdout: %r; stderr: %s" % (line, p.stderr.read().decode()[-2000:]))
        return p, m.group(1)

    def run_cli(self, *args, env=None):
        full = {k: v for k, v in os.environ.items() if k != server.TOKEN_ENV}
        full.update(env or {})
        return subprocess.run([PYTHON, os.path.join(HERE, "server.py"), "--db", self.db, *args],
                              capture_output=True, text=True, timeout=60, env=full)

    def post(self, url, run, token=TOKEN):
        req = urllib.request.Request(url + "api/runs", data=json.dumps(run).encode(), method="POST",
                                     headers={"Content-Type": "application/json",
                                              "Authorization": "Bearer " + token})
        with urllib.request.urlopen(req, timeout=120) as res:
            return res.status, json.loads(res.read())

    def test_refuses_non_loopback_without_token(self):
        p = self.run_cli("--host", "0.0.0.0", "--port", "0")
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("refusing to listen on non-loopback address '0.0.0.0' without a token", p.stderr)
        self.assertEqual(p.stdout, "")

    def test_refuses_a_short_token(self):
        with open(self.token_file, "w") as f:
            f.write("abc\n")
        p = self.run_cli("--port", "0", "--token-file", self.token_file)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("at least 16 characters", p.stderr)
        p = self.run_cli("--port", "0", "--token-file", os.path.join(self.tmp, "missing"))
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("cannot use the token", p.stderr)

    def test_too_large_body_is_refused_before_it_is_read(self):
        p, url = self.start("--token-file", self.token_file)
        port = int(re.search(r":(\d+)/$", url).group(1))
        for auth in ("", "Authorization: Bearer %s\r\n" % TOKEN):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                # Only the head and 1 KiB of an 11 MiB body: waitress must answer without the rest.
                s.sendall(("POST /api/runs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                           "%sContent-Length: %d\r\n\r\n" % (auth, 11 * 1024 * 1024)).encode() + b"x" * 1024)
                reply = b""
                while b"\r\n\r\n" not in reply:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    reply += chunk
            self.assertTrue(reply.startswith(b"HTTP/1.1 413 "), reply[:200])
        # A body at the limit gets through to the app (and its own checks).
        body = json.dumps({"pad": "x" * (server.MAX_BODY_BYTES - 20)})
        body += " " * (server.MAX_BODY_BYTES - len(body))
        req = urllib.request.Request(url + "api/runs", data=body.encode(), method="POST",
                                     headers={"Content-Type": "application/json",
                                              "Authorization": "Bearer " + TOKEN})
        with self.assertRaises(urllib.error.HTTPError) as ctx:
            urllib.request.urlopen(req, timeout=60)
        self.assertEqual(ctx.exception.code, 400)
        self.assertIn("schema: missing required field", json.loads(ctx.exception.read())["error"])
        self.assertEqual(self.dump()["runs"], [])

    def test_token_from_environment(self):
        env = {server.TOKEN_ENV: TOKEN}
        p = subprocess.Popen([PYTHON, os.path.join(HERE, "server.py"), "--port", "0", "--db", self.db, "--quiet"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ, **env))
        self.procs.append(p)
        url = re.search(r"http://\S+/", p.stdout.readline().decode()).group(0)
        run = make_run("abc1234", "2026-01-01T00:00:00Z", group("larson", 100.0))
        with self.assertRaises(urllib.error.HTTPError) as ctx:
            self.post(url, run, token="wrong-token-wrong-token")
        self.assertEqual(ctx.exception.code, 403)
        self.assertEqual(self.post(url, run)[0], 201)

    def test_sigkill_mid_push_loses_nothing(self):
        p, url = self.start("--token-file", self.token_file)
        stored = make_run("aaa1111", "2026-01-01T00:00:00Z", base_results())
        self.assertEqual(self.post(url, stored)[0], 201)
        before = self.dump()
        # Big enough that SQLite spills uncommitted pages into the WAL before COMMIT: seeing the
        # WAL grow means the transaction is open, and that is when the server gets SIGKILL.
        big = make_run("bbb2222", "2026-01-02T00:00:00Z",
                       [result("b%05d" % i, "glibc", 1.0 + i) for i in range(30000)])
        wal = self.db + "-wal"
        mid_transaction = False
        for attempt in range(3):
            base_size = os.path.getsize(wal) if os.path.exists(wal) else 0
            sender = threading.Thread(target=self.post_quietly, args=(url, big), daemon=True)
            sender.start()
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                if os.path.exists(wal) and os.path.getsize(wal) > base_size:
                    break
                time.sleep(0.001)
            os.kill(p.pid, signal.SIGKILL)
            p.wait()
            sender.join(30)
            after = self.dump()
            ids = [r for r in after["runs"] if r[1] == "bbb2222"]
            if ids:  # the kill came after COMMIT: then the run must be whole
                self.assertEqual(after["counts"][ids[0][0]], 30000)
                self.assertEqual(after["runs"][:1], before["runs"])
            else:
                mid_transaction = True
                self.assertEqual(after, before)
            if mid_transaction:
                break
            self.delete_run("bbb2222")
            p, url = self.start("--token-file", self.token_file)
        self.assertTrue(mid_transaction, "never caught the server inside the transaction")
        # A restarted server opens the file and takes the push whole.
        p, url = self.start("--token-file", self.token_file)
        self.assertEqual(self.post(url, big)[0], 201)
        self.assertEqual(self.dump()["counts"][2], 30000)

    def post_quietly(self, url, run):
        try:
            self.post(url, run)
        except OSError:  # the server died under it: expected
            pass

    def delete_run(self, commit):
        conn = sqlite3.connect(self.db)
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("DELETE FROM runs WHERE commit_sha = ?", (commit,))
        conn.commit()
        conn.close()

    def dump(self):
        conn = sqlite3.connect(self.db)
        try:
            self.assertEqual(conn.execute("PRAGMA integrity_check").fetchone()[0], "ok")
            runs = conn.execute("SELECT id, commit_sha, run_time FROM runs ORDER BY id").fetchall()
            counts = dict(conn.execute("SELECT run_id, COUNT(*) FROM results GROUP BY run_id").fetchall())
            rows = conn.execute("SELECT * FROM results WHERE run_id = 1 ORDER BY idx").fetchall()
            return {"runs": runs, "counts": counts, "rows": rows}
        finally:
            conn.close()


if __name__ == "__main__":
    unittest.main()
