#!/usr/bin/python3
"""A Modbus slave for tests and benchmarks, on pymodbus (Debian's 3.0.0rc1).

    modbus_slave.py --rtu PATH [--units 1,2] [--size N] [--pace-baud BAUD]
    modbus_slave.py --pty [...]      a pty of its own, no socat in between: its path is in the ready line
    modbus_slave.py --tcp PORT [--units 1,2] [--size N]     (PORT 0: any free port)

Every unit has coils, discrete inputs, holding and input registers at
addresses 0..size-1 (zero_mode: address 0 is register 0); beyond that a
request gets exception 2 (illegal data address).

Control channel: one JSON object per line on stdin, one JSON answer per line
on stdout. The first line on stdout is {"ready": true, "port": N, "path": P}.

    {"cmd": "counts"}                          requests received, {"unit:fc": n}
    {"cmd": "reset"}                           counts back to zero
    {"cmd": "set", "unit": 1, "area": "holding", "address": 0, "values": [...]}
    {"cmd": "get", "unit": 1, "area": "coil", "address": 0, "count": 2}
    {"cmd": "dead", "unit": 2, "on": true}     the unit stops answering (or answers again)
    {"cmd": "delay", "unit": 1, "ms": 300}     answers of the unit leave this much later
    {"cmd": "corrupt", "count": 1}             the next answers carry a wrong CRC (RTU)

--pace-baud holds every answer until the time request, 3.5 characters of
silence and answer would take on the wire at that baud rate (11 bits a
character) has passed since the request arrived: a pty itself has no baud
rate.
"""
import argparse
import asyncio
import json
import logging
import os
import sys
import time
import tty

from pymodbus.datastore import ModbusSequentialDataBlock, ModbusServerContext, ModbusSlaveContext
from pymodbus.server.async_io import (
    ModbusConnectedRequestHandler,
    ModbusSerialServer,
    ModbusSingleRequestHandler,
    ModbusTcpServer,
)
from pymodbus.transaction import ModbusRtuFramer, ModbusSocketFramer

AREAS = {"coil": 1, "discrete": 2, "holding": 3, "input": 4}


class Behaviour:
    def __init__(self, pace_baud):
        self.counts = {}
        self.dead = set()
        self.delay_ms = {}
        self.corrupt = 0
        self.pace_baud = pace_baud


def handler_class(base, b, rtu):
    class Handler(base):
        def data_received(self, data):
            # when the request's bytes came in, before asyncio hands them to the framer
            self.request_at = time.monotonic()
            base.data_received(self, data)

        def execute(self, request, *addr):
            unit = request.unit_id
            key = f"{unit}:{request.function_code}"
            b.counts[key] = b.counts.get(key, 0) + 1
            if unit in b.dead:
                return
            delay = b.delay_ms.get(unit, 0)
            if delay > 0:
                asyncio.get_running_loop().call_later(delay / 1000, self._execute_now, request, addr)
            else:
                self._execute_now(request, addr)

        def _execute_now(self, request, addr):
            if self.running:
                base.execute(self, request, *addr)

        def send(self, message, *addr, **kwargs):
            if not message.should_respond:
                return
            packet = self.framer.buildPacket(message)
            if rtu and b.corrupt > 0:
                b.corrupt -= 1
                packet = packet[:-1] + bytes([packet[-1] ^ 0xFF])
            if b.pace_baud:
                # request (8 bytes for reads and single writes), the 3.5 characters of silence before
                # the answer, the answer; counted from the request's arrival: a slave that needs no
                # time of its own. The silence before the next request is the master's to keep.
                chars = 8 + 3.5 + len(packet)
                wait = self.request_at + chars * 11 / b.pace_baud - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
            self._send_(packet)

    return Handler


async def serve_own_pty(context, b, baud):
    """The handler on the master end of a new pty; the master opens the other end by its path."""
    master, slave = os.openpty()
    tty.setraw(slave)  # kept open: a pty whose other end nobody holds reads EIO between masters
    handler_base = handler_class(ModbusSingleRequestHandler, b, True)

    class PtyHandler(handler_base):
        def _send_(self, data):
            os.write(master, data)

    server = ModbusSerialServer(context, framer=ModbusRtuFramer, port=os.ttyname(slave), baudrate=baud)
    reading = os.fdopen(master, "rb", buffering=0, closefd=False)
    await asyncio.get_running_loop().connect_read_pipe(lambda: PtyHandler(server), reading)
    return os.ttyname(slave)


def make_context(units, size):
    slaves = {}
    for unit in units:
        slaves[unit] = ModbusSlaveContext(
            di=ModbusSequentialDataBlock(0, [0] * size),
            co=ModbusSequentialDataBlock(0, [0] * size),
            hr=ModbusSequentialDataBlock(0, [0] * size),
            ir=ModbusSequentialDataBlock(0, [0] * size),
            zero_mode=True,
        )
    return ModbusServerContext(slaves=slaves, single=False)


def command(line, context, b):
    msg = json.loads(line)
    cmd = msg.get("cmd")
    if cmd == "counts":
        return {"counts": dict(b.counts)}
    if cmd == "reset":
        b.counts.clear()
        return {"ok": True}
    if cmd == "set":
        values = [int(v) for v in msg["values"]]
        context[msg["unit"]].setValues(AREAS[msg["area"]], msg["address"], values)
        return {"ok": True}
    if cmd == "get":
        values = context[msg["unit"]].getValues(AREAS[msg["area"]], msg["address"], msg.get("count", 1))
        return {"values": [int(v) for v in values]}
    if cmd == "dead":
        (b.dead.add if msg.get("on", True) else b.dead.discard)(msg["unit"])
        return {"ok": True}
    if cmd == "delay":
        b.delay_ms[msg["unit"]] = msg["ms"]
        return {"ok": True}
    if cmd == "corrupt":
        b.corrupt = msg.get("count", 1)
        return {"ok": True}
    return {"error": f"unknown command {cmd}"}


def say(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def main():
    parser = argparse.ArgumentParser()
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--rtu")
    where.add_argument("--tcp", type=int)
    where.add_argument("--pty", action="store_true")
    parser.add_argument("--units", default="1")
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--baud", type=int, default=115200)
    parser.add_argument("--pace-baud", type=int, default=0)
    args = parser.parse_args()
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)

    units = [int(u) for u in args.units.split(",")]
    context = make_context(units, args.size)
    b = Behaviour(args.pace_baud)
    loop = asyncio.get_running_loop()
    if args.rtu:
        server = ModbusSerialServer(
            context, framer=ModbusRtuFramer, port=args.rtu, baudrate=args.baud,
            handler=handler_class(ModbusSingleRequestHandler, b, True),
        )
        await server.start()
        port, path = 0, args.rtu
    elif args.pty:
        path, port = await serve_own_pty(context, b, args.baud), 0
    else:
        server = ModbusTcpServer(
            context, framer=ModbusSocketFramer, address=("127.0.0.1", args.tcp),
            handler=handler_class(ModbusConnectedRequestHandler, b, False),
        )
        task = loop.create_task(server.serve_forever())
        await server.serving
        port, path = server.server.sockets[0].getsockname()[1], None
    say({"ready": True, "port": port, "path": path})

    # the control channel: stdin closed means the test is gone, so the peer goes too
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = await reader.readline()
        if not line:
            break
        if line.strip():
            try:
                say(command(line, context, b))
            except Exception as exc:  # a bad command is the test's mistake: say so, keep serving
                say({"error": str(exc)})


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
