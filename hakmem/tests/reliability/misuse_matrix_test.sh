#!/usr/bin/env bash
# //hakmem/tests/reliability:misuse_matrix_test: the misuse matrix against
# the libhakmem*.so of this build, and the peers whose libraries exist.
# Prints the table and the grounds of every verdict (the test log); fails
# unless hakmem's columns keep hakmem's promise (tools/misuse_matrix.py,
# --check-hakmem): every case reported by every variant, except that the
# release variants need not catch the two hardened-only cases (but must not
# crash or hand a block out twice on them). The peers are shown, not judged.
set -euo pipefail
py=/usr/bin/python3
[[ -x "$py" ]] || py=python3
root="${TEST_SRCDIR}/${TEST_WORKSPACE}"
exec "$py" "$root/tools/misuse_matrix.py" --bin-dir "$root" --details --check-hakmem
