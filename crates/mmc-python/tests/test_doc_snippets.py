"""Every README and docs snippet marked runnable runs as written.

A fenced block whose info string carries the word ``runnable``
(```` ```sh runnable ````, ```` ```python runnable ````, ```` ```c runnable ````,
```` ```cpp runnable ````) is extracted from README.md, crates/mmc-python/README.md
and docs/*.md and run here exactly as the reader would paste it:

- in a private network and PID namespace (``unshare``), so the snippet's
  default ports (MetaService 127.0.0.1:5000, HTTP :8000) are its own and every
  process it leaves behind ends with the namespace;
- with a single-node cluster started first by ``mmc up`` on its defaults (the
  README's "run" command), unless the info string also says ``no-cluster``;
- with ``mmc`` on PATH (the binary under test), the virtualenv's Python, a
  fresh temporary directory as the working directory, and ``$MMC_REPO`` naming
  the repository root;
- ``sh`` blocks under ``bash -e`` (a failing command fails the snippet); ``c`` / ``cpp`` blocks compiled
  against include/ and the workspace's libmemcache (as the C API docs link it)
  and run.

A snippet passes when it exits 0. Namespaces need root (CI runs as root);
elsewhere these tests skip, or fail when CI=true.
"""

import os
import re
import sys
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import ROOT, mmc_bin

MARK = "runnable"
FENCE = re.compile(r"^(\s*)```(.*)$")


def doc_files():
    return [ROOT / "README.md", ROOT / "crates" / "mmc-python" / "README.md"] + sorted(
        (ROOT / "docs").glob("*.md")
    )


def extract(path: Path):
    """(line, language, flags, code) of each runnable block of one file."""
    out = []
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, info = m.group(1), m.group(2).split()
        start = i + 1
        j = start
        while j < len(lines) and not lines[j].strip().startswith("```"):
            j += 1
        if info and MARK in info[1:]:
            body = [l[len(indent):] if l.startswith(indent) else l.lstrip() for l in lines[start:j]]
            out.append((start, info[0], set(info[1:]), "\n".join(body) + "\n"))
        i = j + 1
    return out


SNIPPETS = [(p, *s) for p in doc_files() for s in extract(p)]


def test_the_readmes_keep_runnable_snippets():
    """The marker cannot silently disappear from the first pages a user reads."""
    by_file = {}
    for p, *_ in SNIPPETS:
        by_file[p.name if p.parent == ROOT else str(p.relative_to(ROOT))] = True
    assert "README.md" in by_file, "README.md has no runnable snippet"
    assert "crates/mmc-python/README.md" in by_file
    langs = {lang for _, _, lang, _, _ in SNIPPETS}
    assert {"sh", "python"} <= langs, langs


def namespaces_usable() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    r = subprocess.run(["unshare", "--net", "--pid", "--fork", "--mount-proc", "true"], capture_output=True)
    return r.returncode == 0


def need_namespaces():
    if not namespaces_usable():
        msg = "snippets run in network/PID namespaces: needs root, unshare and ip"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)


def capi_libdir() -> Path:
    """The directory holding libmemcache.so of this workspace, built (or
    brought up to date: a stale library speaks an older protocol) first."""
    subprocess.run(["cargo", "build", "-p", "mmc-capi"], cwd=ROOT, check=True)
    lib = Path(mmc_bin()).parent / "libmemcache.so"
    assert lib.exists(), f"cargo build -p mmc-capi left no {lib}"
    return lib.parent


DRIVER = r"""
set -uo pipefail
ip link set lo up
cd "$WORK"
if [ "$CLUSTER" = 1 ]; then
  mmc up > up.log 2>&1 &
  UP=$!
  for _ in $(seq 1 600); do
    grep -q '^memcache up:' up.log && break
    kill -0 $UP 2>/dev/null || { echo "mmc up exited:"; cat up.log; exit 97; }
    sleep 0.05
  done
  grep -q '^memcache up:' up.log || { echo "mmc up never became ready:"; cat up.log; exit 98; }
fi
"$@"
rc=$?
if [ "$CLUSTER" = 1 ]; then
  kill -TERM $UP 2>/dev/null
  wait $UP
fi
exit $rc
"""


def command_for(lang: str, code: str, work: Path):
    if lang in ("sh", "bash", "shell"):
        (work / "snippet.sh").write_text(code)
        return ["bash", "-e", "snippet.sh"]
    if lang == "python":
        (work / "snippet.py").write_text(code)
        return ["python", "snippet.py"]
    if lang in ("c", "cpp"):
        src = work / ("snippet.c" if lang == "c" else "snippet.cpp")
        src.write_text(code)
        cc = ["gcc", "-std=c99"] if lang == "c" else ["g++", "-std=c++17"]
        libdir = capi_libdir()
        build = cc + [
            str(src),
            f"-I{ROOT / 'include'}",
            f"-L{libdir}",
            "-lmemcache",
            f"-Wl,-rpath,{libdir}",
            "-o",
            str(work / "snippet"),
        ]
        subprocess.run(build, check=True)
        return ["./snippet"]
    raise AssertionError(f"no runner for ```{lang} blocks")


@pytest.mark.parametrize(
    "path,line,lang,flags,code",
    SNIPPETS,
    ids=[f"{p.relative_to(ROOT)}:{line}" for p, line, *_ in SNIPPETS],
)
def test_snippet_runs_as_written(path, line, lang, flags, code):
    need_namespaces()
    work = Path(tempfile.mkdtemp(prefix="mmc-snippet-"))
    try:
        bindir = work / ".bin"
        bindir.mkdir()
        (bindir / "mmc").symlink_to(mmc_bin())
        env = dict(os.environ)
        env["PATH"] = f"{bindir}:{Path(sys.executable).parent}:{env.get('PATH', '')}"
        env["WORK"] = str(work)
        env["MMC_REPO"] = str(ROOT)
        env["CLUSTER"] = "0" if "no-cluster" in flags else "1"
        for k in ("MMC_LOCAL_CONFIG_PATH", "MMC_META_CONFIG_PATH", "MMC_TOKEN_FILE"):
            env.pop(k, None)
        cmd = command_for(lang, code, work)
        r = subprocess.run(
            ["unshare", "--net", "--pid", "--fork", "--mount-proc", "bash", "-c", DRIVER, "driver"] + cmd,
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert r.returncode == 0, (
            f"{path.relative_to(ROOT)}:{line} ```{lang} block exited {r.returncode}\n"
            f"--- snippet\n{code}--- stdout\n{r.stdout}--- stderr\n{r.stderr}"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
