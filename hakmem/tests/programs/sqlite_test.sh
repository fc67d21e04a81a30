#!/usr/bin/env bash
# sqlite3 with hakmem preloaded: a scripted workload (200k rows inserted in
# transactions, indexes, joins, GROUP BY, updates, deletes, VACUUM) whose
# query results, integrity check and content hash must match a run without
# hakmem byte for byte. Needs the sqlite3 command (Debian package sqlite3).
TEST_NAME=sqlite
lib=hakmem/tests/programs/lib.sh
[[ -f ${lib} ]] || lib="$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=lib.sh
source "${lib}"

need sqlite3

# Deterministic: rows come from arithmetic on a counter, never random().
cat >"${WORK}/workload.sql" <<'EOF'
.bail on
.headers off
.mode list
PRAGMA journal_mode = WAL;
PRAGMA cache_size = -65536;
CREATE TABLE customer (id INTEGER PRIMARY KEY, name TEXT NOT NULL, region INTEGER, note TEXT);
CREATE TABLE item (id INTEGER PRIMARY KEY, customer INTEGER REFERENCES customer(id),
                   sku TEXT, qty INTEGER, price REAL, blob BLOB);
CREATE TABLE tag (item INTEGER, tag TEXT);

BEGIN;
WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 5000)
INSERT INTO customer
SELECT x, 'customer-' || x || '-' || replace(hex(zeroblob(x % 23)), '00', 'ab'),
       (x * 7) % 17, CASE WHEN x % 5 = 0 THEN NULL ELSE printf('note %08d', x * 131 % 100003) END
FROM n;
COMMIT;

-- 200,000 items in four transactions of 50,000.
BEGIN;
WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 50000)
INSERT INTO item SELECT x, 1 + (x * 7919) % 5000, printf('SKU-%05d-%s', x % 9973, substr('abcdefghij', 1 + x % 10)),
  1 + (x * 31) % 97, ((x * 104729) % 100000) / 100.0, zeroblob(x % 200) FROM n;
COMMIT;
BEGIN;
WITH RECURSIVE n(x) AS (SELECT 50001 UNION ALL SELECT x + 1 FROM n WHERE x < 100000)
INSERT INTO item SELECT x, 1 + (x * 7919) % 5000, printf('SKU-%05d-%s', x % 9973, substr('abcdefghij', 1 + x % 10)),
  1 + (x * 31) % 97, ((x * 104729) % 100000) / 100.0, zeroblob(x % 200) FROM n;
COMMIT;
BEGIN;
WITH RECURSIVE n(x) AS (SELECT 100001 UNION ALL SELECT x + 1 FROM n WHERE x < 150000)
INSERT INTO item SELECT x, 1 + (x * 7919) % 5000, printf('SKU-%05d-%s', x % 9973, substr('abcdefghij', 1 + x % 10)),
  1 + (x * 31) % 97, ((x * 104729) % 100000) / 100.0, zeroblob(x % 200) FROM n;
COMMIT;
BEGIN;
WITH RECURSIVE n(x) AS (SELECT 150001 UNION ALL SELECT x + 1 FROM n WHERE x < 200000)
INSERT INTO item SELECT x, 1 + (x * 7919) % 5000, printf('SKU-%05d-%s', x % 9973, substr('abcdefghij', 1 + x % 10)),
  1 + (x * 31) % 97, ((x * 104729) % 100000) / 100.0, zeroblob(x % 200) FROM n;
COMMIT;

BEGIN;
INSERT INTO tag SELECT id, 'tag' || (id % 37) FROM item WHERE id % 3 = 0;
INSERT INTO tag SELECT id, 'hot' FROM item WHERE qty > 90;
COMMIT;

CREATE INDEX item_customer ON item(customer);
CREATE INDEX item_sku ON item(sku, qty);
CREATE INDEX tag_tag ON tag(tag, item);
CREATE UNIQUE INDEX customer_name ON customer(name);

SELECT 'rows', (SELECT count(*) FROM customer), (SELECT count(*) FROM item), (SELECT count(*) FROM tag);
SELECT 'sum', sum(qty), printf('%.2f', sum(price)), sum(length(blob)), total(length(sku)) FROM item;
-- Join + GROUP BY.
SELECT 'region', c.region, count(*), sum(i.qty), printf('%.2f', avg(i.price))
FROM item i JOIN customer c ON c.id = i.customer GROUP BY c.region ORDER BY c.region;
-- Three-way join, GROUP BY with HAVING, ORDER BY on an aggregate.
SELECT 'toptag', t.tag, count(DISTINCT c.id), sum(i.qty)
FROM tag t JOIN item i ON i.id = t.item JOIN customer c ON c.id = i.customer
GROUP BY t.tag HAVING count(*) > 1000 ORDER BY sum(i.qty) DESC, t.tag LIMIT 10;
-- Big sort with long strings (the sorter allocates).
SELECT 'sorted', group_concat(name, ',') FROM
  (SELECT name FROM customer ORDER BY note DESC NULLS LAST, length(name), name LIMIT 25);
SELECT 'window', id, qty, sum(qty) OVER (PARTITION BY customer ORDER BY id ROWS 3 PRECEDING)
FROM item WHERE customer = 42 ORDER BY id LIMIT 8;

-- Updates and deletes, then the same questions again.
BEGIN;
UPDATE item SET qty = qty * 2, sku = sku || '-x' WHERE id % 7 = 0;
UPDATE customer SET note = replace(hex(zeroblob(40 + id % 60)), '00', 'cd') WHERE region IN (1, 5, 9);
DELETE FROM item WHERE id % 11 = 0;
DELETE FROM tag WHERE item NOT IN (SELECT id FROM item);
COMMIT;
BEGIN;
DELETE FROM item WHERE customer IN (SELECT id FROM customer WHERE region = 3);
DELETE FROM customer WHERE region = 3;
COMMIT;
SELECT 'after', (SELECT count(*) FROM customer), (SELECT count(*) FROM item), (SELECT count(*) FROM tag),
  (SELECT sum(qty) FROM item), (SELECT sum(length(note)) FROM customer);
SELECT 'region2', c.region, count(*), sum(i.qty)
FROM item i JOIN customer c ON c.id = i.customer GROUP BY c.region ORDER BY c.region;

PRAGMA wal_checkpoint(TRUNCATE);
VACUUM;
PRAGMA integrity_check;
SELECT 'final', (SELECT count(*) FROM item), (SELECT max(id) FROM item), (SELECT count(*) FROM tag);
.sha3sum
EOF

# run RUNNER OUT: the whole workload on a fresh database.
run() {
  local runner=$1 out=$2
  rm -rf "${WORK}/${out}.db"*
  if [[ ${runner} == plain ]]; then
    plain sqlite3 "${WORK}/${out}.db" <"${WORK}/workload.sql" >"${WORK}/${out}.out" 2>"${WORK}/${out}.err"
  else
    hakmem "${WORK}/${out}.stats" sqlite3 "${WORK}/${out}.db" <"${WORK}/workload.sql" \
      >"${WORK}/${out}.out" 2>"${WORK}/${out}.err"
  fi
}

# run_plain: the workload without hakmem (made once for every variant:
# plain_baseline); the database itself is not compared, so it goes.
run_plain() {
  run plain plain || { show_tail "${WORK}/plain.err"; die "sqlite3 failed without hakmem"; }
  rm -f "${WORK}"/plain.db*
}

step "sqlite3 workload without hakmem"
plain_baseline "$(plain sqlite3 --version)" run_plain
check "integrity_check says ok; 200000 items were inserted"
grep -qx 'ok' "${WORK}/plain.out" || die "integrity_check is not ok without hakmem"
grep -qx 'rows|5000|200000|[0-9]*' "${WORK}/plain.out" || die "expected 5000 customers and 200000 items"
echo "  $(wc -l <"${WORK}/plain.out") output lines in ${SECONDS} s"

step "sqlite3 workload with hakmem"
t0=${SECONDS}
run hakmem hakmem || { show_tail "${WORK}/hakmem.err"; die "sqlite3 failed with hakmem preloaded"; }
echo "  ran in $((SECONDS - t0)) s"
check "query results, integrity_check and .sha3sum identical byte for byte"
same_file "${WORK}/plain.out" "${WORK}/hakmem.out" "sqlite3 output"
same_file "${WORK}/plain.err" "${WORK}/hakmem.err" "sqlite3 stderr"
expect_served "${WORK}/hakmem.stats" "${WORK}/hakmem.err"
sed -n '1,3p;$p' "${WORK}/hakmem.out" | cut -c1-100 | sed 's/^/  | /'

finish
