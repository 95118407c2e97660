"""Parses Swift files with tree-sitter-swift and reports syntax errors: the one check of the
iOS code a machine without a Swift compiler can make. A clean parse is weak evidence (no types
are checked), and the grammar lags Swift in places (it rejects some valid attributes), so a
report names the spot to look at rather than proving a bug."""

import sys

import tree_sitter
import tree_sitter_swift


def errors(tree):
    """The ERROR and MISSING nodes of a parse tree, outermost first."""
    found, stack = [], [tree.root_node]
    while stack:
        node = stack.pop()
        if node.is_error or node.is_missing:
            found.append(node)
            continue
        stack.extend(reversed(node.children))
    return found


def main(paths):
    parser = tree_sitter.Parser(tree_sitter.Language(tree_sitter_swift.language()))
    failed = 0
    for path in paths:
        with open(path, "rb") as f:
            bad = errors(parser.parse(f.read()))
        for node in bad[:5]:
            line, col = node.start_point
            kind = "missing" if node.is_missing else "syntax error"
            print(f"{path}:{line + 1}:{col + 1}: {kind} near {node.text[:60]!r}")
        failed += bool(bad)
    print(f"{len(paths) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
