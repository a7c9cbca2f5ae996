"""The dependency audit: pip-audit against the pinned set (constraints.txt).

Fails (exit 1) on any known vulnerability. pip-audit itself passes when the vulnerability
service cannot be reached, reporting each package as "not found" and exiting 0; that would be a
silent green, so this says plainly that nothing was audited. With L104_AUDIT_STRICT=1 an audit
that could not run fails too (for a machine that should reach the service).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys


def main() -> int:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip_audit",
            "--requirement",
            "constraints.txt",
            "--no-deps",
            "--disable-pip",
            "--progress-spinner",
            "off",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        report = json.loads(run.stdout)
    except json.JSONDecodeError:
        print(f"audit: pip-audit failed (exit {run.returncode}): {run.stderr.strip()[-500:]}")
        return 1 if os.environ.get("L104_AUDIT_STRICT") == "1" else 0
    deps = report["dependencies"]
    found = [(d["name"], d["version"], v["id"]) for d in deps for v in d.get("vulns", [])]
    skipped = [d for d in deps if d.get("skip_reason")]
    for name, version, vuln in found:
        print(f"audit: {name} {version}: {vuln}")
    if found:
        print(f"audit: {len(found)} known vulnerabilities in the pinned set")
        return 1
    if len(skipped) == len(deps):
        print(
            f"audit: NOT RUN: the vulnerability service could not be reached "
            f"({len(deps)} pinned packages unaudited)"
        )
        return 1 if os.environ.get("L104_AUDIT_STRICT") == "1" else 0
    print(f"audit: {len(deps) - len(skipped)} packages audited, no known vulnerability")
    return 0


if __name__ == "__main__":
    sys.exit(main())
