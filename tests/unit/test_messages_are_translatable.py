"""Every message a domain error carries is a ``Text``, so the web can show it in the reader's language.

Read from the source, not run: any ``DomainError`` subclass (found in the
source too) built with a plain string literal or an f-string fails here, and
so does a ``Text`` whose msgid is not a literal (Babel could not extract it).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import salesinbox

SRC = Path(salesinbox.__file__).resolve().parent
SCANNED = ("domain", "services", "web")

#: (file, function, exception) -> why its message stays a plain str.
NOT_TRANSLATED = {
    ("services/image_proxy.py", "fetch_image", "ImageUnavailable"):
        "a reason code ('disabled', 'too_large' ...) answered to an <img>, not words for a person",
    ("services/workspace.py", "find_user_by_email", "NotFound"): "the operator's CLI only, which speaks English",
    ("services/workspace.py", "sole_company_admin", "ValidationFailed"): "the operator's CLI only",
    ("services/workspace.py", "sole_company_admin", "NotFound"): "the operator's CLI only",
}


def _modules() -> dict[str, ast.Module]:
    return {
        path.relative_to(SRC).as_posix(): ast.parse(path.read_text(encoding="utf-8"))
        for folder in SCANNED
        for path in sorted((SRC / folder).rglob("*.py"))
    }


def _name(node: ast.expr) -> str | None:
    return node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None


def _domain_errors(modules: dict[str, ast.Module]) -> set[str]:
    """``DomainError`` and every class that derives from it, by name."""
    found = {"DomainError"}
    classes = [node for tree in modules.values() for node in ast.walk(tree) if isinstance(node, ast.ClassDef)]
    while True:
        more = {c.name for c in classes if any(_name(base) in found for base in c.bases)} - found
        if not more:
            return found
        found |= more


def _plain(node: ast.expr) -> bool:
    """A string the catalogs never see: a literal, an f-string, or one built from them."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.IfExp):
        return _plain(node.body) or _plain(node.orelse)
    if isinstance(node, ast.BinOp):
        return _plain(node.left) or _plain(node.right)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format":
        return _plain(node.func.value)
    return False


def _messages(call: ast.Call) -> Iterator[ast.expr]:
    """What a call hands over as messages: a ValidationFailed's dict values, else every argument."""
    for argument in [*call.args, *(k.value for k in call.keywords)]:
        if isinstance(argument, ast.Dict):
            yield from argument.values
        else:
            yield argument


def _calls(tree: ast.Module) -> Iterator[tuple[str, ast.Call]]:
    """Every call with the name of the function (or class body) it is made in."""
    def visit(node: ast.AST, where: str) -> Iterator[tuple[str, ast.Call]]:
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) else where
            if isinstance(child, ast.Call):
                yield where, child
            yield from visit(child, inner)

    return visit(tree, "<module>")


def test_domain_errors_carry_a_text_not_a_plain_string():
    modules = _modules()
    errors = _domain_errors(modules)
    assert {"NotFound", "ValidationFailed", "Conflict", "PermissionDenied", "SignInRefused"} <= errors
    plain, exempt_used = [], set()
    for path, tree in modules.items():
        for where, call in _calls(tree):
            exception = _name(call.func)
            if exception not in errors or not any(_plain(m) for m in _messages(call)):
                continue
            if (path, where, exception) in NOT_TRANSLATED:
                exempt_used.add((path, where, exception))
            else:
                plain.append(f"{path}:{call.lineno} {exception} in {where}()")
    assert not plain, "use Text(...) (salesinbox.domain.text) for these messages:\n" + "\n".join(plain)
    assert exempt_used == set(NOT_TRANSLATED), f"exemptions no longer needed: {set(NOT_TRANSLATED) - exempt_used}"


def test_every_text_has_a_literal_msgid_babel_can_extract():
    bad = [
        f"{path}:{call.lineno}"
        for path, tree in _modules().items()
        for _, call in _calls(tree)
        if _name(call.func) == "Text"
        and not (call.args and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str))
    ]
    assert not bad, f"Text(...) needs a string literal as its msgid: {bad}"
