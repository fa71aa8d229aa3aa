# SPDX-License-Identifier: ISC
"""Attempts to reach the network."""

import socket


def tcp_connect(port):
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(b"LEAKED\n")
    return {"connected": True}


def udp_send(port):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"LEAKED", ("127.0.0.1", port))
    return {"sent": True}
