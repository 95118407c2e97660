#!/usr/bin/env bash
# Parses the hand-written Swift of mobile-ios/ (the package's layer and the sample app) with
# tree-sitter-swift, pinned from PyPI into a venv under ~/.cache: the check of the iOS code
# that runs without a Swift compiler. It proves no more than syntax; see
# mobile-ios/syntax-check/parse_swift.py.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${PERCH_SWIFT_CHECK_VENV:-$HOME/.cache/perch-swift-check}"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import tree_sitter, tree_sitter_swift' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check tree-sitter==0.26.1 tree-sitter-swift==0.7.4
fi
files=()
while IFS= read -r f; do
  files+=("$f")
done < <(find mobile-ios -name '*.swift' -not -path '*/Generated/*' -not -path '*/.build/*' | sort)
"$venv/bin/python" mobile-ios/syntax-check/parse_swift.py "${files[@]}"
