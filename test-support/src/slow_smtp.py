"""aiosmtpd's Maildir handler, answering every message only after a delay: a slow relay.

    python -m aiosmtpd -n -l 127.0.0.1:PORT -c slow_smtp.SlowMailbox MAILDIR SECONDS
"""

import asyncio

from aiosmtpd.handlers import Mailbox


class SlowMailbox(Mailbox):
    def __init__(self, mail_dir, delay):
        super().__init__(mail_dir)
        self.delay = float(delay)

    async def handle_DATA(self, server, session, envelope):
        await asyncio.sleep(self.delay)
        return await super().handle_DATA(server, session, envelope)

    @classmethod
    def from_cli(cls, parser, *args):
        if len(args) != 2:
            parser.error("SlowMailbox needs a Maildir and a delay in seconds")
        return cls(args[0], args[1])
