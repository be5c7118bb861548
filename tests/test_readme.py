"""The README's own chaos test runs as written: it is the first test a newcomer copies,
so it is extracted from README.md and run in an inner pytest session on real peers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

README = Path(__file__).resolve().parent.parent / "README.md"


def _example() -> str:
    text = README.read_text("utf-8")
    section = text[text.index("## Writing your own chaos test") :]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None, "README: no python block under 'Writing your own chaos test'"
    return match.group(1)


def test_readme_example_is_a_test() -> None:
    code = _example()
    compile(code, "README.md", "exec")
    assert "chaos_check().assert_valid()" in code


@pytest.mark.integration
def test_readme_chaos_test_passes_on_real_peers(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_readme_example=_example())
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
