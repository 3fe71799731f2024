#!/usr/bin/env python3
"""Parse delivered messages with Python's email package and verify DKIM with dkimpy.

usage: check_eml.py [--crlf-dir DIR] [--record NAME=TXT ...] FILE.eml ...

Each file is normalised to CRLF line ends (smtp-sink dumps use LF), optionally
written to --crlf-dir under the same name (for ../shared/tools/dkim_verify.py),
parsed with email.policy.default and, when records are given, every
DKIM-Signature is verified with dkimpy, looking keys up by
"selector._domainkey.domain". Prints one JSON object per file.
"""
import argparse
import email
import email.policy
import json
import os
import re
import sys


def to_crlf(data: bytes) -> bytes:
    return re.sub(rb"\r?\n", b"\r\n", data)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--crlf-dir")
    ap.add_argument("--record", action="append", default=[])
    ap.add_argument("files", nargs="+")
    a = ap.parse_args()
    records = {}
    for r in a.record:
        name, value = r.split("=", 1)
        records[name.lower().rstrip(".")] = value

    dkim = None
    if records:
        import dkim as dkim_mod  # dkimpy
        dkim = dkim_mod

    def dnsfunc(name, timeout=5):
        n = (name.decode() if isinstance(name, bytes) else name).lower().rstrip(".")
        v = records.get(n)
        return v.encode() if v else None

    for path in a.files:
        raw = to_crlf(open(path, "rb").read())
        if a.crlf_dir:
            with open(os.path.join(a.crlf_dir, os.path.basename(path)), "wb") as f:
                f.write(raw)
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        out = {
            "file": os.path.basename(path),
            "from": str(msg["From"]),
            "to": str(msg["To"]),
            "subject": str(msg["Subject"]),
            "message_id": str(msg["Message-ID"]),
            "list_unsubscribe": str(msg["List-Unsubscribe"]) if msg["List-Unsubscribe"] else None,
            "content_type": msg.get_content_type(),
            "defects": [type(d).__name__ for d in msg.defects],
            "dkim_signatures": len(msg.get_all("DKIM-Signature") or []),
        }
        html = msg.get_body(preferencelist=("html",))
        text = msg.get_body(preferencelist=("plain",))
        out["html"] = html.get_content() if html is not None else None
        out["text"] = text.get_content() if text is not None else None
        if dkim is not None:
            d = dkim.DKIM(raw)
            results = []
            for i in range(out["dkim_signatures"]):
                try:
                    results.append(bool(d.verify(idx=i, dnsfunc=dnsfunc)))
                except Exception as e:  # noqa: BLE001 - report as failure
                    results.append(False)
                    out.setdefault("dkim_errors", []).append(str(e))
            out["dkim"] = results
        print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
