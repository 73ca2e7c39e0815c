"""Submit and follow Dartwing Core jobs from Python (a Frappe app or any service), through the
runtime's job API (``/api/method/dartwing.dartwing_core.api.jobs.*``, the Frappe job engine's
contract).

Where the runtime is and who calls it: ``configure(base_url=..., authorization=...)``, else
``DARTWING_URL`` and either ``DARTWING_AUTHORIZATION`` (a whole ``Authorization`` header value,
e.g. ``Bearer <JWT>``) or ``DARTWING_API_KEY`` + ``DARTWING_API_SECRET`` (``token key:secret``)
from the environment, else the Frappe site configuration keys ``dartwing_url``,
``dartwing_api_key`` and ``dartwing_api_secret``.

    from dartwing_core import jobs
    job = jobs.submit_job("pdf_generation", "ORG-2026-00001", {"template": "monthly_report"})
    done = jobs.wait_for(job["job_id"])
    print(done["status"], done["output_reference"])

A refusal raises ``DartwingJobError`` with the HTTP status, ``exc_type`` and message; a duplicate
submission raises ``DuplicateJob`` naming the existing job.
"""

import os
import time

import requests

PREFIX = "/api/method/dartwing.dartwing_core.api.jobs."
FINAL_STATUSES = ("Completed", "Dead Letter", "Canceled")

_settings = {}


class DartwingJobError(Exception):
    """The runtime refused a call."""

    def __init__(self, status, exc_type, message):
        super().__init__(f"{status} {exc_type}: {message}")
        self.status = status
        self.exc_type = exc_type
        self.message = message


class DuplicateJob(DartwingJobError):
    """The same job type with the same parameters was submitted within its dedup window."""

    def __init__(self, existing_job_id, status):
        super().__init__(409, "DuplicateError", f"duplicate of job {existing_job_id} ({status})")
        self.existing_job_id = existing_job_id
        self.existing_status = status


def configure(base_url=None, authorization=None, api_key=None, api_secret=None, timeout=30):
    """Sets where the runtime is and how to authenticate (see the module documentation)."""
    if base_url is not None:
        _settings["base_url"] = base_url.rstrip("/")
    if authorization is not None:
        _settings["authorization"] = authorization
    elif api_key is not None and api_secret is not None:
        _settings["authorization"] = f"token {api_key}:{api_secret}"
    _settings["timeout"] = timeout


def _site_conf(key):
    try:
        import frappe
    except ImportError:
        return None
    conf = getattr(frappe, "conf", None)
    return conf.get(key) if conf is not None else None


def _base_url():
    url = _settings.get("base_url") or os.environ.get("DARTWING_URL") or _site_conf("dartwing_url")
    if not url:
        raise DartwingJobError(0, "ConfigurationError", "set DARTWING_URL or call configure(base_url=...)")
    return url.rstrip("/")


def _authorization():
    if _settings.get("authorization"):
        return _settings["authorization"]
    if os.environ.get("DARTWING_AUTHORIZATION"):
        return os.environ["DARTWING_AUTHORIZATION"]
    key = os.environ.get("DARTWING_API_KEY") or _site_conf("dartwing_api_key")
    secret = os.environ.get("DARTWING_API_SECRET") or _site_conf("dartwing_api_secret")
    if key and secret:
        return f"token {key}:{secret}"
    raise DartwingJobError(0, "ConfigurationError", "set DARTWING_API_KEY and DARTWING_API_SECRET, or call configure()")


def _call(method, http_method="POST", **args):
    args = {key: value for key, value in args.items() if value is not None}
    url = _base_url() + PREFIX + method
    headers = {"Authorization": _authorization()}
    timeout = _settings.get("timeout", 30)
    if http_method == "GET":
        response = requests.get(url, params=args, headers=headers, timeout=timeout)
    else:
        response = requests.post(url, json=args, headers=headers, timeout=timeout)
    try:
        body = response.json()
    except ValueError:
        raise DartwingJobError(response.status_code, "InvalidResponse", response.text[:200]) from None
    if response.status_code == 409 and isinstance(body.get("message"), dict):
        duplicate = body["message"]
        raise DuplicateJob(duplicate.get("existing_job_id"), duplicate.get("status"))
    if response.status_code >= 400:
        raise DartwingJobError(response.status_code, body.get("exc_type"), body.get("message"))
    return body["message"]


def submit_job(job_type, organization, parameters=None, priority="Normal", depends_on=None):
    """Submits a job; returns ``{job_id, status, message}``."""
    return _call(
        "submit_job",
        job_type=job_type,
        organization=organization,
        parameters=parameters or {},
        priority=priority,
        depends_on=depends_on,
    )


def get_job_status(job_id):
    """A job's status, progress, times, retries, error and ``output_reference``."""
    return _call("get_job_status", "GET", job_id=job_id)


def list_jobs(organization=None, status=None, job_type=None, limit=20, offset=0):
    """``{jobs, total, limit, offset}``, newest first."""
    return _call(
        "list_jobs", "GET", organization=organization, status=status, job_type=job_type, limit=limit, offset=offset
    )


def cancel_job(job_id):
    """Cancels a pending, queued or running job."""
    return _call("cancel_job", job_id=job_id)


def retry_job(job_id):
    """Re-enqueues a job of the dead-letter queue (as a new job: ``job_id``, ``retry_of``)."""
    return _call("retry_job", job_id=job_id)


def get_job_metrics(organization=None):
    """Counts per status and priority, run times and failure rates."""
    return _call("get_job_metrics", "GET", organization=organization)


def wait_for(job_id, statuses=FINAL_STATUSES, timeout=60, interval=0.5):
    """Polls ``get_job_status`` until the job reaches one of ``statuses``; returns its status.
    Raises ``TimeoutError`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        status = get_job_status(job_id)
        if status["status"] in statuses:
            return status
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} is still {status['status']} after {timeout} s")
        time.sleep(interval)
