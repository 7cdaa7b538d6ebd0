#!/usr/bin/env python3
"""Prints the 6-digit code of the newest .eml in MAIL_DIR addressed to EMAIL, as a person would
find it: the MIME message is parsed (email stdlib), its text/plain part read, and the line that is
exactly six digits taken. Exits 1 when there is no such mail yet.

usage: mail_code.py MAIL_DIR EMAIL [SKIP]   (SKIP: how many older mails to that address to skip)
"""
import email.policy
import pathlib
import sys
from email.parser import BytesParser


def codes(mail_dir: pathlib.Path, address: str):
    found = []
    for path in mail_dir.glob("*.eml"):
        try:
            message = BytesParser(policy=email.policy.default).parsebytes(path.read_bytes())
            to = [a.addr_spec.lower() for a in message["to"].addresses]
            text = message.get_body(preferencelist=("plain",)).get_content()
        except Exception:  # a file still being written
            continue
        if address.lower() not in to:
            continue
        code = next((l.strip() for l in text.splitlines()
                     if len(l.strip()) == 6 and l.strip().isdigit()), None)
        if code:
            found.append((path.stat().st_mtime_ns, code))
    return [c for _, c in sorted(found)]


def main() -> int:
    mail_dir, address = pathlib.Path(sys.argv[1]), sys.argv[2]
    skip = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    found = codes(mail_dir, address)
    if len(found) <= skip:
        return 1
    print(found[skip])
    return 0


if __name__ == "__main__":
    sys.exit(main())
