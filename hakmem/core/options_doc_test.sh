#!/usr/bin/env bash
# The README's options table is what options_doc prints from hak_options_table.
# usage: options_doc_test.sh OPTIONS_DOC README
set -euo pipefail
[[ $# -eq 2 ]] || { echo "usage: $0 OPTIONS_DOC README" >&2; exit 2; }
exec "$1" --check "$2"
