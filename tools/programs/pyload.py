"""The pure-Python workload of //tools:bench programs/python, run by Debian's
/usr/bin/python3 with each allocator preloaded:

    python3 pyload.py SCALE

Four parts, each printing one line "<part> <figures>" (the suite compares the
whole output with glibc's run of the same script), and each checking itself
against a result computed another way, exiting with status 1 when they
differ:

- objects: a graph of small objects in dicts and lists, built, walked and
  torn down; the walk's sums against sums kept while building;
- json: a large nested document dumped and loaded again; equal to the
  original, and dumped the same twice;
- strings: strings built by join, formatting and concatenation, split and
  rebuilt; lengths against arithmetic;
- re: regular expressions over generated text; match counts against counts
  made with str methods.

Standard library only; deterministic for a given SCALE.
"""

import hashlib
import json
import random
import re
import sys


def fail(part, what):
    print("%s: self-check failed: %s" % (part, what), file=sys.stderr)
    sys.exit(1)


class Node:
    def __init__(self, key, weight, tags):
        self.key = key
        self.weight = weight
        self.tags = tags
        self.children = []
        self.attrs = {}


def objects(scale, rng):
    total_weight = 0
    total_tags = 0
    total = 0
    for rnd in range(4):
        nodes = {}
        for i in range(6000 * scale):
            key = "n%d.%d" % (rnd, i)
            tags = [rng.choice(("red", "green", "blue", "cyan")) for _ in range(rng.randint(0, 4))]
            node = Node(key, rng.randint(1, 1000), tags)
            node.attrs["depth"] = 0
            node.attrs["label"] = key.upper()
            total_weight += node.weight
            total_tags += len(tags)
            if i:
                parent = nodes["n%d.%d" % (rnd, rng.randrange(i))]
                parent.children.append(node)
                node.attrs["depth"] = parent.attrs["depth"] + 1
            nodes[key] = node
        # Walk from the root, without recursion.
        stack = [nodes["n%d.0" % rnd]]
        seen = 0
        weight = 0
        tags = 0
        depth = 0
        while stack:
            node = stack.pop()
            seen += 1
            weight += node.weight
            tags += len(node.tags)
            depth += node.attrs["depth"]
            stack.extend(node.children)
        if seen != len(nodes):
            fail("objects", "walked %d nodes of %d" % (seen, len(nodes)))
        total += weight
        by_tag = {}
        for node in nodes.values():
            for t in node.tags:
                by_tag.setdefault(t, []).append(node.key)
        if sum(len(v) for v in by_tag.values()) != tags:
            fail("objects", "tag index has %d entries, walk saw %d"
                 % (sum(len(v) for v in by_tag.values()), tags))
        # Tear down half the nodes, in random order.
        keys = list(nodes)
        rng.shuffle(keys)
        for k in keys[: len(keys) // 2]:
            del nodes[k]
        depth += len(nodes)
        del nodes, by_tag, stack
        total += depth
    if total_weight <= 0 or total_tags < 0:
        fail("objects", "nothing built")
    return "objects %d %d %d" % (total, total_weight, total_tags)


def document(rng, depth):
    if depth == 0:
        kind = rng.randrange(4)
        if kind == 0:
            return rng.randint(-10 ** 9, 10 ** 9)
        if kind == 1:
            return "".join(rng.choices("abcdefghij \u00e9\u4e2d", k=rng.randint(0, 30)))
        if kind == 2:
            return rng.choice((True, False, None))
        return rng.randint(0, 10 ** 6) / 64.0
    if rng.random() < 0.5:
        return [document(rng, depth - 1) for _ in range(rng.randint(1, 6))]
    return {"k%d_%d" % (depth, i): document(rng, depth - 1) for i in range(rng.randint(1, 6))}


def json_part(scale, rng):
    doc = {"items": [document(rng, 5) for _ in range(50 * scale)]}
    digest = hashlib.sha256()
    for rnd in range(3):
        text = json.dumps(doc, sort_keys=True)
        back = json.loads(text)
        if back != doc:
            fail("json", "loads(dumps(doc)) differs from doc in round %d" % rnd)
        again = json.dumps(back, sort_keys=True)
        if again != text:
            fail("json", "the document dumps differently after a round trip")
        pretty = json.dumps(back, indent=1, ensure_ascii=False)
        if json.loads(pretty) != doc:
            fail("json", "the indented dump loads differently")
        digest.update(text.encode())
        doc["items"].append({"round": rnd, "size": len(text)})
    return "json %d %s" % (len(text), digest.hexdigest()[:32])


def strings(scale, rng):
    words = ["".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(1, 9)))
             for _ in range(5000)]
    digest = hashlib.sha256()
    expected_len = 0
    total_len = 0
    for rnd in range(15 * scale):
        picked = [words[rng.randrange(len(words))] for _ in range(2000)]
        line = " ".join(picked)
        expected_len += sum(len(w) for w in picked) + len(picked) - 1
        total_len += len(line)
        built = ""
        for w in picked[:400]:
            built += w.capitalize() + ","
        formatted = ["%s=%d;" % (w, len(w)) for w in picked]
        joined = "".join(formatted)
        if joined.count(";") != len(picked):
            fail("strings", "formatted %d items, found %d" % (len(picked), joined.count(";")))
        rebuilt = " ".join(line.split(" "))
        if rebuilt != line:
            fail("strings", "split and join changed the line in round %d" % rnd)
        digest.update(built.encode())
        digest.update(line.replace("a", "AA").encode())
    if total_len != expected_len:
        fail("strings", "built %d characters, expected %d" % (total_len, expected_len))
    return "strings %d %s" % (total_len, digest.hexdigest()[:32])


def regexes(scale, rng):
    parts = []
    for _ in range(20000 * scale):
        kind = rng.randrange(4)
        if kind == 0:
            parts.append("user%d@host%d.example" % (rng.randrange(1000), rng.randrange(50)))
        elif kind == 1:
            parts.append("%d-%02d-%02d" % (rng.randint(1990, 2030), rng.randint(1, 12),
                                           rng.randint(1, 28)))
        elif kind == 2:
            parts.append("v%d.%d" % (rng.randrange(20), rng.randrange(100)))
        else:
            parts.append("".join(rng.choices("abcxyz", k=rng.randint(1, 8))))
    text = " ".join(parts)
    emails = re.findall(r"\b(\w+)@(\w+)\.example\b", text)
    dates = re.findall(r"\b(\d{4})-(\d{2})-(\d{2})\b", text)
    versions = re.findall(r"\bv(\d+)\.(\d+)\b", text)
    want_emails = sum(1 for p in parts if "@" in p)
    want_dates = sum(1 for p in parts if p.count("-") == 2)
    want_versions = sum(1 for p in parts if p.startswith("v") and "." in p)
    if (len(emails), len(dates), len(versions)) != (want_emails, want_dates, want_versions):
        fail("re", "found %d/%d/%d matches, expected %d/%d/%d" % (
            len(emails), len(dates), len(versions), want_emails, want_dates, want_versions))
    swapped = re.sub(r"(\d{4})-(\d{2})-(\d{2})", r"\3/\2/\1", text)
    if swapped.count("/") != 2 * want_dates:
        fail("re", "the substitution made %d slashes" % swapped.count("/"))
    words = re.split(r"\s+", text)
    if len(words) != len(parts):
        fail("re", "split into %d words, expected %d" % (len(words), len(parts)))
    hosts = {}
    for user, host in emails:
        hosts.setdefault(host, set()).add(user)
    return "re %d %d %d %d %s" % (len(emails), len(dates), len(versions), len(hosts),
                                  hashlib.sha256(swapped.encode()).hexdigest()[:32])


def main(argv):
    if len(argv) != 2 or not argv[1].isdigit() or int(argv[1]) < 1:
        print("usage: pyload.py SCALE (a positive integer)", file=sys.stderr)
        return 2
    scale = int(argv[1])
    rng = random.Random(4141)
    print(objects(scale, rng))
    print(json_part(scale, rng))
    print(strings(scale, rng))
    print(regexes(scale, rng))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
