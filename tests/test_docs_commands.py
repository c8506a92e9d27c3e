"""The documentation's command lines and flags match the code.

1. Every command line in a code block of README.md and docs/usage.md (a line starting with
   `mixtape `, `\\` continuations joined) parses: run with --dry-run (flags checked, nothing
   run, no file opened) it exits 0; exit 2 is a usage error in the docs.
2. Every `--flag` the docs name in backticks (usage.md, optim.md, augment.md, README.md;
   scripts' own flags excepted) is declared by some command (`--list-flags`).
3. Every default the docs give in brackets (`--epochs [300]`) is the default the code uses."""
import json
import os
import re
import shlex
import tempfile

import harness
from harness import check

SRC = harness.SRC
COMMANDS = ["models", "init", "train", "eval", "predict", "grads", "bench", "bench-data", "shards", "inspect", "reparam"]


def code_lines(path):
    """Command lines of indented or fenced code blocks."""
    out, fenced, lines = [], False, open(path).read().split("\n")
    i = 0
    while i < len(lines):
        l = lines[i]
        if l.strip().startswith("```"):
            fenced = not fenced
        elif (fenced or l.startswith("    ")) and l.strip().startswith("mixtape "):
            cmd = l.strip()
            while cmd.endswith("\\") and i + 1 < len(lines):
                i += 1
                cmd = cmd[:-1] + " " + lines[i].strip()
            out.append((i + 1, cmd))
        i += 1
    return out


def flags_of(cmd):
    p = harness.run([cmd, "--list-flags"], 60)
    if p.rc != 0:
        harness.die(f"{cmd} --list-flags -> exit {p.rc}: {p.err}")
    return {f["name"]: f for f in map(json.loads, p.out.splitlines())}


def main():
    declared = {c: flags_of(c) for c in COMMANDS}
    every = set().union(*[set(d) | {f["alias"] for f in d.values() if f["alias"]} for d in declared.values()])
    every |= {"--help", "--list-flags", "--dry-run", "--version", "--config"}

    # 1. command lines parse
    n = 0
    with tempfile.TemporaryDirectory() as T:
        for doc in ("README.md", "docs/usage.md"):
            for line, cmd in code_lines(os.path.join(SRC, doc)):
                cmd = re.sub(r"\s+#.*$", "", cmd)
                if "..." in cmd or "\u2026" in cmd:
                    continue  # an elided example, not a full command line
                argv = [t.strip("[]") for t in shlex.split(cmd)[1:]]  # `[--no-params]`: an optional flag
                p = harness.run(argv + ["--dry-run"], 60, cwd=T)
                check(p.rc == 0, "%s:%d parses: %s (%s %s)" % (doc, line, cmd[:90], p.rc, p.err.strip()[:200]))
                n += 1
    check(n >= 15, "%d documented command lines checked" % n)

    # 2. flags named in the docs exist
    for doc in ("README.md", "docs/usage.md", "docs/optim.md", "docs/augment.md"):
        missing = set()
        for para in re.split(r"\n\s*\n", open(os.path.join(SRC, doc)).read()):
            if "scripts/" in para:
                continue  # the scripts' own flags
            for span in re.findall(r"`([^`]*)`", para):
                for f in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", span):
                    if f not in every:
                        missing.add(f)
        check(not missing, "%s names only declared flags: unknown %s" % (doc, sorted(missing)))

    # 3. bracketed defaults (`--epochs [300]`) in each command's section of usage.md
    text = open(os.path.join(SRC, "docs/usage.md")).read()
    seen = 0
    for sec in re.split(r"\n## ", text)[1:]:
        name = sec.split("\n", 1)[0].split()[0]
        if name not in declared:
            continue
        fl = declared[name]
        for flag, val in re.findall(r"(--[a-z][a-z0-9-]*|-b)\s+\[([^\]-][^\]]*)\]", sec):
            f = fl.get(flag) or next((x for x in fl.values() if x["alias"] == flag), None)
            want = val.split(":")[0].strip()
            d = f and f["default"]
            try:
                same = d is not None and float(d) == float(want)
            except ValueError:
                same = d == want
            check(same, "usage.md %s: %s [%s] is the code's default (%s)" % (name, flag, val, d))
            seen += 1
    check(seen >= 20, "%d bracketed defaults checked" % seen)
    harness.finish()


if __name__ == "__main__":
    main()
