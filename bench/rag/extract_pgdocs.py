#!/usr/bin/env python3
"""The retrieval benchmark's corpus: one document per page of the PostgreSQL 15 HTML manual
(Debian postgresql-doc-15), text extracted, with one query per page and that page as its answer.

The query is the page's one-line description where it has one (a reference page's purpose,
"CREATE INDEX — define a new index" -> "define a new index"), else its title without the
section number ("9.7. Pattern Matching" -> "Pattern Matching"). Both are removed from the
page's indexed text, as are the navigation header and footer (they name other pages), so a
query never finds its page by its own words verbatim; a page whose query repeats another's
is indexed but not asked for.

    extract_pgdocs.py HTML_DIR OUT.jsonl     (one JSON object per line: doc_id, title, query, text)
"""
import html.parser
import json
import os
import re
import sys

SKIP_CLASSES = {"navheader", "navfooter", "refnamediv", "toc"}


class Page(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.title = ""
        self.purpose = ""
        self.text = []
        self._in_title = False
        self._skip_depth = 0  # >0 inside a skipped element
        self._stack = []      # tag names, with whether each started a skip
        self._in_refname = 0
        self._heading_skip = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        classes = set((attrs.get("class") or "").split())
        skip = bool(classes & SKIP_CLASSES) or tag in ("script", "style")
        # The page's own title heading (h1/h2 class="title" inside the first titlepage).
        if tag in ("h1", "h2", "h3") and "title" in classes and not self._heading_skip:
            skip = True
            self._heading_skip = True
        if "refnamediv" in classes:
            self._in_refname += 1
        if tag == "title":
            self._in_title = True
        if tag in ("br",):
            return
        self._stack.append((tag, skip, "refnamediv" in classes))
        if skip:
            self._skip_depth += 1
        if tag in ("p", "div", "li", "tr", "h1", "h2", "h3", "h4", "pre", "dt", "dd", "table"):
            self.text.append("\n\n")

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False
        while self._stack:
            name, skip, refname = self._stack.pop()
            if skip:
                self._skip_depth -= 1
            if refname:
                self._in_refname -= 1
            if name == tag:
                break

    def handle_data(self, data):
        if self._in_title:
            self.title += data
            return
        if self._in_refname > 0:
            self.purpose += data
            return
        if self._skip_depth == 0:
            self.text.append(data)


def clean(text):
    text = re.sub(r"[ \t\r\f\v]+", " ", text)
    text = re.sub(r" *\n *", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


def main():
    html_dir, out_path = sys.argv[1], sys.argv[2]
    pages = []
    for name in sorted(os.listdir(html_dir)):
        if not name.endswith(".html") or name in ("index.html", "bookindex.html"):
            continue
        with open(os.path.join(html_dir, name), encoding="utf-8", errors="replace") as f:
            page = Page()
            page.feed(f.read())
        title = " ".join(page.title.split())
        title = re.sub(r"^(Chapter|Appendix|Part) [0-9A-Z]+\.\s*", "", title)  # "Chapter 6. Data Manipulation"
        title = re.sub(r"^([A-Z]\.)?[0-9.]+\s+", "", title)                      # "9.7. Pattern Matching"
        purpose = " ".join(page.purpose.split())
        query = purpose.split("—", 1)[1].strip() if "—" in purpose else title
        text = clean("".join(page.text))
        if len(text) < 200 or not query:
            continue
        pages.append({"doc_id": name[:-5], "title": title, "query": query, "text": text})
    seen = {}
    for p in pages:
        seen[p["query"].lower()] = seen.get(p["query"].lower(), 0) + 1
    with open(out_path, "w", encoding="utf-8") as out:
        for p in pages:
            if seen[p["query"].lower()] > 1:
                p["query"] = ""  # ambiguous: indexed, not asked
            out.write(json.dumps(p, ensure_ascii=False) + "\n")
    asked = sum(1 for p in pages if p["query"])
    print(f"{len(pages)} pages, {asked} queries, {sum(len(p['text']) for p in pages)} bytes of text", file=sys.stderr)


if __name__ == "__main__":
    main()
