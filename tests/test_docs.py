"""Documentation stays true: the README's registry table and every entry's docstring."""

import inspect
import re
from pathlib import Path

import pytest

from segkit.cli import _registries, registry_markdown

ROOT = Path(__file__).parents[1]


def test_readme_registry_table_is_up_to_date():
    text = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- registry-table:start.*?-->\n(.*?)\n<!-- registry-table:end -->", text, re.S)
    assert match, "README.md lost its registry-table markers"
    assert match.group(1).strip() == registry_markdown().strip(), (
        "README's table is out of date: regenerate it with `segkit list --markdown`"
    )


ENTRIES = [(family, name) for family, reg in _registries().items() for name in reg.names()]


@pytest.mark.parametrize("family, name", ENTRIES, ids=[f"{f}:{n}" for f, n in ENTRIES])
def test_every_registered_entry_has_a_docstring_saying_what_it_is(family, name):
    obj = _registries()[family].get(name)
    doc = inspect.getdoc(obj) or ""
    first = doc.strip().splitlines()[0] if doc.strip() else ""
    assert len(first.split()) >= 3, f"{family} {name!r} ({obj}) needs a docstring whose first line says what it is"
