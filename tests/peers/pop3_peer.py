#!/usr/bin/env python3
"""A small POP3 server (RFC 1939, with CAPA and UIDL) over a directory of .eml files,
for Mailstead's mailbox-polling tests. Loopback only.

usage: pop3_peer.py --dir DIR --user U --password P [--host IP] [--port N] [--log FILE]

Prints "READY <port>". Messages marked with DELE are removed from DIR only at QUIT, as
RFC 1939 says; a session that ends without QUIT deletes nothing. Every command is
appended to --log as a JSON line (passwords are not logged).
"""
import argparse
import asyncio
import json
import os


def log(args, **event):
    if args.log:
        with open(args.log, "a") as f:
            f.write(json.dumps(event) + "\n")


async def session(reader, writer, args):
    async def send(line):
        writer.write(line.encode() + b"\r\n")
        await writer.drain()

    user_ok = False
    authed = False
    files = []
    deleted = set()
    await send("+OK pop3_peer ready")
    while True:
        raw = await reader.readline()
        if not raw:
            break
        line = raw.decode(errors="replace").strip()
        verb, _, arg = line.partition(" ")
        verb = verb.upper()
        log(args, command=verb, arg=arg if verb != "PASS" else "***")
        if verb == "CAPA":
            await send("+OK capabilities follow")
            for c in ["USER", "UIDL"]:
                await send(c)
            await send(".")
        elif verb == "USER":
            user_ok = arg == args.user
            await send("+OK" if user_ok else "-ERR unknown user")
        elif verb == "PASS":
            if user_ok and arg == args.password:
                authed = True
                files = sorted(f for f in os.listdir(args.dir) if f.endswith(".eml"))
                await send(f"+OK {len(files)} messages")
            else:
                await send("-ERR invalid login")
        elif not authed and verb != "QUIT":
            await send("-ERR log in first")
        elif verb == "STAT":
            live = [f for i, f in enumerate(files, 1) if i not in deleted]
            size = sum(os.path.getsize(os.path.join(args.dir, f)) for f in live)
            await send(f"+OK {len(live)} {size}")
        elif verb == "LIST":
            await send("+OK scan listing follows")
            for i, f in enumerate(files, 1):
                if i not in deleted:
                    await send(f"{i} {os.path.getsize(os.path.join(args.dir, f))}")
            await send(".")
        elif verb == "UIDL":
            await send("+OK")
            for i, f in enumerate(files, 1):
                if i not in deleted:
                    await send(f"{i} {f}")
            await send(".")
        elif verb == "RETR":
            n = int(arg) if arg.isdigit() else 0
            if n < 1 or n > len(files) or n in deleted:
                await send("-ERR no such message")
                continue
            with open(os.path.join(args.dir, files[n - 1]), "rb") as f:
                data = f.read()
            await send("+OK message follows")
            for l in data.replace(b"\r\n", b"\n").split(b"\n"):
                if l.startswith(b"."):
                    l = b"." + l
                writer.write(l + b"\r\n")
            await send(".")
        elif verb == "DELE":
            n = int(arg) if arg.isdigit() else 0
            if n < 1 or n > len(files) or n in deleted:
                await send("-ERR no such message")
            else:
                deleted.add(n)
                await send("+OK marked")
        elif verb == "NOOP":
            await send("+OK")
        elif verb == "RSET":
            deleted.clear()
            await send("+OK")
        elif verb == "QUIT":
            for n in deleted:
                os.remove(os.path.join(args.dir, files[n - 1]))
            await send("+OK bye")
            break
        else:
            await send("-ERR unknown command")
    writer.close()


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dir", required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--log")
    args = p.parse_args()
    server = await asyncio.start_server(lambda r, w: session(r, w, args), args.host, args.port)
    port = server.sockets[0].getsockname()[1]
    print(f"READY {port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
