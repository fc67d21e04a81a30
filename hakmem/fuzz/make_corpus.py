#!/usr/bin/env python3
"""Writes the seed corpus of alloc_fuzzer into hakmem/fuzz/corpus/.

Each seed is a small program in alloc_fuzzer.c's encoding (opcode byte, slot
byte, arguments); the encoders below mirror its decoder. The output is
deterministic: run it again after changing the encoding or the seeds, and
commit the files it writes.

    python3 hakmem/fuzz/make_corpus.py            # rewrite corpus/
    python3 hakmem/fuzz/make_corpus.py --check    # exit 1 if corpus/ is stale
"""

import os
import random
import sys

CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")

# Opcodes (op % 16 in LLVMFuzzerTestOneInput).
MALLOC, FREE, REALLOC, CALLOC = 0, 3, 5, 7
ALIGNED_ALLOC, POSIX_MEMALIGN, MEMALIGN_FAMILY = 8, 9, 10
CHECK, IMPOSSIBLE, THREAD, TRIM_FLUSH, REALLOCARRAY = 11, 12, 13, 14, 15

# alloc_fuzzer.c's k_edges table, by index.
EDGES = [
    0, 1, 8, 16, 17, 64, 128, 129, 160, 256, 512, 1024, 1025, 2048, 4096,
    8192, 8193, 10240, 16384, 65536, 131072 - 8, 131072, 131072 + 1,
    (2 << 20) - 64, 2 << 20, (2 << 20) + 1, (4 << 20) - 64, 4 << 20,
]

KiB = 1024
MiB = 1024 * 1024


def le(value, nbytes):
    return bytes((value >> (8 * i)) & 0xFF for i in range(nbytes))


def size(n):
    """Encodes exactly n bytes (read_size), choosing the range that holds n."""
    if n in EDGES:
        return bytes([4 | (16 << 3), EDGES.index(n)])  # delta 0
    if n <= 128:
        return bytes([0, n])
    if n <= 8192:
        return bytes([2]) + le(n, 2)
    if n <= 131072:
        return bytes([3]) + le(n - 8192, 3)
    if n < 131072 + (4 << 20):
        return bytes([5]) + le(n - 131072, 3)
    if n % (64 * KiB) == 0 and n <= 255 * 64 * KiB:
        return bytes([6, n // (64 * KiB)])
    raise ValueError("size %d cannot be encoded" % n)


def edge(index, delta):
    """EDGES[index] + delta, delta in -16..15."""
    assert -16 <= delta <= 15
    return bytes([4 | ((delta + 16) << 3), index])


def malloc(slot, n):
    return bytes([MALLOC, slot]) + size(n)


def free(slot):
    return bytes([FREE, slot])


def realloc(slot, n):
    return bytes([REALLOC, slot]) + size(n)


def calloc(slot, count, each):
    return bytes([CALLOC, slot]) + le(count, 2) + size(each)


def log2(align):
    assert align & (align - 1) == 0
    return align.bit_length() - 1


def aligned_alloc(slot, align, n):
    return bytes([ALIGNED_ALLOC, slot, log2(align)]) + size(n)


def posix_memalign(slot, align, n):
    return bytes([POSIX_MEMALIGN, slot, log2(align)]) + size(n)


def memalign(slot, align, n):
    return bytes([MEMALIGN_FAMILY, slot, 0]) + le(align - 1, 2) + size(n)


def valloc(slot, n):
    return bytes([MEMALIGN_FAMILY, slot, 1, 0, 0]) + size(n)


def pvalloc(slot, n):
    return bytes([MEMALIGN_FAMILY, slot, 2, 0, 0]) + size(n)


def check(slot):
    return bytes([CHECK, slot])


def impossible(what, k=0):
    return bytes([IMPOSSIBLE, 0, what]) + le(k, 2)


def thread_free(slots):
    assert 1 <= len(slots) <= 8
    return bytes([THREAD, 0, ((len(slots) - 1) << 1) | 0]) + bytes(slots)


def thread_alloc(pairs):
    assert 1 <= len(pairs) <= 8
    out = bytes([THREAD, 0, ((len(pairs) - 1) << 1) | 1])
    for slot, n in pairs:
        out += bytes([slot]) + size(n)
    return out


def flush():
    return bytes([TRIM_FLUSH, 0])


def trim():
    return bytes([TRIM_FLUSH, 1])


def reallocarray(slot, count, each):
    return bytes([REALLOCARRAY, slot, count - 1]) + size(each)


# ---- the seeds ---------------------------------------------------------------


def seed_tiny_churn():
    out = b""
    for round_ in range(4):
        for s in range(64):
            out += malloc(s, (s * 7 + round_ * 13) % 129)
        for s in range(0, 64, 2):
            out += free(s)
        for s in range(1, 64, 4):
            out += realloc(s, (s * 5) % 120 + 1)
    return out


def seed_every_class():
    # 16-byte steps to 128, then four classes per doubling up to 128 KiB;
    # the first, middle and last byte of each.
    sizes = list(range(1, 129, 16)) + [128]
    c = 128
    while c < 128 * KiB:
        step = c // 4
        for k in range(1, 5):
            sizes += [c + (k - 1) * step + 1, c + k * step]
        c *= 2
    out = b""
    for i, n in enumerate(sizes):
        out += malloc(i % 64, min(n, 128 * KiB))
    return out


def seed_edges():
    out = b""
    slot = 0
    for i in range(len(EDGES)):
        for delta in (-1, 0, 1):
            if EDGES[i] + delta >= 0:
                out += bytes([MALLOC, slot % 64]) + edge(i, delta)
                slot += 1
    return out


def seed_realloc_grow():
    out = malloc(0, 1)
    n = 1
    while n < 4 * MiB:
        n = n * 2 + 3
        out += realloc(0, min(n, 4 * MiB))
    out += realloc(0, 100)
    out += realloc(0, 131072 - 8)
    out += realloc(0, 131072 + 1)
    out += realloc(0, 0)
    return out


def seed_realloc_shrink():
    out = malloc(1, 3 * MiB + 5) + malloc(2, 200 * KiB)
    for n in (2 * MiB, 1 * MiB, 300 * KiB, 131072 + 1, 131072, 70000, 9000, 5000, 600, 40, 1):
        out += realloc(1, n) + realloc(2, n // 2 + 1)
    out += realloc(3, 77)  # realloc(NULL, n)
    return out


def seed_calloc():
    out = b""
    # Large blocks freed then calloc'ed at the same size: arena reuse must
    # come back zeroed.
    # (calloc's element size is at most 64 KiB: pages of 4 KiB here.)
    for i, pages in enumerate((75, 256, 511, 768)):
        out += malloc(i, pages * 4096) + free(i) + calloc(i, pages, 4096)
    for i, (count, each) in enumerate(((0, 10), (10, 0), (1, 1), (100, 16), (7, 1000), (1000, 100), (3, 40000))):
        out += calloc(10 + i, count, each)
    # Small blocks written, freed and reused by calloc.
    for s in range(20, 40):
        out += malloc(s, 48)
    for s in range(20, 40):
        out += free(s)
    for s in range(20, 40):
        out += calloc(s, 3, 16)
    return out


def seed_aligned():
    out = b""
    slot = 0
    for align in (1, 2, 8, 16, 32, 64, 256, 4096, 8192, 65536, 1 * MiB, 2 * MiB, 4 * MiB):
        for n in (0, 1, 100, 4096, 5000, 200 * KiB):
            out += aligned_alloc(slot % 64, align, n)
            slot += 1
        out += posix_memalign(slot % 64, align, 333)
        slot += 1
    return out


def seed_memalign_family():
    out = b""
    for i, (align, n) in enumerate(((3, 10), (24, 100), (100, 1000), (4095, 5000), (8192, 64), (17, 200 * KiB))):
        out += memalign(i, align, n)
    for i, n in enumerate((0, 1, 4096, 4097, 300 * KiB)):
        out += valloc(10 + i, n) + pvalloc(20 + i, n)
    return out


def seed_impossible():
    out = malloc(5, 1000) + malloc(6, 500 * KiB)
    for what in range(7):
        out += impossible(what, 5) + impossible(what | 0x10, 6) + impossible(what | 0x20, 0)
    return out


def seed_remote_free():
    out = b""
    for s in range(32):
        out += malloc(s, 24 + (s % 4) * 40)
    for base in range(0, 32, 8):
        out += thread_free(list(range(base, base + 8)))
    for s in range(32):
        out += malloc(s, 24 + (s % 4) * 40)
    return out


def seed_abandoned():
    out = b""
    for base in range(0, 48, 8):
        out += thread_alloc([(base + i, 64 + 16 * (base // 8)) for i in range(8)])
    for s in range(0, 48, 3):
        out += free(s)
    out += trim()
    for s in range(0, 48, 3):
        out += malloc(s, 64)
    for s in range(48):
        out += free(s)
    out += trim()
    return out


def seed_trim_flush():
    out = b""
    for r in range(3):
        for s in range(64):
            out += malloc(s, 200 + 50 * r)
        for s in range(64):
            out += free(s)
        out += flush()
        out += malloc(0, 400 * KiB) + free(0) + trim()
    return out


def seed_large_churn():
    out = b""
    for r in range(3):
        for s in range(20):  # passes the 64 MiB cap: some are skipped
            out += malloc(s, (1 + (s + r) % 4) * MiB + s * 4096)
        for s in range(0, 20, 2):
            out += free(s)
        out += bytes([MALLOC, 30, 6, 200])  # 200 * 64 KiB = 12.5 MiB
    return out


def seed_reallocarray():
    out = malloc(0, 10)
    for count, each in ((3, 100), (64, 1000), (2, 70000), (5, 10), (1, 1)):
        out += reallocarray(0, count, each)
    return out


def seed_flush_overflow():
    # One class, many frees in a row: with HAKMEM_TCACHE_MAX=16 (the
    # fuzzer's default) the bin overflows and flushes, locally and, for
    # blocks a thread frees, remotely.
    out = b""
    for r in range(3):
        for s in range(64):
            out += malloc(s, 32)
        for s in range(0, 64, 2):
            out += free(s)
        out += thread_free(list(range(1, 16, 2)))
        out += thread_free(list(range(17, 32, 2)))
        for s in range(33, 64, 2):
            out += free(s)
    return out


def random_program(rng, length, with_threads):
    out = b""
    while len(out) < length:
        r = rng.random()
        s = rng.randrange(64)
        if r < 0.30:
            kind = rng.random()
            if kind < 0.6:
                n = rng.randrange(0, 1025)
            elif kind < 0.9:
                n = rng.randrange(1025, 131073)
            else:
                n = rng.randrange(131073, 3 * MiB)
            out += malloc(s, n)
        elif r < 0.50:
            out += free(s)
        elif r < 0.62:
            out += realloc(s, rng.choice((rng.randrange(0, 300), rng.randrange(300, 70000), rng.randrange(131073, 2 * MiB))))
        elif r < 0.68:
            out += calloc(s, rng.randrange(0, 50), rng.randrange(0, 2000))
        elif r < 0.74:
            out += aligned_alloc(s, 1 << rng.randrange(0, 14), rng.randrange(0, 20000))
        elif r < 0.78:
            out += posix_memalign(s, 1 << rng.randrange(3, 22), rng.randrange(0, 300000))
        elif r < 0.82:
            out += check(s)
        elif r < 0.86 and with_threads:
            if rng.random() < 0.5:
                out += thread_free(rng.sample(range(64), rng.randrange(1, 9)))
            else:
                out += thread_alloc([(x, rng.randrange(1, 5000)) for x in rng.sample(range(64), rng.randrange(1, 9))])
        elif r < 0.88:
            out += flush() if rng.random() < 0.7 else trim()
        elif r < 0.92:
            out += reallocarray(s, rng.randrange(1, 65), rng.randrange(1, 3000))
        else:
            out += impossible(rng.randrange(64), rng.randrange(1 << 16))
    return out[:4096]


SEEDS = [
    ("01-tiny-churn", seed_tiny_churn),
    ("02-every-class", seed_every_class),
    ("03-edges", seed_edges),
    ("04-realloc-grow", seed_realloc_grow),
    ("05-realloc-shrink", seed_realloc_shrink),
    ("06-calloc", seed_calloc),
    ("07-aligned", seed_aligned),
    ("08-memalign-family", seed_memalign_family),
    ("09-impossible", seed_impossible),
    ("10-remote-free", seed_remote_free),
    ("11-abandoned", seed_abandoned),
    ("12-trim-flush", seed_trim_flush),
    ("13-large-churn", seed_large_churn),
    ("14-reallocarray", seed_reallocarray),
    ("15-flush-overflow", seed_flush_overflow),
    ("16-random", lambda: random_program(random.Random(16), 1500, False)),
    ("17-random-threads", lambda: random_program(random.Random(17), 2500, True)),
    ("18-random-long", lambda: random_program(random.Random(18), 4096, True)),
]


def main(argv):
    check_only = "--check" in argv[1:]
    wanted = {}
    for name, make in SEEDS:
        data = make()
        if len(data) > 4096:
            raise SystemExit("seed %s is %d bytes, more than -max_len=4096" % (name, len(data)))
        wanted[name] = data
    if check_only:
        have = set(os.listdir(CORPUS)) if os.path.isdir(CORPUS) else set()
        stale = sorted(n for n in wanted if n not in have or open(os.path.join(CORPUS, n), "rb").read() != wanted[n])
        extra = sorted(have - set(wanted))
        if stale or extra:
            print("corpus/ is stale: differs %s, extra %s" % (stale, extra))
            return 1
        print("corpus/ matches make_corpus.py (%d seeds)" % len(wanted))
        return 0
    os.makedirs(CORPUS, exist_ok=True)
    for old in os.listdir(CORPUS):
        if old not in wanted:
            os.remove(os.path.join(CORPUS, old))
    for name, data in wanted.items():
        with open(os.path.join(CORPUS, name), "wb") as f:
            f.write(data)
        print("%-22s %5d bytes" % (name, len(data)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
