"""Calls /api/method procedures the way Frappe clients send them, for a Rust test.

Reads a plan on stdin: {"base_url", "authorization", "calls": [{"style", "method", "args"}]} and
writes one {"status", "body"} per call on stdout (a JSON list). Styles:

- ``get``: ``frappeclient.get_api`` (GET, arguments in the query string);
- ``form``: ``frappeclient.post_api`` (POST, form-urlencoded body);
- ``frappe.call``: what ``frappe.call`` in the browser sends (a form with ``cmd``);
- ``multipart``: a multipart/form-data body of text fields.

Objects and lists are sent as JSON text, as both clients do; ``args`` may also be a list of
[key, value] pairs (to repeat a key).
"""

import json
import sys

import requests


def encode(value):
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return value


def main():
    plan = json.load(sys.stdin)
    session = requests.Session()
    session.headers["Authorization"] = plan["authorization"]
    results = []
    for call in plan["calls"]:
        # frappeclient's URL shape, trailing slash included.
        url = f"{plan['base_url']}/api/method/{call['method']}/"
        args = call.get("args", {})
        pairs = args if isinstance(args, list) else list(args.items())
        pairs = [(key, encode(value)) for key, value in pairs if value is not None]
        style = call["style"]
        if style == "get":
            response = session.get(url, params=pairs, timeout=30)
        elif style == "form":
            response = session.post(url, data=pairs, timeout=30)
        elif style == "frappe.call":
            response = session.post(
                url,
                data=[("cmd", call["method"])] + pairs,
                headers={"X-Requested-With": "XMLHttpRequest"},
                timeout=30,
            )
        elif style == "multipart":
            files = [(key, (None, str(value))) for key, value in pairs]
            response = session.post(url, files=files, timeout=30)
        else:
            raise SystemExit(f"unknown style {style}")
        try:
            body = response.json()
        except ValueError:
            body = response.text
        results.append({"status": response.status_code, "body": body})
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
