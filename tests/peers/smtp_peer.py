#!/usr/bin/env python3
"""Scripted SMTP servers for Mailstead's delivery tests. Loopback only.

usage: smtp_peer.py --mode MODE [--dump-dir DIR] [--log FILE] [--host IP] [--port N]
                    [--tls-cert PEM --tls-key PEM [--implicit-tls]] [--auth USER:PASS]
                    [--plain-auth-ok] [--smtputf8]

Listens on --host (127.0.0.1; any loopback address) on --port (a free port by
default) and prints "READY <port>" on stdout.

Modes built on aiosmtpd (a real SMTP server implementation):
  accept        accept everything; dump each message to DIR/N.eml plus DIR/N.json
                (envelope, MAIL/RCPT parameters, TLS, AUTH)
  reject-some   RCPT by local part: bad* -> 550 5.1.1, policy* -> 550 5.7.1,
                later* -> 450 4.2.0, others accepted (and dumped)
  too-many      at most 2 recipients per transaction, then 452 4.5.3
  ratelimit     every RCPT -> 421 4.7.0 [TS03] ... and the connection is closed
  defer-mail    MAIL -> 451 4.3.0
  reject-data   final reply 554 5.7.1 after the data
  drop-data     354, read a little of the data, then close the connection
  stall-data    354, read the data, never answer
  tls-broken    offer STARTTLS, answer 220, then send junk instead of a handshake
                and close; plain-text sessions are accepted as in 'accept'
Raw asyncio modes (misbehaviour aiosmtpd cannot produce):
  stall-greeting  accept the connection, never greet
  garbage         greet, then answer EHLO with an HTTP error page
  long-line       greet, then send an endless line without CRLF
"""
import argparse
import asyncio
import itertools
import json
import os
import ssl
import sys
import warnings

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

COUNTER = itertools.count(1)


def log_event(args, **event):
    if args.log:
        with open(args.log, "a") as f:
            f.write(json.dumps(event) + "\n")


class Handler:
    def __init__(self, args):
        self.args = args
        self.mode = args.mode

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        log_event(self.args, event="ehlo", helo=hostname, tls=session.ssl is not None)
        return responses

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.mode == "defer-mail":
            return "451 4.3.0 Temporary local problem - please try later"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@")[0].lower()
        if self.mode == "ratelimit":
            asyncio.get_running_loop().call_later(0.05, server.transport.close)
            return ("421 4.7.0 [TS03] Messages from 127.0.0.1 temporarily deferred "
                    "due to unexpected volume - try again later")
        if self.mode == "reject-some":
            if local.startswith("bad"):
                return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
            if local.startswith("policy"):
                return "550 5.7.1 Message rejected due to local policy"
            if local.startswith("later"):
                return f"450 4.2.0 <{address}>: Recipient address rejected: Greylisted"
        if self.mode == "too-many" and len(envelope.rcpt_tos) >= 2:
            return "452 4.5.3 Too many recipients"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.mode == "reject-data":
            return "554 5.7.1 Message content rejected"
        if self.mode == "stall-data":
            log_event(self.args, event="stalled", rcpts=envelope.rcpt_tos)
            await asyncio.sleep(3600)
        n = next(COUNTER)
        if self.args.dump_dir:
            base = os.path.join(self.args.dump_dir, f"{os.getpid()}-{n}")
            with open(base + ".eml", "wb") as f:
                f.write(envelope.original_content)
            with open(base + ".json", "w") as f:
                json.dump({
                    "mail_from": envelope.mail_from,
                    "rcpt_tos": envelope.rcpt_tos,
                    "mail_options": envelope.mail_options,
                    "tls": session.ssl is not None,
                    "auth": (session.auth_data.login.decode()
                             if isinstance(session.auth_data, LoginPassword) else None),
                }, f)
        log_event(self.args, event="data", rcpts=envelope.rcpt_tos)
        return f"250 2.0.0 Ok: queued as {n}"


class PeerSMTP(SMTP):
    mode = "accept"
    _peer_args = None

    async def smtp_DATA(self, arg):
        if self.mode == "drop-data" and self.envelope.rcpt_tos:
            await self.push("354 End data with <CR><LF>.<CR><LF>")
            try:
                await asyncio.wait_for(self._reader.read(512), 5)
            except Exception:  # noqa: BLE001 - we are about to hang up anyway
                pass
            self.transport.close()
            return
        return await super().smtp_DATA(arg)

    async def smtp_STARTTLS(self, arg):
        log_event(self._peer_args, event="starttls")
        if self.mode == "tls-broken":
            await self.push("220 2.0.0 Ready to start TLS")
            await asyncio.sleep(0.3)  # let the client start its handshake
            self.transport.write(b"\x15\x03\x03\x00\x02\x02\x50this is not TLS\r\n")
            self.transport.close()
            return
        return await super().smtp_STARTTLS(arg)


async def raw_peer(mode, reader, writer):
    try:
        if mode == "stall-greeting":
            await reader.read()  # until the client gives up
            return
        writer.write(b"220 peer.test ESMTP\r\n")
        await writer.drain()
        await reader.readline()
        if mode == "garbage":
            writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/html\r\n\r\n<html>no</html>\r\n")
            await writer.drain()
            await asyncio.sleep(1)
        elif mode == "long-line":
            for _ in range(64):
                writer.write(b"250-" + b"x" * 1024)
                await writer.drain()
            await reader.read()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


def main():
    warnings.filterwarnings("ignore")
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", default="accept")
    ap.add_argument("--dump-dir")
    ap.add_argument("--log")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--auth")
    ap.add_argument("--plain-auth-ok", action="store_true")
    ap.add_argument("--smtputf8", action="store_true")
    ap.add_argument("--implicit-tls", action="store_true",
                    help="TLS from the first byte (SMTPS) with --tls-cert/--tls-key")
    args = ap.parse_args()

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)

    if args.mode in ("stall-greeting", "garbage", "long-line"):
        server = loop.run_until_complete(asyncio.start_server(
            lambda r, w: raw_peer(args.mode, r, w), args.host, args.port))
    else:
        tls_context = None
        server_ssl = None
        if args.tls_cert and args.implicit_tls:
            server_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            server_ssl.load_cert_chain(args.tls_cert, args.tls_key)
        elif args.tls_cert:
            tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            tls_context.load_cert_chain(args.tls_cert, args.tls_key)
        elif args.mode == "tls-broken":
            # Only needed so that STARTTLS is advertised; never used.
            tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        authenticator = None
        if args.auth:
            user, password = args.auth.split(":", 1)

            def authenticator(server, session, envelope, mechanism, auth_data):
                ok = (isinstance(auth_data, LoginPassword)
                      and auth_data.login.decode() == user
                      and auth_data.password.decode() == password)
                log_event(args, event="auth", mechanism=mechanism, ok=ok)
                return AuthResult(success=ok, auth_data=auth_data if ok else None)

        handler = Handler(args)

        def factory():
            smtp = PeerSMTP(
                handler,
                hostname="peer.test",
                tls_context=tls_context,
                enable_SMTPUTF8=args.smtputf8,
                data_size_limit=10 * 1024 * 1024,
                authenticator=authenticator,
                auth_required=bool(args.auth),
                auth_require_tls=not args.plain_auth_ok,
                timeout=30,
            )
            smtp.mode = args.mode
            smtp._peer_args = args
            return smtp

        server = loop.run_until_complete(
            loop.create_server(factory, args.host, args.port, ssl=server_ssl))

    port = server.sockets[0].getsockname()[1]
    print(f"READY {port}", flush=True)
    try:
        loop.run_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
