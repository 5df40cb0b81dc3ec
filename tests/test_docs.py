"""The documentation navigates: every link in README.md and docs/*.md resolves.

A relative link must name an existing file, and a ``#anchor`` (in the same file or in another
Markdown file) must be the slug of one of that file's headings, computed as GitHub computes it:
lower case, punctuation other than ``-`` and ``_`` dropped, spaces -> ``-``, ``-1``, ``-2``...
for repeated headings. Fenced code blocks are not Markdown (``# comment`` is no heading, ``]( ``
in code is no link). Also: repository paths named in backticks exist, the docs state formulas or
cite the paper instead of internal specification files, and the README keeps the two commands CI
runs.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
IDS = [str(p.relative_to(ROOT)) for p in DOCS]

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
INLINE_CODE = re.compile(r"`[^`\n]*`")
TOP_LEVEL = ("configkit/", "adaattn_video/", "streamer/", "training/", "benchmarks/", "tests/")
TOP_LEVEL += ("scripts/", "configs/", "docs/")


def prose_lines(path: Path) -> list[str]:
    """The lines of a Markdown file outside fenced code blocks."""
    lines, fenced = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading: its text
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


@cache
def anchors(path: Path) -> frozenset[str]:
    """Every heading anchor of ``path``, repeated headings numbered as GitHub numbers them."""
    seen: dict[str, int] = {}
    found = set()
    for line in prose_lines(path):
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return frozenset(found)


def links(path: Path) -> list[str]:
    """Link targets in the prose of ``path`` (inline code removed first)."""
    return [
        target for line in prose_lines(path) for target in LINK.findall(INLINE_CODE.sub("", line))
    ]


def broken_links(path: Path) -> list[str]:
    """Relative links of ``path`` whose file or heading does not exist."""
    broken = []
    for target in links(path):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            broken.append(f"{target} (no file {dest})")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target} (no heading #{anchor} in {dest.name})")
    return broken


def test_slug_follows_github() -> None:
    assert slug("Regions (spatial control)") == "regions-spatial-control"
    assert slug("`bench serve`") == "bench-serve"
    assert slug("Per-frame cost (`bench model`)") == "per-frame-cost-bench-model"
    assert (
        slug("Why it is fast: attention in linear time")
        == "why-it-is-fast-attention-in-linear-time"
    )


def test_checker_finds_a_broken_anchor(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# Title\n\n## Part\n\n```bash\n# not a heading\n```\n\n"
        "[ok](#part) [ok](#title) [bad](#not-a-heading) [bad](other.md) [web](https://x.org/#y)\n",
        encoding="utf-8",
    )
    assert broken_links(page) == [
        "#not-a-heading (no heading #not-a-heading in page.md)",
        f"other.md (no file {tmp_path / 'other.md'})",
    ]


def test_docs_exist_and_readme_links_every_doc() -> None:
    docs = [p for p in DOCS if p.parent == ROOT / "docs"]
    assert len(docs) >= 9
    readme_targets = {t.partition("#")[0] for t in links(ROOT / "README.md")}
    missing = [p.name for p in docs if f"docs/{p.name}" not in readme_targets]
    assert not missing, f"docs not linked from README.md: {missing}"


@pytest.mark.parametrize("path", DOCS, ids=IDS)
def test_every_link_resolves(path: Path) -> None:
    assert not broken_links(path), broken_links(path)


@pytest.mark.parametrize("path", DOCS, ids=IDS)
def test_named_repository_paths_exist(path: Path) -> None:
    """A module path renamed in a restructuring must not live on in the docs."""
    missing = []
    for line in prose_lines(path):
        for code in INLINE_CODE.findall(line):
            name = code.strip("`")
            if not name.startswith(TOP_LEVEL) or re.search(r"[\s*%]|\.\.\.", name):
                continue
            if not (ROOT / name).exists():
                missing.append(name)
    assert not missing, f"{path.name} names paths that do not exist: {missing}"


@pytest.mark.parametrize("path", DOCS, ids=IDS)
def test_no_internal_spec_citations(path: Path) -> None:
    """Docs state the formula or cite the AdaAttN paper, never an internal spec file."""
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"\bSPEC\b|\.\./shared", text), path.name


def test_no_internal_spec_citations_in_code() -> None:
    """Docstrings and comments stand alone too: no citation of a spec file outside the repo."""
    packages = ("configkit", "adaattn_video", "streamer", "training", "benchmarks", "tests")
    cited = [
        str(source.relative_to(ROOT))
        for package in packages
        for source in (ROOT / package).rglob("*.py")
        if source.name != "test_docs.py"
        and re.search(r"\bSPEC (section|\d)|\.\./shared", source.read_text(encoding="utf-8"))
    ]
    assert not cited, cited


def _documented_commands() -> list[tuple[str, str]]:
    """(page, line) for every one-line ``stylestream ...`` command in a shell block."""
    found = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for block in re.findall(r"```(?:bash|sh)?\n(.*?)```", text, re.S):
            for line in block.splitlines():
                line = line.split(" #")[0].strip()
                if line.startswith("stylestream ") and not re.search(r"\\|\.\.\.|\|", line):
                    found.append((path.name, line))
    return found


def test_documented_commands_parse() -> None:
    """Every documented one-line command names a command and flags that exist (parsed, not run:
    a renamed flag must not live on in the docs)."""
    import shlex

    from streamer.cli import build_parser

    parser = build_parser()
    commands = _documented_commands()
    assert len(commands) > 20  # the examples are there to be checked
    wrong = []
    for page, line in commands:
        try:
            parser.parse_args(shlex.split(line)[1:])
        except SystemExit:
            wrong.append(f"{page}: {line}")
    assert not wrong, wrong


def test_readme_keeps_the_two_ci_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    install = (
        "```bash\npython3 -m venv .venv && . .venv/bin/activate && pip install -e . "
        "&& stylestream demo\n```"
    )
    assert install in readme
    assert "```bash\nbash scripts/test.sh\n```" in readme
