"""What every Python test shares: where the binary and the sources are, running mixtape with a
timeout, counted checks, skipping, temporary directories and snapshots of a directory.

    import harness
    from harness import check
    T = harness.tempdir("mytest")                 # removed at exit
    rc, out = harness.run(["eval", "--checkpoint", ck, "--data", d], 60)
    rc, out = harness.mt("eval", "--checkpoint", ck)   # the same, 120 s
    check(rc == 2 and "labels" in out, "eval names the bad key", out)
    harness.expect("bad key refused", ["eval", ...], 2, "labels", "[3]")
    harness.finish()                              # exit 1 if a check failed, else 0

Environment (ctest sets all three): MIXTAPE, the binary (default <source>/build/mixtape);
MIXTAPE_SRC, the source tree (default: the parent of tests/); MIXTAPE_PYTHON, the python
with torch / h5py / numpy (default: this one). A test that cannot run here calls
harness.skip(reason) or harness.require(module, ...): one line "SKIP: reason", exit 77, which ctest
reports as skipped. A missing or non-executable binary is a failure, not a skip.
"""
import atexit
import hashlib
import importlib
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time

SRC = os.path.abspath(os.environ.get("MIXTAPE_SRC") or os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
MIXTAPE = os.path.abspath(os.environ.get("MIXTAPE") or os.path.join(SRC, "build", "mixtape"))
BUILD = os.path.dirname(MIXTAPE)  # the C test executables sit beside the binary
PYTHON = os.environ.get("MIXTAPE_PYTHON") or sys.executable
if not os.access(MIXTAPE, os.X_OK):
    print(f"FAIL: MIXTAPE={MIXTAPE} is not an executable (set MIXTAPE to the mixtape binary)")
    sys.exit(1)

# Every child gets this environment plus the call's env=: two threads unless the test says
# otherwise, and threads that sleep while they wait (the test machines' cores are shared).
BASE_ENV = dict(os.environ)
BASE_ENV.setdefault("OMP_NUM_THREADS", "2")
BASE_ENV.setdefault("OMP_WAIT_POLICY", "passive")


def skip(reason):
    """This test cannot run here: one line naming why, exit 77 (ctest: skipped)."""
    print("SKIP: " + reason)
    sys.exit(77)


def require(*modules):
    """Import the named modules, or skip naming the one that is missing. Returns them."""
    got = []
    for name in modules:
        try:
            got.append(importlib.import_module(name))
        except ImportError as e:
            skip(f"needs the python module {name} ({e})")
    return got[0] if len(got) == 1 else tuple(got)


# ---------------------------------------------------------------- checks

FAILS = []      # names of the failed checks
COUNT = [0]     # checks made
SKIPPED = []    # parts of a test that could not run here (see finish)


def check(cond, what, detail=""):
    """One assertion: prints "ok   what" or "FAIL what" (with the tail of detail), counts it,
    returns the condition. A description that is not a string is a call with swapped
    arguments: refused, so that it cannot pass unnoticed."""
    if not isinstance(what, str):
        raise TypeError(f"check(cond, what): what is {what!r}; the condition comes first, the description second")
    COUNT[0] += 1
    if cond:
        print("ok   " + what)
    else:
        FAILS.append(what)
        print("FAIL " + what + (("\n     " + str(detail)[-1500:].replace("\n", "\n     ")) if detail else ""))
    return bool(cond)


def part_skipped(reason):
    """A part of the test cannot run here; the rest goes on (finish exits 77 if nothing failed)."""
    print("skip " + reason)
    SKIPPED.append(reason)


def finish():
    """Summary line and exit: 1 if a check failed, 77 if a part was skipped, else 0."""
    if FAILS:
        print(f"{len(FAILS)} of {COUNT[0]} checks failed: " + "; ".join(FAILS)[:2000])
        sys.exit(1)
    if SKIPPED:
        print(f"all {COUNT[0]} checks passed; SKIP: " + "; ".join(SKIPPED))
        sys.exit(77)
    print(f"all {COUNT[0]} checks passed")
    sys.exit(0)


def die(msg):
    """Setup that must work did not: FAIL line, exit 1 (no point in going on)."""
    print("FAIL " + msg)
    sys.exit(1)


# ---------------------------------------------------------------- running mixtape

class Proc(tuple):
    """(rc, text) of a finished command, text = stdout + stderr; rc None on a timeout.
    Attributes: rc, out (stdout), err (stderr), text, secs, rss_mib (the child's peak RSS)."""

    def __new__(cls, rc, out, err, secs, rss_mib):
        p = super().__new__(cls, (rc, out + err))
        p.rc, p.out, p.err, p.text, p.secs, p.rss_mib = rc, out, err, out + err, secs, rss_mib
        return p


def sanitizer_report(text):
    return "Sanitizer" in text or "runtime error:" in text


def run(args, timeout=120, env=None, cwd=None, preexec=None, exe=None):
    """Runs [exe or MIXTAPE] + args in its own process group, killed (with its children) after
    timeout s. env: variables added to BASE_ENV. An ASan/UBSan report in the output is a failed
    check. Returns a Proc: `rc, out = run(...)` or p.rc, p.out, p.err, p.rss_mib."""
    argv = [exe or MIXTAPE] + [str(a) for a in args]
    e = dict(BASE_ENV, **(env or {}))
    t0 = time.time()
    killed = []
    with tempfile.TemporaryFile() as fo, tempfile.TemporaryFile() as fe:
        p = subprocess.Popen(argv, stdout=fo, stderr=fe, stdin=subprocess.DEVNULL, env=e, cwd=cwd,
                             preexec_fn=preexec, start_new_session=True)

        def kill():
            killed.append(1)
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

        timer = threading.Timer(timeout, kill)
        timer.start()
        _, status, ru = os.wait4(p.pid, 0)
        timer.cancel()
        p.returncode = os.waitstatus_to_exitcode(status)
        fo.seek(0)
        fe.seek(0)
        out, err = (f.read().decode("utf-8", "replace") for f in (fo, fe))
    if killed:
        err += f"\n[timed out after {timeout} s]"
    r = Proc(None if killed else p.returncode, out, err, time.time() - t0, ru.ru_maxrss / 1024)
    if sanitizer_report(r.text):
        check(False, f"sanitizer report from mixtape {' '.join(argv[1:3])}", r.text)
    return r


def mt(*args, timeout=120):
    """run() with the arguments spelled inline: rc, out = mt("eval", "--checkpoint", ck)."""
    return run(args, timeout)


def eval_figures(out):
    """(top-1 %, loss) from `mixtape eval`'s summary line, or None."""
    m = re.search(r"top-1 ([0-9.]+)%.*loss ([0-9.]+)", out)
    return (float(m.group(1)), float(m.group(2))) if m else None


def must(args, timeout=300, **kw):
    """A setup step that must succeed: on another exit code, FAIL with its output, exit 1."""
    r = run(args, timeout, **kw)
    if r.rc != 0:
        die(f"(setup) {' '.join(map(str, args))} -> exit {r.rc}\n{r.text[-3000:]}")
    return r


def expect(name, args, code, *needles, absent=(), timeout=120, **kw):
    """Runs args; one check: exit code == code, every needle in the output, no `absent` string."""
    r = run(args, timeout, **kw)
    ok = r.rc == code and all(n in r.text for n in needles) and not any(a in r.text for a in absent)
    check(ok, f"{name}: exit {r.rc} (want {code}), names {needles}", r.text)
    return r


# ---------------------------------------------------------------- files

def tempdir(name):
    """A fresh directory under $TMPDIR, removed when the test exits."""
    d = tempfile.mkdtemp(prefix=f"mixtape_{name}.")
    atexit.register(shutil.rmtree, d, True)
    return d


def snapshot(root, ignore=()):
    """{path: what} for everything under root: a regular file's sha256 (a file over 64 MiB,
    which only a failing run leaves, by size and mtime), "dir", a link's target, or the file
    type of a FIFO / socket / device (never opened). Names in ignore are left out."""
    snap = {}
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            if n in ignore:
                continue
            p = os.path.join(d, n)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                snap[p] = ("link", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                snap[p] = "dir"
            elif not stat.S_ISREG(st.st_mode):
                snap[p] = ("special", stat.S_IFMT(st.st_mode))
            elif st.st_size > 64 << 20:
                snap[p] = (st.st_size, st.st_mtime_ns)
            else:
                snap[p] = sha256(p)
    return snap


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def temporaries(root, recursive=True):
    """Paths of temporary files (".tmp" in the name) under root: what an atomic write leaves
    behind when it fails to clean up."""
    if not os.path.isdir(root):
        return []
    if not recursive:
        return sorted(os.path.join(root, n) for n in os.listdir(root) if ".tmp" in n)
    return sorted(os.path.join(d, n) for d, _, fs in os.walk(root) for n in fs if ".tmp" in n)
