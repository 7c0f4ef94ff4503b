"""The package's layers, pinned: data flows one way (task → finder → suggestion → schedule →
fit → store → report), and no module imports one from a layer above its own.

Every ``import``/``from lrkit… import`` in ``src/lrkit`` counts, at module level or inside a
function, except those under ``if TYPE_CHECKING:`` (types only, never executed). The layer
table is the one in ``docs/architecture.md``; change both together.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "lrkit"

# Lowest first. A module may import modules of its own layer or of any layer below.
LAYERS: list[set[str]] = [
    {
        "_steps",
        "_state",
        "_loaders",
        "_plot",
        "_timm",
        "_transformers",
        "loggers",
        "optimizers",
        "suggest",
        "schedules",
        "groups",
        "plateau",
    },
    {"_engine", "torch_sched"},
    {"finder", "train"},
    {"vectorized", "tasks"},
    {"finetune"},
    {"sweeps"},
    {"report", "tuning"},
    {"demo", "integrations"},
    {"cli", "__init__", "__main__"},
]
LEVEL = {name: i for i, layer in enumerate(LAYERS) for name in layer}

# The one import that reaches up, on purpose: ``lrkit.sweep(report=True)`` is the library's
# one-call entry (like the CLI) and writes the report after the grid runner (``run_spec``)
# returns; it imports the report lazily, after checking the extras before the first run.
ALLOWED = {("lrkit.sweeps.driver", "report")}


def _component(module: str) -> str:
    """``lrkit.finder.serial`` → ``finder``; the top-level piece a module belongs to."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _source_modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).with_suffix("")
        out.append((".".join(("lrkit", *rel.parts)), path))
    return out


def _type_checking_lines(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                for sub in ast.walk(child):
                    if hasattr(sub, "lineno"):
                        lines.add(sub.lineno)
    return lines


def _imports(module: str, path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text())
    skip = _type_checking_lines(tree)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("lrkit")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            if target == "lrkit":  # `from lrkit import finder` names the submodules
                found += [(node.lineno, f"lrkit.{a.name}") for a in node.names]
            elif target.startswith("lrkit."):
                found.append((node.lineno, target))
    return found


def test_every_source_module_is_in_a_layer() -> None:
    missing = sorted({_component(m) for m, _ in _source_modules()} - set(LEVEL))
    assert not missing, f"add {missing} to LAYERS here and to docs/architecture.md"


@pytest.mark.parametrize(("module", "path"), _source_modules(), ids=lambda v: str(v))
def test_no_module_imports_from_a_higher_layer(module: str, path: Path) -> None:
    own = LEVEL[_component(module)]
    upward = [
        f"line {line}: {target}"
        for line, target in _imports(module, path)
        if _component(target) in LEVEL
        and LEVEL[_component(target)] > own
        and (module, _component(target)) not in ALLOWED
    ]
    assert not upward, f"{module} (layer {own}) reaches up: {upward}"


def test_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    fake = tmp_path / "finder.py"
    fake.write_text("def f():\n    from lrkit.sweeps import sweep\n")
    assert _imports("lrkit.finder", fake) == [(2, "lrkit.sweeps")]
