"""schemathesis against gateway/openapi.yaml and the running gateway: every operation, examples, coverage (edge
cases of each schema, valid and invalid), fuzzing, and stateful sequences along the document's links, with every
check schemathesis has (no 5xx, status codes, content types, headers and bodies as documented, invalid data
refused, valid data accepted, authentication enforced, deleted objects gone). The document is the contract, so this
is also the test that it describes what the gateway serves.

FUZZ_MAX_TIME (seconds, default 90) bounds the run; hack/fuzz.sh sets it for the short and the full form.
"""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


def test_schemathesis_finds_nothing(gateway, tmp_path):
    max_time = os.environ.get("FUZZ_MAX_TIME", "90")
    args = [
        str(Path(sys.executable).parent / "schemathesis"), "--config-file", str(HERE / "schemathesis.toml"),
        "run", str(ROOT / "gateway" / "openapi.yaml"), "--url", gateway.url,
        "--header", f"Authorization: Bearer {gateway.key}",
        "--max-time", max_time, "--max-response-time", "10", "--request-timeout", "15",
        "--report", "junit", "--report-dir", str(tmp_path),
    ]
    if seed := os.environ.get("FUZZ_SEED"):
        args += ["--seed", seed]
    run = subprocess.run(args, cwd=tmp_path, text=True, capture_output=True, timeout=int(max_time) + 600)
    print(run.stdout[-20000:])
    print(run.stderr[-5000:], file=sys.stderr)
    assert run.returncode == 0, "schemathesis found failures (above)"
    assert gateway.alive()
