#!/usr/bin/env python3
"""A real BACnet/IP client (bacpypes3 from PyPI, fetched and verified by
scripts/fetch.py) against headcount, over loopback.

Usage: bacnet_client.py SERVER_PORT CLIENT_PORT DEVICE_INSTANCE SPACES LINES COV_SECONDS

Sends a directed Who-Is and times the I-Am; reads the Device's name, its
object list's length (index 0) and the whole list; reads every space's and line's objects with one
ReadPropertyMultiple (timed); tries a write (must be refused); sends a
Who-Is from a plain UDP socket, once as an Original-Unicast-NPDU (answered)
and once inside a Forwarded-NPDU that names that socket as its origin
while coming from another (a forgery: never answered); subscribes
to the change of value of the second space's occupancy (Analog Value 1001)
and prints each notification with its arrival time (Unix seconds) for
COV_SECONDS. One JSON object per line on stdout: each notification as soon
as it arrives ({"cov": value, "at": t}), then the rest at the end.
"""
import asyncio
import json
import socket
import sys
import time

from bacpypes3.apdu import ErrorRejectAbortNack
from bacpypes3.app import Application
from bacpypes3.argparse import SimpleArgumentParser
from bacpypes3.pdu import Address
from bacpypes3.primitivedata import ObjectIdentifier, Real


# bacpypes3 raises a BACnet Error (not an Exception subclass) for a refusal.
REFUSALS = (Exception, ErrorRejectAbortNack)


# NPDU version 1 without control bits, then an unconfirmed Who-Is (no limits).
WHO_IS = bytes([0x01, 0x00, 0x10, 0x08])


def bvlc(function, body):
    """A BACnet/IP datagram: type 0x81, the function, the whole length."""
    return bytes([0x81, function]) + (len(body) + 4).to_bytes(2, "big") + body


def answered(origin, sender, datagram, server_port):
    """Whether `origin` receives anything within a second of `sender`
    sending `datagram` to the server."""
    while True:  # forget anything earlier
        try:
            origin.recv(2048)
        except BlockingIOError:
            break
    sender.sendto(datagram, ("127.0.0.1", server_port))
    origin.settimeout(1.0)
    try:
        origin.recv(2048)
        return True
    except socket.timeout:
        return False
    finally:
        origin.setblocking(False)


def forged_who_is(server_port):
    origin = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    forger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    origin.bind(("127.0.0.1", 0))
    forger.bind(("127.0.0.1", 0))
    origin.setblocking(False)
    host, port = origin.getsockname()
    claimed = socket.inet_aton(host) + port.to_bytes(2, "big")
    return {
        "original_answered": answered(origin, origin, bvlc(0x0A, WHO_IS), server_port),
        "forwarded_answered": answered(origin, forger, bvlc(0x04, claimed + WHO_IS), server_port),
    }


def emit(obj):
    print(json.dumps(obj), flush=True)


async def main():
    server_port, client_port, device, spaces, lines, cov_seconds = (int(a) for a in sys.argv[1:7])
    args = SimpleArgumentParser().parse_args(
        ["--address", f"127.0.0.1/8:{client_port}", "--instance", "999", "--name", "test-client"]
    )
    app = Application.from_args(args)
    server = Address(f"127.0.0.1:{server_port}")
    out = {}
    try:
        started = time.perf_counter()
        i_ams = await app.who_is(device, device, server, timeout=3)
        out["who_is_ms"] = round((time.perf_counter() - started) * 1000, 2)
        out["i_am"] = [str(i.iAmDeviceIdentifier) for i in i_ams]

        device_id = ObjectIdentifier(f"device,{device}")
        out["device_name"] = str(await app.read_property(server, device_id, "object-name"))
        out["object_count"] = int(await app.read_property(server, device_id, "object-list", 0))
        whole = await app.read_property(server, device_id, "object-list")
        out["object_list"] = [str(o) for o in whole]

        parameters = []
        for i in range(spaces):
            parameters += [f"analog-value,{1000 + i}", ["object-name", "present-value", "status-flags"]]
            parameters += [f"analog-value,{2000 + i}", ["present-value"]]
            parameters += [f"binary-value,{1000 + i}", ["present-value"]]
        for i in range(lines):
            parameters += [f"analog-value,{4000 + i}", ["object-name", "present-value"]]
            parameters += [f"analog-value,{5000 + i}", ["present-value"]]
        started = time.perf_counter()
        values = await app.read_property_multiple(server, parameters)
        out["rpm_ms"] = round((time.perf_counter() - started) * 1000, 2)
        out["rpm"] = [
            [str(objid), str(prop), value if isinstance(value, (int, float)) else str(value)]
            for objid, prop, _index, value in values
        ]
        try:
            await app.write_property(server, ObjectIdentifier("analog-value,1000"), "present-value", Real(5.0))
            out["write"] = "accepted"
        except REFUSALS as e:  # the refusal arrives as an error
            out["write"] = f"refused: {e}"
        try:
            await app.read_property(server, ObjectIdentifier("analog-value,999"), "present-value")
            out["unknown_object"] = "answered"
        except REFUSALS as e:
            out["unknown_object"] = f"refused: {e}"

        out["forged"] = forged_who_is(server_port)

        emit({"ready": True})
        deadline = time.monotonic() + cov_seconds
        async with app.change_of_value(
            server, ObjectIdentifier("analog-value,1001"), 7, issue_confirmed_notifications=False, lifetime=120
        ) as subscription:
            while (remaining := deadline - time.monotonic()) > 0:
                try:
                    prop, value = await asyncio.wait_for(subscription.get_value(), remaining)
                except asyncio.TimeoutError:
                    break
                if str(prop) == "present-value":
                    emit({"cov": float(value), "at": time.time()})
    finally:
        app.close()
    emit(out)


asyncio.run(main())
