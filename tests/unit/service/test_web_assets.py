"""hone's page loads nothing from outside the package: every script, style and module it
names is a file of ``service/web``, and no file names another host to load from."""

from __future__ import annotations

import re

from service.web_page import WEB_DIR


def _files() -> dict[str, str]:
    return {path.name: path.read_text() for path in WEB_DIR.iterdir() if path.is_file()}  # type: ignore[attr-defined]


def test_every_file_the_page_loads_is_shipped_with_it() -> None:
    files = _files()
    index = files["index.html"]
    loaded = re.findall(r'(?:src|href)="web/([^"]+)"', index)
    assert {"app.js", "style.css"} <= set(loaded)
    for module, text in files.items():
        for target in re.findall(r'from "\./([^"]+)"', text):
            loaded.append(target)
            assert target in files, f"{module} imports ./{target}, which is not in service/web"
    assert set(loaded) <= set(files)


def test_no_file_loads_anything_from_another_host() -> None:
    for name, text in _files().items():
        assert not re.search(r'(?:src|href)="(?:https?:)?//', text), name
        assert not re.search(r'(?:import|from)\s*\(?\s*["\'](?:https?:)?//', text), name
        assert not re.search(r"@import|url\(\s*['\"]?(?:https?:)?//", text), name
        assert "fonts.googleapis" not in text, name
