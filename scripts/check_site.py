"""Check a built documentation site: no raw reST roles, no broken relative link or anchor, nothing loaded from a CDN.

``nox -s docs`` runs it on the site it builds: ``python scripts/check_site.py SITE_DIR``. Exit 1 lists every problem:

- a raw Sphinx role (``:class:`X` ``) left in a page: docstrings must use Markdown cross-references
  (``scripts/md_crossrefs.py`` converts them);
- a relative link or ``src`` whose file does not exist, or whose ``#anchor`` is no ``id`` of the target page;
  absolute paths (404.html links through ``site_url``) are checked below the site's path;
- a ``<script src>`` or stylesheet from another host: pages must render offline (mermaid is bundled).
"""

from __future__ import annotations

import argparse
import re
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|attr|data|exc|obj):(?:`|<code>)")


class Page(HTMLParser):
    """The ids, links and external resources of one HTML page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.links: list[str] = []
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Collect ``id``/``name`` anchors, ``href``/``src`` links, and resources loaded from another host."""
        values = {k: v or "" for k, v in attrs}
        for key in ("id", "name"):
            if key in values and (key == "id" or tag == "a"):
                self.ids.add(values[key])
        for key in ("href", "src"):
            if key in values:
                self.links.append(values[key])
        loads = (tag == "script" and "src" in values) or (tag == "link" and values.get("rel") == "stylesheet")
        url = values.get("src") or values.get("href") or ""
        if loads and urlsplit(url).scheme in ("http", "https") or url.startswith("//"):
            self.external.append(url)


def parse(path: Path) -> Page:
    """Parse one page."""
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def site_path(site: Path) -> str:
    """Return the URL path the site is served under (``/lcv/`` for ``site_url: https://x.github.io/lcv/``)."""
    sitemap = site / "sitemap.xml"
    locs = re.findall(r"<loc>([^<]+)</loc>", sitemap.read_text(encoding="utf-8")) if sitemap.exists() else []
    return min((urlsplit(loc).path for loc in locs), key=len, default="/")


def check(site: Path, base: str) -> list[str]:
    """Return every problem of the site at ``site``, served under the URL path ``base``."""
    pages = {p: parse(p) for p in sorted(site.rglob("*.html"))}
    problems: list[str] = []
    for path, page in pages.items():
        where = path.relative_to(site)
        text = path.read_text(encoding="utf-8")
        problems += [f"{where}: raw reST role {m.group(0)!r}" for m in ROLE.finditer(text)]
        problems += [f"{where}: loads {url} from another host" for url in page.external]
        for link in page.links:
            parts = urlsplit(link)
            if parts.scheme or link.startswith(("//", "mailto:", "data:", "javascript:")):
                continue
            if parts.path.startswith("/"):
                if not parts.path.startswith(base):
                    problems.append(f"{where}: {link} is outside the site's path {base}")
                    continue
                target = site / unquote(parts.path[len(base) :])
            else:
                target = (path.parent / unquote(parts.path)) if parts.path else path
            if target.is_dir() or not target.suffix:
                target = target / "index.html"
            if not target.exists():
                problems.append(f"{where}: broken link {link} (no {target.relative_to(site)})")
                continue
            anchor = unquote(parts.fragment)
            if anchor and target.suffix == ".html":
                ids = pages[target.resolve()].ids if target.resolve() in pages else parse(target).ids
                if anchor not in ids:
                    problems.append(f"{where}: broken anchor {link} (no id {anchor!r} in {target.relative_to(site)})")
    return problems


def main(argv: list[str] | None = None) -> int:
    """Check the site given on the command line; return 1 if it has any problem."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", type=Path, help="a site built with `mkdocs build`")
    parser.add_argument("--base", help="the URL path the site is served under (default: from sitemap.xml)")
    args = parser.parse_args(argv)
    site = args.site.resolve()
    problems = check(site, args.base or site_path(site))
    pages = sum(1 for _ in site.rglob("*.html"))
    if problems:
        print(f"{len(problems)} problem(s) in the {pages} pages of {site}:", file=sys.stderr)
        print("\n".join(f"  {p}" for p in problems), file=sys.stderr)
        return 1
    print(f"{pages} pages: no raw reST role, every relative link and anchor resolves, nothing from another host")
    return 0


if __name__ == "__main__":
    sys.exit(main())
