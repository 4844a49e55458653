#!/usr/bin/env python3
"""A real Modbus TCP client (pymodbus, from Debian) against headcount.

Usage: modbus_client.py PORT

Reads the map's header, every space, zone, line and camera block (input
registers, function 04), the second space again as holding registers
(function 03), then tries what must be refused: a write, an address
outside the map, a read of 126 registers. Prints one JSON object.
"""
import json
import sys
import time

from pymodbus.client import ModbusTcpClient

port = int(sys.argv[1])
client = ModbusTcpClient("127.0.0.1", port=port, timeout=5)
if not client.connect():
    sys.exit(f"cannot connect to 127.0.0.1:{port}")


def registers(response):
    if response.isError():
        return {"exception": getattr(response, "exception_code", None)}
    return response.registers


started = time.perf_counter()
header = registers(client.read_input_registers(0, 10, slave=1))
out = {"header": header}
if isinstance(header, list):
    _, spaces, zones, lines, cameras = header[:5]
    out["spaces"] = [registers(client.read_input_registers(1000 + 10 * i, 10, slave=1)) for i in range(spaces)]
    out["zones"] = [registers(client.read_input_registers(3000 + 10 * i, 10, slave=1)) for i in range(zones)]
    out["lines"] = [registers(client.read_input_registers(5000 + 10 * i, 10, slave=1)) for i in range(lines)]
    out["cameras"] = [registers(client.read_input_registers(7000 + 10 * i, 10, slave=1)) for i in range(cameras)]
out["read_all_ms"] = round((time.perf_counter() - started) * 1000, 2)
# The second space's block: occupancy, capacity, over capacity.
out["holding"] = registers(client.read_holding_registers(1010, 3, slave=1))
out["write"] = registers(client.write_register(1011, 5, slave=1))
out["outside"] = registers(client.read_input_registers(9000, 1, slave=1))
out["too_many"] = registers(client.read_input_registers(1000, 126, slave=1))
out["after"] = registers(client.read_input_registers(1010, 3, slave=1))
client.close()
print(json.dumps(out))
