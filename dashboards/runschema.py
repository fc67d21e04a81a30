"""Checks a benchmark run against dashboards/run.schema.json.

Used by the dashboard server (dashboards/server.py) and by tools/bench.py, so
both hold a run to the same rules. The JSON Schema is the format; this module
runs it with python3-jsonschema, turns its errors into one-line messages that
name the field, and adds the few rules a JSON Schema cannot state:

- no NaN or Infinity (Python's json module accepts them, JSON does not);
- min <= median <= max, and every entry of values inside [min, max];
- no two results with the same (benchmark, params, threads, allocator,
  variant, metric);
- time and commit_time parse as ISO-8601, with a year in 2000..2100;
- no lone UTF-16 surrogates and no bidirectional control characters in any
  string or field name.

loads() parses JSON text as a run must be: no duplicate keys in an object and
no integer longer than MAX_INT_DIGITS digits (Python's json takes both).

    loads(text)         -> value             or raises JsonError
    problems(doc)       -> [RunError, ...]   every problem found (for bench.py)
    check(doc)          -> (run, ignored)    normalized run, or raises RunError
"""

import datetime
import json
import math
import os

try:
    import jsonschema
except ImportError:  # reported when a run is first checked, with the package to install
    jsonschema = None

SCHEMA_FILE = "run.schema.json"
RUN_SCHEMA = 1
MAX_INT_DIGITS = 100  # every limit of the format has < 20 digits; Python refuses > 4300 with a bare ValueError

# Characters that reorder how text is shown (Trojan Source): a name holding one
# can look like another name on the page and in a terminal.
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")

_validator = None


class RunError(Exception):
    """A run breaks the format; field names where (e.g. results[3].median)."""

    def __init__(self, field, message, index=None):
        self.field = field
        self.index = index
        text = "%s: %s" % (field, message) if field else message
        if index is not None:
            text += " (result index %d)" % index
        super().__init__(text)


class JsonError(ValueError):
    """JSON text that json.loads would take but a run must not hold."""


def _int_or_refuse(digits):
    if len(digits.lstrip("-")) > MAX_INT_DIGITS:
        raise JsonError("a number with %d digits (the limit is %d)" % (len(digits.lstrip("-")), MAX_INT_DIGITS))
    return int(digits)


def _object_without_duplicates(pairs):
    out = {}
    for key, value in pairs:
        if key in out:
            raise JsonError("duplicate key %s in one object" % short_repr(key))
        out[key] = value
    return out


def loads(text):
    """Parses JSON text; JsonError on a duplicate key or an overlong integer, ValueError as json.loads."""
    return json.loads(text, parse_int=_int_or_refuse, object_pairs_hook=_object_without_duplicates)


def schema_path():
    """run.schema.json next to this file (source tree and Bazel runfiles alike)."""
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, SCHEMA_FILE)
    if not os.path.isfile(path):  # a symlinked copy of this module: try the real one's directory
        path = os.path.join(os.path.dirname(os.path.realpath(__file__)), SCHEMA_FILE)
    return path


def load_schema():
    with open(schema_path(), encoding="utf-8") as f:
        return json.load(f)


def validator():
    global _validator
    if _validator is None:
        if jsonschema is None:
            raise RuntimeError("python3-jsonschema is not installed: run tools/setup.sh "
                               "(or apt-get install python3-jsonschema)")
        schema = load_schema()
        cls = jsonschema.validators.validator_for(schema)
        cls.check_schema(schema)  # a broken schema file should fail loudly, not accept everything
        _validator = cls(schema)
    return _validator


# --------------------------------------------------------------------------
# Messages


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
    text = repr(value) if isinstance(value, float) else json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def field_name(path):
    out = ""
    for part in path:
        if isinstance(part, int):
            out += "[%d]" % part
        else:
            out += ("." if out else "") + str(part)
    return out


def result_index(path):
    path = list(path)
    if len(path) >= 2 and path[0] == "results" and isinstance(path[1], int):
        return path[1]
    return None


_EXPECTED = {"integer": "an integer", "number": "a number", "string": "a string",
             "boolean": "true or false", "object": "an object", "array": "an array"}


def _message(error):
    """(field, message) for one jsonschema error, worded like the old hand checks."""
    path = list(error.absolute_path)
    kind = error.validator
    value = error.instance
    schema = error.schema
    if kind == "required":
        missing = next((k for k in error.validator_value if k not in value), error.validator_value[0])
        return field_name(path + [missing]), "missing required field"
    if kind == "type":
        if not path:
            return "", "the body must be a JSON object (a run), got %s" % json_type(value)
        types = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        wanted = next((t for t in types if t != "null"), types[0])
        text = _EXPECTED.get(wanted, wanted)
        if path[-1] == "values":
            text = "an array of numbers"
        return field_name(path), "expected %s, got %s" % (text, json_type(value))
    if kind == "const" and path == ["schema"]:
        return "schema", "unsupported run schema %s (this format is %s)" % (short_repr(value), RUN_SCHEMA)
    if kind in ("minimum", "maximum") and isinstance(value, (int, float)):
        if "minimum" in schema and "maximum" in schema and "title" not in schema:
            return field_name(path), "%s is out of range (allowed %s..%s)" % (
                short_repr(value), schema["minimum"], schema["maximum"])
        if kind == "minimum":
            return field_name(path), "must not be negative, got %s" % short_repr(value)
        return field_name(path), "absurd %s %s (the limit is %g)" % (
            schema.get("title", "value"), short_repr(value), error.validator_value)
    if kind == "maxLength":
        return field_name(path), "string is %d characters long; the limit is %d" % (
            len(value), error.validator_value)
    if kind == "minItems" and path == ["results"]:
        return "results", "must not be empty (a run needs at least one result)"
    if kind == "maxItems":
        what = "results" if path == ["results"] else "values"
        return field_name(path), "%d %s; the limit is %d%s" % (
            len(value), what, error.validator_value, " per run" if what == "results" else "")
    if kind == "pattern":
        if error.validator_value == "\\S":
            return field_name(path), "must not be empty"
        if "\\u0000" in error.validator_value:
            return field_name(path), "must not contain NUL characters"
        hint = schema.get("description")
        return field_name(path), "invalid value %s%s" % (short_repr(value), " (expected %s)" % hint if hint else "")
    return field_name(path), error.message  # a rule added to the schema later: jsonschema's own words


def _first(value, path, visit, visit_name=None):
    """The first non-None visit(item, path) over value and everything nested in it, in
    document order; visit_name(name, path) sees each field name before its value."""
    hit = visit(value, path)
    if hit is None and isinstance(value, (dict, list)):
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            if visit_name is not None and isinstance(value, dict):
                hit = visit_name(key, path)
            if hit is None:
                hit = _first(item, path + [key], visit, visit_name)
            if hit is not None:
                break
    return hit


def _non_finite(value, path):
    """Path and value of the first NaN or Infinity in value, else None."""
    return _first(
        value, path, lambda v, p: (p, v) if isinstance(v, float) and not math.isfinite(v) else None
    )


def _text_problem(text):
    """Why text cannot be stored or shown safely, else None."""
    for ch in text:
        if "\ud800" <= ch <= "\udfff":  # SQLite and UTF-8 cannot encode half a surrogate pair
            return "contains a lone UTF-16 surrogate U+%04X (not a character)" % ord(ch)
        if ch in BIDI_CONTROLS:
            return "contains the bidirectional control character U+%04X" % ord(ch)
    return None


def _bad_text(value, path):
    """RunError for the first string or field name that _text_problem refuses, else None."""

    def visit(v, p):
        why = _text_problem(v) if isinstance(v, str) else None
        return RunError(field_name(p), why, result_index(p)) if why else None

    def visit_name(k, p):
        why = _text_problem(k)
        # The name itself is not echoed: it could not be encoded in the reply.
        return RunError(field_name(p), "a field name " + why, result_index(p)) if why else None

    return _first(value, path, visit, visit_name)


def normalize_time(text, field):
    """ISO-8601 text -> 'YYYY-MM-DDTHH:MM:SS[.ffffff]Z' in UTC (naive = UTC)."""
    candidate = text.strip()
    if candidate[-1:] in ("Z", "z"):
        candidate = candidate[:-1] + "+00:00"
    try:
        moment = datetime.datetime.fromisoformat(candidate)
    except ValueError:
        raise RunError(field, "not an ISO-8601 time: %s" % short_repr(text))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    moment = moment.astimezone(datetime.timezone.utc)
    if not 2000 <= moment.year <= 2100:
        raise RunError(field, "absurd time %s (year outside 2000..2100)" % short_repr(text))
    out = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        out += ".%06d" % moment.microsecond
    return out + "Z"


# --------------------------------------------------------------------------
# Checks


def _schema_errors(doc, limit):
    out = []
    for error in validator().iter_errors(doc):
        field, message = _message(error)
        out.append(RunError(field, message, result_index(error.absolute_path)))
        if limit and len(out) >= limit:
            break
    return out


def _semantic_errors(doc, limit):
    """The rules the schema cannot state; doc has passed the schema."""
    out = []
    for key in ("time", "commit_time"):
        text = doc.get(key)
        if text:
            try:
                normalize_time(text, key)
            except RunError as e:
                out.append(e)
    seen = {}
    for i, r in enumerate(doc["results"]):
        path = "results[%d]" % i
        median, lo, hi = r["median"], r.get("min"), r.get("max")
        slack = 1e-9 * max(abs(median), 1.0)  # pushed values went through float formatting
        if lo is not None and lo > median + slack:
            out.append(RunError(path + ".min", "min %s is greater than median %s"
                                % (short_repr(lo), short_repr(median)), i))
        if hi is not None and hi < median - slack:
            out.append(RunError(path + ".max", "max %s is less than median %s"
                                % (short_repr(hi), short_repr(median)), i))
        for j, v in enumerate(r.get("values") or []):
            if (lo is not None and v < lo - 1e-9 * max(abs(lo), 1.0)) or \
                    (hi is not None and v > hi + 1e-9 * max(abs(hi), 1.0)):
                out.append(RunError("%s.values[%d]" % (path, j), "value %s lies outside [min, max]"
                                    % short_repr(v), i))
                break
        key = (r["benchmark"], r.get("params") or "", r["threads"], r["allocator"],
               r.get("variant") or "", r["metric"])
        if key in seen:
            out.append(RunError(path, "duplicates results[%d] (same benchmark, params, threads, "
                                      "allocator, variant and metric)" % seen[key], i))
        else:
            seen[key] = i
        if limit and len(out) >= limit:
            break
    return out[:limit] if limit else out


def problems(doc, limit=None):
    """Every problem of doc (at most limit), first the ones that hide others."""
    hit = _non_finite(doc, [])
    if hit:
        path, value = hit
        return [RunError(field_name(path), "must be a finite number, got %s" % short_repr(value),
                         result_index(path))]
    text = _bad_text(doc, [])
    if text:
        return [text]
    errors = _schema_errors(doc, limit)
    if errors:
        return errors
    return _semantic_errors(doc, limit)


def _known_fields():
    schema = validator().schema  # the one already loaded: no file read per push
    props = schema["properties"]
    return {
        "": set(props),
        "machine": set(props["machine"]["properties"]),
        "config": set(props["config"]["properties"]),
        "results[*]": set(schema["$defs"]["result"]["properties"]),
    }


def ignored_fields(doc):
    """Fields the format does not know (reported to the pusher, not stored)."""
    known = _known_fields()
    out = set("%s" % k for k in doc if k not in known[""])
    for part in ("machine", "config"):
        out |= set("%s.%s" % (part, k) for k in doc[part] if k not in known[part])
    for r in doc["results"]:
        out |= set("results[*].%s" % k for k in r if k not in known["results[*]"])
    return sorted(out)


def check(doc):
    """Normalized run (defaults filled in, times in UTC) and ignored fields, or RunError."""
    found = problems(doc, limit=1)
    if found:
        raise found[0]
    m, c = doc["machine"], doc["config"]

    def text(obj, key):
        return obj.get(key) or ""

    commit_time = doc.get("commit_time")
    run = {
        "schema": doc["schema"],
        "commit": doc["commit"].lower(),
        "commit_subject": text(doc, "commit_subject"),
        "commit_time": normalize_time(commit_time, "commit_time") if commit_time else None,
        "time": normalize_time(doc["time"], "time"),
        "branch": text(doc, "branch"),
        "machine": {"hostname": m["hostname"], "cpus": None if m.get("cpus") is None else int(m["cpus"]),
                    "cpu_model": text(m, "cpu_model"), "kernel": text(m, "kernel"),
                    "mem_gb": m.get("mem_gb")},
        "config": {"mode": c["mode"], "rounds": None if c.get("rounds") is None else int(c["rounds"]),
                   "build": text(c, "build")},
        "results": [],
    }
    for r in doc["results"]:
        run["results"].append({
            "benchmark": r["benchmark"], "params": text(r, "params"), "threads": int(r["threads"]),
            "allocator": r["allocator"], "variant": text(r, "variant"), "metric": r["metric"],
            "unit": text(r, "unit"), "higher_is_better": r["higher_is_better"], "median": r["median"],
            "min": r.get("min"), "max": r.get("max"), "values": list(r.get("values") or []),
            "wall_s": r.get("wall_s"), "cpu_s": r.get("cpu_s"), "peak_rss_kb": r.get("peak_rss_kb"),
        })
    return run, ignored_fields(doc)
