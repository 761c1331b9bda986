"""check_cell on hostile and random input: it never raises, never hangs, and its cost
grows linearly with the size of the cell."""

from __future__ import annotations

import time
import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from IPython.core.inputtransformer2 import TransformerManager

from sandbox_kernel.policy import PolicySettings, Verdict, check_cell
from sandbox_kernel.policy.check import _transform

STANDARD = PolicySettings("standard")
CLASSROOM = PolicySettings("classroom")

# Characters that matter to Python, IPython and the checker, plus a few hostile ones.
_ALPHABET = st.one_of(
    st.sampled_from(list("abcdefosxy_01234567 \t\n()[]{}.,:;=+-*/%!?'\"#\\$@<>|&^~`")),
    st.sampled_from(["\x00", "\ud800", "\udfff", "\u202e", "\uff45", "\r", "\x0c", "é", "\u03b1"]),
    st.characters(),
)
_FRAGMENTS = st.sampled_from(
    [
        "import os\n",
        "os.system('x')",
        "!ls",
        "%%bash\n",
        "%%capture\n",
        "%time ",
        "exec(",
        "eval(",
        "getattr(",
        "__import__(",
        "'sys' + 'tem'",
        "__class__",
        ".__subclasses__()",
        "lambda: ",
        "def f():\n    ",
        "    ",
        "\n",
        "(",
        ")",
        "[",
        "]",
        "{",
        "}",
        "'",
        '"""',
        "f'{",
        "}'",
        "b'\\x00'",
        "\\\n",
        "?",
        "= !",
        "= %",
        "base64.b64decode(",
        "\uff45\uff56\uff41\uff4c",  # "eval" in fullwidth letters
        "'{0.__globals__}'.format(x)",
        "%%writefile x.py\n",
        "get_ipython().",
        "run_cell(",
    ]
)


def _assert_verdict(verdict: Verdict) -> None:
    assert isinstance(verdict, Verdict)
    assert verdict.allowed == (not any(f.action == "deny" for f in verdict.findings))
    if verdict.syntax_error:
        assert verdict.findings == []
        assert verdict.allowed
    for finding in verdict.findings:
        assert finding.line >= 1
        assert finding.col >= 1
        assert finding.rule_id.startswith("SKP")
    ename, _, traceback = verdict.as_error()
    assert ename == "SandboxPolicyError"
    assert all(isinstance(t, str) for t in traceback)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=_ALPHABET, max_size=300))
def test_random_text_never_raises(source: str) -> None:
    _assert_verdict(check_cell(source, CLASSROOM))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_FRAGMENTS, max_size=30).map("".join))
def test_random_code_fragments_never_raise(source: str) -> None:
    _assert_verdict(check_cell(source, STANDARD))
    _assert_verdict(check_cell(source, CLASSROOM))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.one_of(_FRAGMENTS, st.text(alphabet=_ALPHABET, max_size=5)), max_size=25).map(
        "".join
    )
)
def test_fast_transform_matches_ipython(source: str) -> None:
    """The checker skips IPython's token pass only when it cannot change the cell.

    When IPython's own transformation fails (it has bugs on some broken input), the
    executor runs nothing, so whatever the checker concludes is safe.
    """
    try:
        with warnings.catch_warnings():
            # IPython warns about odd line ends (\x85 ...); the executor does not fail on it
            warnings.simplefilter("ignore")
            expected = TransformerManager().transform_cell(source)
    except Exception:
        return
    assert _transform(source) == expected


PATHOLOGICAL = {
    "open parens": "(" * 10_000,
    "nested parens": "(" * 90 + "1" + ")" * 90,
    "open brackets": "[" * 10_000,
    "unary chain": "-" * 200_000 + "1",
    "long addition": "1" + " + 1" * 100_000,
    "string concatenation": "'a'" + " + 'a'" * 5_000,
    "huge literal": 'x = "' + "a" * 5_000_000 + '"',
    "huge bytes": "x = b'" + "\\x00" * 500_000 + "'",
    "long line": "x = [" + ",".join(str(i) for i in range(200_000)) + "]",
    "null bytes": "x = 1\x00\x00\nimport os",
    "surrogates": "x = '\ud800'\nimport ctypes\n\udfff = 2",
    "deep indentation": "".join("    " * i + f"if x{i}:\n" for i in range(95))
    + "    " * 95
    + "pass",
    "lambda chain": "f = " + "lambda: " * 3_000 + "1",
    "nested dict": '{"a": ' * 500 + "1" + "}" * 500,
    "nested f-strings": 'f"{' * 60 + "x" + '}"' * 60,
    "repetition bomb": "'a' * 10 ** 10\n'%999999999s' % 'x'\n2 ** 10 ** 10",
    "zlib bomb": "import zlib\nexec(zlib.decompress(b'x\\x9c' + b'\\x00' * 100))",
    "exec nesting": "exec('" + "exec(\\'" * 4 + "1" + "\\')" * 4 + "')",
    "magic nesting": "%%capture\n" * 200 + "x = 1",
    "many escapes": "\n".join(["!ls"] * 600),
    "many names": "\n".join("v = v + 'x'" for _ in range(3_000)),
    "many bindings": "\n".join(f"x = {i}\ny = x + {i}" for i in range(3_000)),
    "bidi everywhere": "\u202e" * 10_000,
    "crlf and form feeds": "import os\r\nos.system('x')\r\n\x0c!ls\r\n" * 500,
    "only newlines": "\n" * 100_000,
    "only spaces": " " * 1_000_000,
    "unterminated string": "'''" + "x\n" * 10_000,
    "ten thousand lines": "\n".join(f"a{i} = b{i}.c({i}) + '{i}'" for i in range(10_000)),
    "ten thousand magics": "\n".join(f"%time x{i} = 1" for i in range(10_000)),
}


@pytest.mark.parametrize("name", sorted(PATHOLOGICAL))
def test_pathological_source(name: str) -> None:
    source = PATHOLOGICAL[name]
    start = time.perf_counter()
    verdict = check_cell(source, CLASSROOM)
    elapsed = time.perf_counter() - start
    _assert_verdict(verdict)
    # generous: the machine may be slow and loaded; a hang would be minutes
    assert elapsed < 60, f"{name}: {elapsed:.1f}s"


def test_surrogates_and_nul_are_syntax_errors_not_crashes() -> None:
    assert check_cell("x = '\ud800'", CLASSROOM).syntax_error
    assert check_cell("x = 1\x00", CLASSROOM).syntax_error


def _cell(lines: int) -> str:
    templates = [
        "x{i} = np.sum(data[{i}:{i} + 10]) * {i}",
        "name{i} = 'col' + str({i})",
        "df{i} = df.assign(c{i}=lambda d: d.a + {i})",
        "if x{i} > {i}:\n    print('big', x{i})",
        "result{i} = getattr(obj, 'attr{i}', None)",
        "label{i} = f'value {{x{i}:>8}}'",
        "items{i} = [k for k in range({i}) if k % 3]",
        "import math as m{i}",
    ]
    out: list[str] = []
    i = 0
    while len(out) < lines:
        out.extend(templates[i % len(templates)].format(i=i).split("\n"))
        i += 1
    return "\n".join(out[:lines])


def test_a_large_ordinary_cell_is_allowed() -> None:
    # How its cost grows with its length is measured in bench/responsiveness.py (growth).
    assert check_cell(_cell(8_000), STANDARD).allowed


def test_checker_failure_fails_closed(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from sandbox_kernel.policy import analyzer

    def broken(self: object) -> None:
        raise KeyError("bug in a rule")

    monkeypatch.setattr(analyzer.Analyzer, "run", broken)
    verdict = check_cell("x = 1", STANDARD)
    assert not verdict.allowed
    assert [f.rule_id for f in verdict.findings] == ["SKP122"]
    assert "policy_check_failed" in caplog.text
    # permissive records it and lets the cell run
    assert check_cell("x = 1", PolicySettings("permissive")).allowed


def test_non_string_source_is_not_a_crash() -> None:
    _assert_verdict(check_cell(b"import ctypes", CLASSROOM))  # type: ignore[arg-type]
