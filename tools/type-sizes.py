#!/usr/bin/env python3
"""Lines per top-level type in src/, summed over a type's partial files (blank and comment lines included).

Usage: tools/type-sizes.py [--over N] [ROOT...]   (default ROOT: src; N: 0, print all, largest first)
A type over N lines is marked 'reason' when its main file's top (the text before the declaration) or its XML
documentation says why it is large ("Why this type is large"), else 'NO REASON'. Exit code 1 if any over N has no reason.
"""
import os
import re
import sys

DECL = re.compile(r'^(?:\[.*\]\s*)?(?:(?:public|internal|private|protected|file|static|sealed|abstract|partial|readonly|ref|unsafe|new)\s+)*'
                  r'(?:class|struct|interface|enum|record(?:\s+(?:class|struct))?)\s+([A-Za-z_][A-Za-z0-9_]*)')
NS = re.compile(r'^namespace\s+([A-Za-z0-9_.]+)\s*;')
REASON = 'Why this type is large'


def scan(path, sizes, reasons):
    with open(path, encoding='utf-8-sig') as f:
        lines = f.read().split('\n')
    if lines and lines[-1] == '':
        lines.pop()
    ns = ''
    current = None
    start = 0
    header_start = 0
    for i, line in enumerate(lines):
        m = NS.match(line)
        if m:
            ns = m.group(1)
            header_start = i + 1
            continue
        m = DECL.match(line)  # top level only: file-scoped namespaces put top-level types at column 0
        if m:
            if current is not None:
                sizes[current] = sizes.get(current, 0) + (i - start)
            current = f'{ns}.{m.group(1)}' if ns else m.group(1)
            # Lines before the declaration (its documentation) count towards the type.
            j = i
            while j > header_start and (lines[j - 1].startswith('///') or lines[j - 1].startswith('[')):
                j -= 1
            if REASON in '\n'.join(lines[header_start:i]):
                reasons.add(current)
            start = j
            header_start = i + 1
    if current is not None:
        sizes[current] = sizes.get(current, 0) + (len(lines) - start)


def main(argv):
    over = 0
    roots = []
    it = iter(argv)
    for a in it:
        if a == '--over':
            over = int(next(it))
        else:
            roots.append(a)
    roots = roots or ['src']
    sizes, reasons = {}, set()
    for root in roots:
        for d, dirs, files in os.walk(root):
            dirs[:] = [x for x in dirs if x not in ('bin', 'obj')]
            for name in sorted(files):
                if name.endswith('.cs'):
                    scan(os.path.join(d, name), sizes, reasons)
    missing = 0
    for t, n in sorted(sizes.items(), key=lambda kv: -kv[1]):
        if n <= over:
            continue
        mark = ''
        if over:
            mark = 'reason' if t in reasons else 'NO REASON'
            missing += t not in reasons
        print(f'{n:6d}  {t}  {mark}'.rstrip())
    return 1 if missing else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
