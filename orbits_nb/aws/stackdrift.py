"""CloudFormation's own drift detection (DetectStackDrift), where the endpoint has it.

Real AWS compares every resource of a stack with its template; an emulator may answer
"not implemented" (moto's server does). That answer is remembered per endpoint, once
per process, and :class:`~orbits_nb.aws.Stack` then observes the resource types of
:mod:`orbits_nb.aws.observed` directly, as it does for resources CloudFormation could
not check (``NOT_CHECKED``).
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from orbits_nb._optional import needs
from orbits_nb.aws.session import AWSError, aws_errors

#: Endpoints (URLs) that answered DetectStackDrift with "not implemented".
_UNSUPPORTED: set[str] = set()
_LOCK = threading.Lock()
#: Error codes by which an endpoint says it lacks an operation.
NOT_IMPLEMENTED = frozenset({"NotImplemented", "NotImplementedError", "InvalidAction",
                             "UnsupportedOperation", "UnknownOperationException"})
#: Resource drift statuses CloudFormation decided (the others are observed directly).
CHECKED = frozenset({"IN_SYNC", "MODIFIED", "DELETED"})
#: Seconds a detection may take before the stack is observed directly instead.
DETECTION_TIMEOUT = 300.0


def supported(endpoint: str) -> bool:
    """Whether ``endpoint`` may have DetectStackDrift (not yet known otherwise)."""
    return endpoint not in _UNSUPPORTED


def forget() -> None:
    """Forget which endpoints lack DetectStackDrift (for tests that swap endpoints)."""
    with _LOCK:
        _UNSUPPORTED.clear()


def detect(cf: Any, stack_id: str, *, poll: float) -> dict[str, dict[str, Any]] | None:
    """``{logical id: StackResourceDrift}`` of a fresh detection, or None where the
    endpoint has no DetectStackDrift or the detection did not finish."""
    endpoint = str(cf.meta.endpoint_url)
    if not supported(endpoint):
        return None
    try:
        with aws_errors("DetectStackDrift"):
            detection = cf.detect_stack_drift(StackName=stack_id)["StackDriftDetectionId"]
    except Exception as err:
        if not _not_implemented(err):
            raise
        with _LOCK:
            _UNSUPPORTED.add(endpoint)
        return None
    if not _finished(cf, detection, poll):
        return None
    drifts: dict[str, dict[str, Any]] = {}
    with aws_errors("DescribeStackResourceDrifts"):
        token: str | None = None
        while True:
            page = cf.describe_stack_resource_drifts(
                StackName=stack_id, **({"NextToken": token} if token else {}))
            for drift in page.get("StackResourceDrifts", []):
                drifts[str(drift["LogicalResourceId"])] = drift
            token = page.get("NextToken")
            if not token:
                return drifts


def _finished(cf: Any, detection: str, poll: float) -> bool:
    deadline = time.monotonic() + DETECTION_TIMEOUT
    while True:
        with aws_errors("DescribeStackDriftDetectionStatus"):
            status = cf.describe_stack_drift_detection_status(
                StackDriftDetectionId=detection)
        # DETECTION_FAILED still reports the resources it could check.
        if status.get("DetectionStatus") != "DETECTION_IN_PROGRESS":
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(poll)


def _not_implemented(err: BaseException) -> bool:
    with needs("aws", "drift checks of CloudFormation stacks"):
        from botocore.exceptions import ClientError
        from botocore.parsers import ResponseParserError

    if isinstance(err, ResponseParserError):  # an answer not in the API's language
        return True
    if isinstance(err, AWSError):
        code, status = str(err.fields.get("code")), int(err.fields.get("status") or 0)
        return code in NOT_IMPLEMENTED or status == 501
    if isinstance(err, ClientError):
        error = err.response.get("Error", {})
        status = int(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
        return (str(error.get("Code")) in NOT_IMPLEMENTED or status == 501
                or "not implemented" in str(error.get("Message", "")).lower())
    return False


def actual_properties(drift: dict[str, Any]) -> dict[str, Any] | None:
    """The resource's properties as CloudFormation found them (None: deleted)."""
    if drift.get("StackResourceDriftStatus") == "DELETED":
        return None
    text = drift.get("ActualProperties") or drift.get("ExpectedProperties") or "{}"
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
