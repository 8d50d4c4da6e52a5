#!/usr/bin/env python3
"""A script of queue-core/lua as the service loads it: the parts of common.lua it uses (directly
or through another part), in their order there, then the file. The same cut as
`queue_core::scripts::with_prelude` (e2e `wire::the_benches_build_each_script_as_the_service_does`
holds the two alike), for the benches, which load the scripts into a redis-server of their own.
    lua_script.py LUA_DIR FILE    # prints the script
A checkout whose scripts.rs has no `with_prelude` loaded the whole of common.lua: pass --whole.
"""
import os
import re
import sys


def parts(prelude):
    """(name, text) of each top-level definition: from a line `local NAME` or `local function
    NAME` to the next one; what comes before the first (comments) is left out."""
    starts = [m.start() + 1 for m in re.finditer(r"\nlocal ", prelude)]
    out = []
    for i, start in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else len(prelude)
        part = prelude[start:end]
        rest = part[len("local "):]
        if rest.startswith("function "):
            rest = rest[len("function "):]
        out.append((re.match(r"[A-Za-z0-9_]*", rest).group(0), part))
    return out


def mentions(text, name):
    return re.search(r"(?<![A-Za-z0-9_])" + re.escape(name) + r"(?![A-Za-z0-9_])", text) is not None


def comment_start(line):
    """Where a `--` comment starts in `line`, outside a quoted string; None when it has none."""
    quote, i = None, 0
    while i < len(line):
        c = line[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = None
        elif c in "'\"":
            quote = c
        elif line.startswith("--", i):
            return i
        i += 1
    return None


def code_of(text):
    """`text` without its comments (names in comments bring nothing in)."""
    out = []
    for line in text.split("\n"):
        at = comment_start(line)
        out.append(line if at is None else line[:at])
    return "\n".join(out)


def with_prelude(common, body):
    defs = parts(common)
    codes = [code_of(part) for _, part in defs]
    wanted = [False] * len(defs)
    uses = [code_of(body)]
    while uses:
        text = uses.pop()
        for i, (name, _) in enumerate(defs):
            if not wanted[i] and mentions(text, name):
                wanted[i] = True
                uses.append(codes[i])
    return "".join(part for (_, part), w in zip(defs, wanted) if w) + "\n" + body


def script(lua_dir, name, whole=False):
    common = open(os.path.join(lua_dir, "common.lua")).read()
    body = open(os.path.join(lua_dir, name)).read()
    return common + "\n" + body if whole else with_prelude(common, body)


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--whole"]
    sys.stdout.write(script(args[0], args[1], whole="--whole" in sys.argv))
