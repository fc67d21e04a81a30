"""Inputs of the `programs` suite of //tools:bench, and what each program
must print for them (pure functions, deterministic for a seed).

Each generator comes with its own oracle, computed here in Python from the
same data rather than by the program under test, so that a program whose
allocator corrupted its memory prints something else and fails its run:

- sqlite_data, sqlite_script / sqlite_expected: an SQL script for sqlite3 (bulk inserts,
  indexes, joins, updates, deletes) and its exact output;
- c_source / c_expected: a large C file for gcc -O2, and what the program it
  compiles to prints;
- git_history: a git fast-import stream, and the facts a checker needs
  (what `git blame` must attribute to which commit, how many lines
  `git log -p` adds);
- words_text / words_expected: text for tools/programs/wordfreq.pl, and its
  exact output.

The Python workload (pyload.py) checks itself and is compared with glibc's
run; redis is checked by the suite (tools/bench_programs.py).
"""

import random

MASK64 = (1 << 64) - 1
MASK32 = (1 << 32) - 1

# --------------------------------------------------------------------------
# sqlite3

SQL_GROUPS = 97
SQL_TAGS = 30
SQL_BATCH = 250  # rows per INSERT statement
SQL_ALPHABET = "abcdefghijklmnopqrstuvwxyz      "


def sqlite_data(rows, seed):
    """(groups, items, tags): groups [(gid, label, weight)], items
    [(id, grp, name, qty, note)], tags [(item, tag)]."""
    rng = random.Random(seed)
    groups = [(g, "group-%d" % g, rng.randint(1, 50)) for g in range(1, SQL_GROUPS + 1)]
    items = []
    tags = []
    for i in range(1, rows + 1):
        note = "".join(rng.choices(SQL_ALPHABET, k=rng.randint(5, 160))).strip() or "n"
        items.append((i, rng.randint(1, SQL_GROUPS), "item-%d" % rng.randint(0, rows // 4),
                      rng.randint(0, 999), note))
        for _ in range(rng.randint(0, 3)):
            tags.append((i, "t%02d" % rng.randint(0, SQL_TAGS - 1)))
    return groups, items, tags


def _sql_values(rows):
    out = []
    for r in rows:
        out.append("(" + ",".join(str(v) if isinstance(v, int) else "'%s'" % v for v in r) + ")")
    return ",".join(out)


def _sql_inserts(table, rows):
    return "".join("INSERT INTO %s VALUES %s;\n" % (table, _sql_values(rows[i:i + SQL_BATCH]))
                   for i in range(0, len(rows), SQL_BATCH))


def sqlite_script(data):
    """The script sqlite3 runs (on an in-memory database) for data = sqlite_data(...)."""
    groups, items, tags = data
    return "".join([
        "CREATE TABLE grp(gid INTEGER PRIMARY KEY, label TEXT NOT NULL, weight INTEGER NOT NULL);\n",
        "CREATE TABLE item(id INTEGER PRIMARY KEY, grp INTEGER NOT NULL, name TEXT NOT NULL,"
        " qty INTEGER NOT NULL, note TEXT NOT NULL);\n",
        "CREATE TABLE tag(item INTEGER NOT NULL, tag TEXT NOT NULL);\n",
        "BEGIN;\n",
        _sql_inserts("grp", groups),
        _sql_inserts("item", items),
        _sql_inserts("tag", tags),
        "COMMIT;\n",
        "CREATE INDEX item_grp ON item(grp, qty);\n",
        "CREATE INDEX item_name ON item(name);\n",
        "CREATE INDEX tag_item ON tag(item);\n",
        "SELECT 'q1', count(*), sum(i.qty * g.weight) FROM item i JOIN grp g ON g.gid = i.grp"
        " WHERE g.weight % 3 = 0;\n",
        "SELECT 'q2', t.tag, count(*), sum(i.qty) FROM tag t JOIN item i ON i.id = t.item"
        " GROUP BY t.tag ORDER BY t.tag;\n",
        "SELECT 'q3', name, count(*) FROM item GROUP BY name HAVING count(*) >= 3"
        " ORDER BY count(*) DESC, name LIMIT 20;\n",
        "BEGIN;\n",
        "UPDATE item SET qty = qty + 7, note = note || '+' || grp WHERE grp % 5 = 0;\n",
        "UPDATE item SET name = upper(name) WHERE id % 11 = 0;\n",
        "DELETE FROM tag WHERE item IN (SELECT id FROM item WHERE qty % 13 = 0);\n",
        "DELETE FROM item WHERE qty % 13 = 0;\n",
        "COMMIT;\n",
        "SELECT 'q4', count(*), sum(qty), sum(length(note)), count(DISTINCT name) FROM item;\n",
        "SELECT 'q5', g.label, count(i.id), coalesce(sum(i.qty), 0),"
        " coalesce(max(length(i.note)), 0) FROM grp g LEFT JOIN item i ON i.grp = g.gid"
        " GROUP BY g.gid ORDER BY g.gid;\n",
        "SELECT 'q6', count(*) FROM tag t JOIN item i ON i.id = t.item"
        " JOIN grp g ON g.gid = i.grp WHERE g.weight > 25;\n",
        "SELECT 'q7', id, name, qty, note FROM item ORDER BY note DESC, id LIMIT 5;\n",
    ])


def sqlite_expected(data):
    """What sqlite3 prints for sqlite_script(data) (list mode, '|')."""
    groups, items, tags = data
    weight = {g: w for g, _, w in groups}
    out = []

    def line(*cells):
        out.append("|".join(str(c) for c in cells) + "\n")

    q1 = [qty * weight[grp] for _, grp, _, qty, _ in items if weight[grp] % 3 == 0]
    line("q1", len(q1), sum(q1))
    qty_of = {i: qty for i, _, _, qty, _ in items}
    by_tag = {}
    for item, tag in tags:
        n, s = by_tag.get(tag, (0, 0))
        by_tag[tag] = (n + 1, s + qty_of[item])
    for tag in sorted(by_tag):
        line("q2", tag, *by_tag[tag])
    names = {}
    for _, _, name, _, _ in items:
        names[name] = names.get(name, 0) + 1
    for name, n in sorted(((k, v) for k, v in names.items() if v >= 3),
                          key=lambda kv: (-kv[1], kv[0]))[:20]:
        line("q3", name, n)
    # The updates and deletes.
    live = {}
    for i, grp, name, qty, note in items:
        if grp % 5 == 0:
            qty, note = qty + 7, "%s+%d" % (note, grp)
        if i % 11 == 0:
            name = name.upper()
        if qty % 13 != 0:
            live[i] = (grp, name, qty, note)
    line("q4", len(live), sum(v[2] for v in live.values()),
         sum(len(v[3]) for v in live.values()), len(set(v[1] for v in live.values())))
    for gid, label, _ in groups:
        mine = [v for v in live.values() if v[0] == gid]
        line("q5", label, len(mine), sum(v[2] for v in mine),
             max([len(v[3]) for v in mine] or [0]))
    line("q6", sum(1 for item, _ in tags if item in live and weight[live[item][0]] > 25))
    last = sorted(live.items(), key=lambda kv: kv[0])
    last.sort(key=lambda kv: kv[1][3], reverse=True)  # stable: ties keep id order
    for i, (_, name, qty, note) in last[:5]:
        line("q7", i, name, qty, note)
    return "".join(out)


# --------------------------------------------------------------------------
# gcc: a large C file whose program prints one 64-bit checksum.

def _c_consts(i):
    rng = random.Random(1000003 * i + 17)
    return {
        "mul": rng.getrandbits(64) | 1,
        "add": rng.getrandbits(64),
        "s1": rng.randint(1, 31),
        "s2": rng.randint(1, 31),
        "loops": rng.randint(3, 9),
        "n": rng.randint(2, 8),
        "cases": [rng.getrandbits(64) for _ in range(4)],
        "tbl": [rng.getrandbits(32) for _ in range(rng.randint(4, 12))],
    }


def c_source(functions):
    """A C11 file of `functions` functions (structs, loops, switches, tables)
    and a main that chains them and prints the checksum."""
    out = ["/* Generated by tools/programs/workloads.py for //tools:bench programs/gcc. */\n",
           "#include <stdint.h>\n#include <stdio.h>\n\n"]
    for i in range(functions):
        c = _c_consts(i)
        out.append("struct s%d { uint64_t a, b; uint32_t c[%d]; };\n" % (i, c["n"]))
        out.append("static const uint32_t t%d[%d] = {%s};\n" % (
            i, len(c["tbl"]), ", ".join("%uu" % v for v in c["tbl"])))
        out.append("static uint64_t f%d(uint64_t x) {\n" % i)
        out.append("  struct s%d v = {x, x ^ %uull, {0}};\n" % (i, c["add"]))
        out.append("  for (int k = 0; k < %d; k++) {\n" % c["loops"])
        out.append("    v.a = v.a * %uull + (v.b >> %d);\n" % (c["mul"], c["s1"]))
        out.append("    v.b ^= v.a << %d;\n" % c["s2"])
        out.append("    v.c[k %% %d] += (uint32_t)v.a ^ t%d[k %% %d];\n" % (c["n"], i, len(c["tbl"])))
        out.append("  }\n")
        out.append("  switch ((unsigned)(v.a % 4u)) {\n")
        for k, (op, val) in enumerate(zip(("+=", "^=", "-=", "|="), c["cases"])):
            out.append("  case %d: v.b %s %uull; break;\n" % (k, op, val))
        out.append("  }\n")
        out.append("  uint64_t h = v.a ^ v.b;\n")
        out.append("  for (int k = 0; k < %d; k++) h = h * 31u + v.c[k];\n" % c["n"])
        out.append("  return h;\n}\n\n")
    out.append("int main(int argc, char **argv) {\n  (void)argv;\n  uint64_t h = (uint64_t)argc;\n")
    for i in range(functions):
        out.append("  h = h * 1099511628211ull + f%d(h ^ %du);\n" % (i, i))
    out.append('  printf("%llu\\n", (unsigned long long)h);\n  return 0;\n}\n')
    return "".join(out)


def _c_function(i, x):
    c = _c_consts(i)
    a, b, cs = x, x ^ c["add"], [0] * c["n"]
    for k in range(c["loops"]):
        a = (a * c["mul"] + (b >> c["s1"])) & MASK64
        b ^= (a << c["s2"]) & MASK64
        cs[k % c["n"]] = (cs[k % c["n"]] + ((a & MASK32) ^ c["tbl"][k % len(c["tbl"])])) & MASK32
    sel = a % 4
    val = c["cases"][sel]
    b = [(b + val), (b ^ val), (b - val), (b | val)][sel] & MASK64
    h = a ^ b
    for k in range(c["n"]):
        h = (h * 31 + cs[k]) & MASK64
    return h


def c_expected(functions):
    """What the program of c_source(functions) prints when run without arguments."""
    h = 1
    for i in range(functions):
        h = (h * 1099511628211 + _c_function(i, h ^ i)) & MASK64
    return "%d\n" % h


# --------------------------------------------------------------------------
# git: a history whose blame and diffs are known.

GIT_WHEN = 1700000000


def git_history(commits, lines, changes, appends, files, seed):
    """(fast-import stream, facts). Commit 1 creates blame.txt with `lines`
    lines; every commit after it rewrites `changes` distinct lines of it in
    place; every commit appends `appends` lines to log<i % files>.txt.
    facts: "subjects" (newest first), "blame" (per line of blame.txt: the
    number of the commit it must be attributed to, and its text), and
    "added_lines" (the '+' lines of `git log -p`)."""
    rng = random.Random(seed)
    blame = ["L%05d r1 %s" % (j, "x" * (j % 7)) for j in range(lines)]
    owner = [1] * lines
    logs = {}
    out = []
    added = 0
    subjects = []
    for i in range(1, commits + 1):
        subject = "commit %d" % i
        subjects.append(subject)
        if i > 1:
            for j in rng.sample(range(lines), changes):
                blame[j] = "L%05d r%d %s" % (j, i, "".join(rng.choices("abcdefgh", k=rng.randint(0, 20))))
                owner[j] = i
            added += changes
        else:
            added += lines
        name = "log%d.txt" % (i % files)
        logs[name] = logs.get(name, "") + "".join(
            "entry %d.%d %s\n" % (i, k, "y" * rng.randint(0, 40)) for k in range(appends))
        added += appends
        when = "%d +0000" % (GIT_WHEN + 3600 * i)
        msg = subject + "\n"
        out.append("commit refs/heads/main\nmark :%d\n" % i)
        out.append("author Bench <bench@hakmem.invalid> %s\n" % when)
        out.append("committer Bench <bench@hakmem.invalid> %s\n" % when)
        out.append("data %d\n%s" % (len(msg.encode()), msg))
        if i > 1:
            out.append("from :%d\n" % (i - 1))
        for fname, text in (("blame.txt", "".join(l + "\n" for l in blame)), (name, logs[name])):
            data = text.encode()
            out.append("M 100644 inline %s\ndata %d\n%s\n" % (fname, len(data), text))
    facts = {"subjects": subjects[::-1], "blame": list(zip(owner, blame)), "added_lines": added}
    return "".join(out), facts


# --------------------------------------------------------------------------
# perl: word and pair frequencies of a generated text (tools/programs/wordfreq.pl).

def words_text(words, vocabulary, seed):
    """Lines of 4..16 words drawn (Zipf-like) from a generated vocabulary."""
    rng = random.Random(seed)
    vocab = sorted(set("".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(2, 12)))
                       for _ in range(vocabulary)))
    rng.shuffle(vocab)
    cum = []
    total = 0.0
    for r in range(len(vocab)):
        total += 1.0 / (r + 1)
        cum.append(total)
    drawn = rng.choices(vocab, cum_weights=cum, k=words)
    lines = []
    i = 0
    while i < len(drawn):
        n = rng.randint(4, 16)
        lines.append(" ".join(drawn[i:i + n]) + "\n")
        i += n
    return "".join(lines)


WORDS_MOD = 1000000007


def words_expected(text):
    """What wordfreq.pl prints for text (see that script)."""
    count = {}
    pairs = {}
    possum = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        ws = line.split()
        for w in ws:
            count[w] = count.get(w, 0) + 1
            possum[w] = (possum.get(w, 0) * 31 + lineno) % WORDS_MOD
        for a, b in zip(ws, ws[1:]):
            k = a + " " + b
            pairs[k] = pairs.get(k, 0) + 1
    out = ["words %d distinct %d pairs %d\n" % (sum(count.values()), len(count), len(pairs))]
    for w in sorted(count, key=lambda w: (-count[w], w))[:20]:
        out.append("word %s %d %d\n" % (w, count[w], possum[w]))
    for k in sorted(pairs, key=lambda k: (-pairs[k], k))[:20]:
        out.append("pair %s %d\n" % (k, pairs[k]))
    check = 0
    for w in sorted(count):
        check = (check * 131 + count[w] * len(w) + possum[w]) % WORDS_MOD
    out.append("check %d\n" % check)
    return "".join(out)
