#!/usr/bin/env python3
"""Lists every import loop between the modules of each crate, and exits 1 if there is one.

A module is a source file (`src/a/b.rs` or `src/a/b/mod.rs` is `a::b`; `lib.rs` and
`main.rs` are the crate root). Module M uses module N when M's code names an item of N by
path: `use crate::n::Item`, `use super::Item`, `crate::n::f()` inline, and so on. The
longest path prefix that is a module decides which module is meant. Two kinds of reference
are not uses: a parent re-exporting its child (`pub use child::Item`, which is how a parent
publishes its parts) and code under `#[cfg(test)]` (tests may reach anywhere). A loop is a
cycle of uses: M uses N, and N, through any number of steps, uses M back.

    scripts/module-loops.py [crate directory ...]   (default: every crate in the workspace)
    scripts/module-loops.py --self-test             (proves it finds a loop, and passes none)
"""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def modules(src: Path) -> dict[tuple[str, ...], Path]:
    """Every module of the crate rooted at `src`, by path; binaries under src/bin are crates
    of their own and left out."""
    found = {}
    for file in sorted(src.rglob("*.rs")):
        relative = file.relative_to(src)
        if relative.parts[0] == "bin":
            continue
        parts = list(relative.with_suffix("").parts)
        if parts[-1] == "mod" or (len(parts) == 1 and parts[0] in ("lib", "main")):
            parts.pop()
        found[tuple(parts)] = file
    return found


def without_tests(text: str) -> str:
    """The text with every `#[cfg(test)]` item cut out, braces matched."""
    out, position = [], 0
    for match in re.finditer(r"#\[cfg\(test\)\]", text):
        if match.start() < position:
            continue
        out.append(text[position : match.start()])
        end = match.end()
        brace, semicolon = text.find("{", end), text.find(";", end)
        if semicolon != -1 and (brace == -1 or semicolon < brace):
            position = semicolon + 1
            continue
        depth, index = 0, brace
        while index < len(text):
            if text[index] == "{":
                depth += 1
            elif text[index] == "}":
                depth -= 1
                if depth == 0:
                    break
            index += 1
        position = index + 1
    out.append(text[position:])
    return "".join(out)


def strip_comments_and_strings(text: str) -> str:
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r'r#*"(?:.|\n)*?"#*', '""', text)
    return re.sub(r'"(?:\\.|[^"\\])*"', '""', text)


def expand(tree: str) -> list[str]:
    """`a::{b, c::{d, e}}` as `a::b`, `a::c::d`, `a::c::e`."""
    tree = re.sub(r"\s+", "", tree)
    brace = tree.find("{")
    if brace == -1:
        return [re.sub(r"\bas\w+$", "", tree)] if tree else []
    prefix, inner = tree[:brace], tree[brace + 1 : tree.rfind("}")]
    parts, depth, start = [], 0, 0
    for index, char in enumerate(inner):
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(inner[start:index])
            start = index + 1
    parts.append(inner[start:])
    return [path for part in parts for path in expand(prefix + part)]


def references(text: str) -> list[tuple[bool, str]]:
    """(re-exported, path) for every path the code names through crate, super or self."""
    found = []
    for match in re.finditer(r"\b(pub(?:\([^)]*\))?\s+)?use\s+([^;]+);", text):
        exported = match.group(1) is not None
        for path in expand(match.group(2)):
            found.append((exported, path))
    code = re.sub(r"\buse\s+[^;]+;", "", text)
    for match in re.finditer(rf"\b(?:crate|super|self)(?:::{IDENT})+", code):
        found.append((False, match.group(0)))
    return found


def resolve(path: str, here: tuple[str, ...], known) -> tuple[str, ...] | None:
    segments = path.split("::")
    if segments[0] == "crate":
        base, rest = (), segments[1:]
    elif segments[0] in ("super", "self"):
        base = here
        while segments and segments[0] in ("super", "self"):
            if segments.pop(0) == "super":
                base = base[:-1]
        rest = segments
    else:
        # A path from a child declared here (`use child::Item`).
        base, rest = here, segments
        if here + (rest[0],) not in known:
            return None
    target = base
    for segment in rest:
        if target + (segment,) in known:
            target = target + (segment,)
        else:
            break
    return target


def loops(crate: Path) -> list[list[str]]:
    known = modules(crate / "src")
    uses: dict[tuple[str, ...], set[tuple[str, ...]]] = {module: set() for module in known}
    for module, file in known.items():
        text = strip_comments_and_strings(without_tests(file.read_text()))
        for exported, path in references(text):
            target = resolve(path, module, known)
            if target is None or target == module:
                continue
            if exported and target[: len(module)] == module:
                continue  # a parent publishing its own part
            uses[module].add(target)
    # Strongly connected components (Tarjan): each with more than one module is a loop.
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for neighbour in uses[node]:
            if neighbour not in index:
                visit(neighbour)
                low[node] = min(low[node], low[neighbour])
            elif neighbour in on_stack:
                low[node] = min(low[node], index[neighbour])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    sys.setrecursionlimit(10_000)
    for node in uses:
        if node not in index:
            visit(node)
    named = lambda module: "::".join(("crate",) + module)  # noqa: E731
    return [
        sorted(
            f"{named(member)} -> {', '.join(sorted(named(t) for t in uses[member] if t in component))}"
            for member in component
        )
        for component in components
    ]


def self_test() -> int:
    """A crate with a loop through three modules fails, and a parent re-exporting its child
    or test code reaching back does not count."""
    import tempfile

    with tempfile.TemporaryDirectory() as directory:
        src = Path(directory) / "src"
        (src / "a").mkdir(parents=True)
        (src / "lib.rs").write_text("pub mod a;\npub mod b;\npub mod c;\n")
        (src / "a" / "mod.rs").write_text("mod inner;\npub use inner::Thing;\nuse crate::b::B;\n")
        (src / "a" / "inner.rs").write_text("pub struct Thing;\nuse super::Thing as _;\n")
        (src / "b.rs").write_text("pub struct B;\npub fn f() { crate::c::g() }\n")
        (src / "c.rs").write_text(
            "pub fn g() {}\n#[cfg(test)]\nmod tests { use crate::b::B; }\nuse crate::a::Thing;\n"
        )
        found = loops(Path(directory))
        expected = [
            "crate::a -> crate::b",
            "crate::b -> crate::c",
            "crate::c -> crate::a",
        ]
        if found != [expected]:
            print(f"self-test: expected one loop {expected}, found {found}")
            return 1
        (src / "c.rs").write_text("pub fn g() {}\n#[cfg(test)]\nmod tests { use crate::a::Thing; }\n")
        if loops(Path(directory)):
            print("self-test: test code or a parent's re-export was counted as a loop")
            return 1
    print("self-test: a loop is found, and test code and re-exports are not loops")
    return 0


def main() -> int:
    if sys.argv[1:] == ["--self-test"]:
        return self_test()
    manifests = [*ROOT.glob("*/Cargo.toml"), *ROOT.glob("*/*/Cargo.toml")]
    crates = [Path(arg) for arg in sys.argv[1:]] or sorted(
        path.parent for path in manifests if (path.parent / "src").is_dir()
    )
    failed = False
    for crate in crates:
        found = loops(crate.resolve())
        name = crate.resolve().relative_to(ROOT)
        if not found:
            print(f"{name}: no import loops ({len(modules(crate.resolve() / 'src'))} modules)")
            continue
        failed = True
        for component in found:
            print(f"{name}: import loop through {len(component)} modules")
            for line in component:
                print(f"    {line}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
