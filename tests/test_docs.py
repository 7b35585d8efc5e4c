"""The documentation stays true to the tree and to the command line.

- Every relative link and image in README.md and docs/**/*.md points at a file that exists, and
  every #anchor at a heading of that file (GitHub's slugs); every page is linked from another.
- Every command of `shakegen --help` has a page, docs/commands/<command>.md, whose "Options"
  table lists exactly the options of `shakegen <command> --help`: none missing, none stale.
- README.md names every command and stays under 300 lines; the group's own options are
  documented in docs/commands/README.md.

The command line is read by walking the Click group named by the `shakegen` console script,
without running any command (no TensorFlow import).
"""

from __future__ import annotations

import configparser
import importlib
import os
import re
import unicodedata
from pathlib import Path
from urllib.parse import unquote

import click
import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
COMMAND_PAGES = DOCS / "commands"

# [text](target "title") and ![alt](target); the target may sit in <angle brackets>.
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_DEFINITION = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.MULTILINE)
HTML_LINK = re.compile(r"<(?:a|img)\s[^>]*?(?:href|src)=\"([^\"]+)\"", re.IGNORECASE)
FENCE = re.compile(r"^(\s*)(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
OPTION_TOKEN = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


def relative(path: Path, root: Path = ROOT) -> str:
    return Path(os.path.relpath(path, root)).as_posix()


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks (links in code are not links)."""
    lines, fence = [], None
    for line in text.splitlines():
        match = FENCE.match(line)
        if fence is None and match:
            fence = match.group(2)
            lines.append("")
        elif fence is not None:
            if line.strip().startswith(fence):
                fence = None
            lines.append("")
        else:
            lines.append(line)
    return lines


def without_code_spans(line: str) -> str:
    return re.sub(r"(`+).*?\1", "", line)


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: the rendered text lower-cased, punctuation other than
    '-' and '_' removed, spaces turned into hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link renders as its text
    text = re.sub(r"<[^>]+>", "", text)
    text = text.replace("`", "").replace("*", "")
    text = re.sub(r"(?<!\w)_|_(?!\w)", "", text)  # _emphasis_, not snake_case
    text = text.strip().lower()
    kept = "".join(ch for ch in text if ch in "-_ " or unicodedata.category(ch)[0] in "LMN")
    return kept.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor GitHub makes for the headings of a Markdown file (repeats get -1, -2, ...)."""
    seen: dict[str, int] = {}
    found = set()
    for line in prose_lines(path.read_text(encoding="utf-8")):
        match = HEADING.match(line)
        if not match:
            continue
        slug = github_slug(match.group(2))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def link_targets(path: Path) -> list[tuple[int, str]]:
    text = path.read_text(encoding="utf-8")
    targets = []
    for number, line in enumerate(prose_lines(text), start=1):
        line = without_code_spans(line)
        for pattern in (INLINE_LINK, HTML_LINK):
            targets += [(number, match.group(1)) for match in pattern.finditer(line)]
        definition = REFERENCE_DEFINITION.match(line)
        if definition:
            targets.append((number, definition.group(1)))
    return targets


def broken_links(pages: list[Path], root: Path = ROOT) -> list[str]:
    broken = []
    for page in pages:
        for number, target in link_targets(page):
            if not target or re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target) or target.startswith("//"):
                continue  # an absolute URL (https:, mailto:): not the tree's business
            file_part, _, anchor = target.partition("#")
            destination = (page.parent / unquote(file_part)).resolve() if file_part else page
            where = f"{relative(page, root)}:{number}: {target}"
            if not destination.exists():
                broken.append(f"{where} (no such file)")
            elif anchor and destination.suffix == ".md" and unquote(anchor).lower() not in anchors(destination):
                broken.append(f"{where} (no heading #{anchor} in {relative(destination, root)})")
            elif anchor and destination.suffix != ".md":
                broken.append(f"{where} (#anchor into a file that is not Markdown)")
    return broken


def console_script() -> click.Group:
    """The Click group the `shakegen` command runs, as setup.cfg (or pyproject.toml) names it."""
    spec = "shakegen.cli:main"
    setup_cfg = ROOT / "setup.cfg"
    if setup_cfg.exists():
        parser = configparser.ConfigParser()
        parser.read(setup_cfg, encoding="utf-8")
        scripts = parser.get("options.entry_points", "console_scripts", fallback="")
        for line in scripts.splitlines():
            name, _, value = line.partition("=")
            if name.strip() == "shakegen":
                spec = value.strip()
    module, _, attribute = spec.partition(":")
    group = getattr(importlib.import_module(module), attribute)
    assert isinstance(group, click.Group), f"{spec} is not a Click group"
    return group


def shown_options(command: click.Command, ctx: click.Context) -> list[str]:
    """Every option string `--help` shows for a command, its help option included."""
    options = []
    for param in command.get_params(ctx):
        if isinstance(param, click.Option) and not param.hidden:
            options += [*param.opts, *param.secondary_opts]
    return options


def commands() -> tuple[click.Group, click.Context, dict[str, click.Command]]:
    group = console_script()
    ctx = click.Context(group, info_name="shakegen", **group.context_settings)
    visible = {}
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if command is not None and not command.hidden:
            visible[name] = command
    return group, ctx, visible


def options_table(page: Path) -> list[str]:
    """The options in the first column of the table under the page's "Options" heading."""
    listed, inside = [], False
    for line in prose_lines(page.read_text(encoding="utf-8")):
        heading = HEADING.match(line)
        if heading:
            inside = github_slug(heading.group(2)) == "options"
            continue
        if inside and line.lstrip().startswith("|"):
            first_cell = line.strip().strip("|").split("|")[0]
            listed += OPTION_TOKEN.findall(first_cell)
    return listed


def mentions(text: str, option: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text) is not None


def test_every_relative_link_resolves():
    broken = broken_links(markdown_files())
    assert not broken, "Links in the docs that lead nowhere:\n  " + "\n  ".join(broken)


def test_every_docs_page_is_linked_from_another():
    linked = set()
    for page in markdown_files():
        for _, target in link_targets(page):
            file_part = unquote(target.partition("#")[0])
            if file_part and not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", file_part):
                destination = (page.parent / file_part).resolve()
                if destination != page.resolve():
                    linked.add(destination)
    orphans = [relative(page) for page in markdown_files()[1:] if page.resolve() not in linked]
    assert not orphans, "Pages no other page links to (add them to docs/README.md):\n  " + "\n  ".join(orphans)


def test_every_command_has_a_page_listing_exactly_its_options():
    _, ctx, visible = commands()
    problems = []
    for name, command in visible.items():
        page = COMMAND_PAGES / f"{name}.md"
        if not page.exists():
            problems.append(f"shakegen {name}: no page {relative(page)}")
            continue
        shown = shown_options(command, click.Context(command, info_name=name, parent=ctx, **command.context_settings))
        listed = options_table(page)
        missing = [option for option in shown if option not in listed]
        stale = [option for option in listed if option not in shown]
        if missing:
            problems.append(f"{relative(page)}: its Options table lacks {', '.join(missing)}")
        if stale:
            problems.append(
                f"{relative(page)}: its Options table lists {', '.join(stale)}, which `shakegen {name}` lacks"
            )
    pages = sorted(path.stem for path in COMMAND_PAGES.glob("*.md") if path.stem != "README")
    for orphan in sorted(set(pages) - set(visible)):
        problems.append(f"docs/commands/{orphan}.md documents a command `shakegen --help` does not list")
    assert not problems, "The command reference is out of step with --help:\n  " + "\n  ".join(problems)


def test_readme_names_every_command_and_the_index_documents_the_group_options():
    group, ctx, visible = commands()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    index = COMMAND_PAGES / "README.md"
    index_text = index.read_text(encoding="utf-8") if index.exists() else ""
    missing = [f"README.md does not name `shakegen {name}`" for name in visible if f"shakegen {name}" not in readme]
    missing += [
        f"{relative(index)} does not mention the group option {option}"
        for option in shown_options(group, ctx)
        if not mentions(index_text, option)
    ]
    missing += [f"{relative(index)} does not link to {name}.md" for name in visible if f"({name}.md" not in index_text]
    assert not missing, "Undocumented parts of the command line:\n  " + "\n  ".join(missing)


def test_the_readme_stays_a_five_minute_read():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= 300, f"README.md has {lines} lines; keep it to 300 and move the rest into docs/"


@pytest.mark.parametrize(
    ("heading", "slug"),
    [
        ("`shakegen train`", "shakegen-train"),
        ("Serve it: a JSON API, streaming, and a web page", "serve-it-a-json-api-streaming-and-a-web-page"),
        ("The `quick` that ships (3 seeds)", "the-quick-that-ships-3-seeds"),
        ("mixed_bfloat16 and float32", "mixed_bfloat16-and-float32"),
        ("Speed — against Keras", "speed--against-keras"),
    ],
)
def test_slugs_are_githubs(heading, slug):
    # Known answers: the anchors github.com gives these headings.
    assert github_slug(heading) == slug


def test_the_link_checker_sees_a_broken_link_and_a_broken_anchor(tmp_path):
    page = tmp_path / "page.md"
    (tmp_path / "other.md").write_text("# Other page\n\n## A section\n", encoding="utf-8")
    page.write_text(
        "[fine](other.md#a-section) [gone](missing.md) [bad](other.md#no-such) `[code](missing.md)`\n"
        "```\n[in a fence](missing.md)\n```\n[web](https://example.org/x.md)\n",
        encoding="utf-8",
    )
    assert broken_links([page], root=tmp_path) == [
        "page.md:1: missing.md (no such file)",
        "page.md:1: other.md#no-such (no heading #no-such in other.md)",
    ]
