"""schemathesis against gateway/openapi.yaml and the running gateway: every operation, in every phase (the
document's examples, coverage of each schema's edge cases valid and invalid, random fuzzing, and stateful sequences
along links it infers from the responses), with every check schemathesis has (no 5xx, status codes, content types,
headers and bodies as documented, invalid data refused, valid data accepted, authentication enforced, deleted
objects gone, no response slower than 10 s). The document is the contract, so this is also the test that it
describes what the gateway serves. e2e/fuzz/schemathesis.toml lists the few rules a schema cannot state.

FUZZ_MAX_TIME (seconds, default 90) bounds the run; hack/fuzz.sh sets it for the short and the full form.
FUZZ_SEED replays a run. FUZZ_PHASES (e.g. `coverage`) runs only the named phases, to sweep one of them whole. FUZZ_ARGS adds schemathesis
arguments (e.g. `--include-operation-id createCredential --output-sanitize false` to see one operation's bodies whole).
"""

import os
import shlex
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
# Errors that are the API's, not schemathesis's own (an internal error of its generator is reported, not failed).
NETWORK = ("network", "connection", "timed out", "timeout", "reset by peer", "remote end closed", "refused")


def title(text):
    """The first non-empty line of a schemathesis error, lower-cased."""
    return next((line.strip().lower() for line in (text or "").splitlines() if line.strip()), "")


def test_schemathesis_finds_nothing(gateway, tmp_path):
    max_time = os.environ.get("FUZZ_MAX_TIME", "90")
    args = [
        str(Path(sys.executable).parent / "schemathesis"), "--config-file", str(HERE / "schemathesis.toml"),
        "run", str(ROOT / "gateway" / "openapi.yaml"), "--url", gateway.url,
        "--header", f"Authorization: Bearer {gateway.key}",
        "--max-time", max_time, "--max-response-time", "10", "--request-timeout", "15", "--no-shrink",
        "--report", "junit", "--report-junit-path", str(tmp_path / "junit.xml"),
    ]
    if seed := os.environ.get("FUZZ_SEED"):
        args += ["--seed", seed]
    if phases := os.environ.get("FUZZ_PHASES"):
        args += ["--phases", phases]
    args += shlex.split(os.environ.get("FUZZ_ARGS", ""))
    run = subprocess.run(args, cwd=tmp_path, text=True, capture_output=True, timeout=int(max_time) + 600)
    print(run.stdout[-30000:])
    print(run.stderr[-5000:], file=sys.stderr)
    report = ET.parse(tmp_path / "junit.xml").getroot()
    cases = report.findall(".//testcase")
    failures = [(c.get("name"), f.text) for c in cases for f in c.findall("failure")]
    errors = [(c.get("name"), e.text or e.get("message", "")) for c in cases for e in c.findall("error")]
    # Judged from each error's title line only: schemathesis's own internal errors ("Runtime Error", e.g. a
    # Hypothesis failure while drawing) carry whole source dumps whose words would otherwise match.
    network = [(name, text) for name, text in errors if any(word in title(text) for word in NETWORK)]
    assert len(cases) >= 39, f"schemathesis tested only {len(cases)} operations (see above)"
    assert not failures, f"{len(failures)} operations failed checks (see above): {[n for n, _ in failures]}"
    assert not network, f"requests failed at the network level: {network}"
    assert gateway.alive()
