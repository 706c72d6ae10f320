"""Code versions in artifact keys: an upgrade that changes how something is computed reruns it.

Each stage's module holds a `CODE_VERSION` integer; whoever changes what that stage computes
(not merely how fast, or how it reports) bumps it. Keys fold the versions in with
`versioned`, which leaves a key untouched while every version is 1: run directories and
caches made before versions existed stay valid.
"""

from __future__ import annotations


def versioned(key: str, *versions: int) -> str:
    """`key` itself while all `versions` are 1, else `key` tagged with all of them in order."""
    if all(v == 1 for v in versions):
        return key
    return f"{key}-v{'.'.join(str(v) for v in versions)}"
