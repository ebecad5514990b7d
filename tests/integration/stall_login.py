#!/usr/bin/env python3
"""A SCRAM-SHA-256 login that stops between the server's first message and
the client's proof, for tests of what a half-done login may reach.

    stall_login.py HOST PORT USER DBNAME PASSWORD FLAG

Writes FLAG.stalled once the server has sent its salt (the server has read
the role's password verifier by then), waits for FLAG.go to exist, then
sends the proof and prints one line: LOGGED IN, REJECTED: <message>, or
CLOSED (the server ended the connection). Standard library only."""
import base64
import hashlib
import hmac
import os
import socket
import struct
import sys
import time


def recv_exact(s, n):
    b = b''
    while len(b) < n:
        chunk = s.recv(n - len(b))
        if not chunk:
            raise ConnectionError('closed')
        b += chunk
    return b


def recv(s):
    head = recv_exact(s, 5)
    return head[:1], recv_exact(s, struct.unpack('!I', head[1:])[0] - 4)


def message(kind, body):
    return kind + struct.pack('!I', len(body) + 4) + body


def main():
    host, port, user, db, password, flag = sys.argv[1:7]
    s = socket.create_connection((host, int(port)))
    params = b'user\0' + user.encode() + b'\0database\0' + db.encode() + b'\0\0'
    s.sendall(struct.pack('!II', len(params) + 8, 196608) + params)
    kind, body = recv(s)
    assert kind == b'R' and struct.unpack('!I', body[:4])[0] == 10, 'no SASL offer'
    client_first_bare = 'n=,r=' + base64.b64encode(os.urandom(18)).decode()
    first = ('n,,' + client_first_bare).encode()
    s.sendall(message(b'p', b'SCRAM-SHA-256\0' + struct.pack('!I', len(first)) + first))
    kind, body = recv(s)
    assert kind == b'R' and struct.unpack('!I', body[:4])[0] == 11, 'no server-first message'
    server_first = body[4:].decode()
    fields = dict(f.split('=', 1) for f in server_first.split(','))
    open(flag + '.stalled', 'w').close()
    while not os.path.exists(flag + '.go'):
        time.sleep(0.01)
    salted = hashlib.pbkdf2_hmac('sha256', password.encode(), base64.b64decode(fields['s']),
                                 int(fields['i']))
    client_key = hmac.new(salted, b'Client Key', 'sha256').digest()
    stored_key = hashlib.sha256(client_key).digest()
    final_bare = 'c=biws,r=' + fields['r']
    auth = (client_first_bare + ',' + server_first + ',' + final_bare).encode()
    signature = hmac.new(stored_key, auth, 'sha256').digest()
    proof = base64.b64encode(bytes(a ^ b for a, b in zip(client_key, signature))).decode()
    try:
        s.sendall(message(b'p', (final_bare + ',p=' + proof).encode()))
        while True:
            kind, body = recv(s)
            if kind == b'E':
                text = body.split(b'\0M', 1)[1].split(b'\0', 1)[0].decode()
                print('REJECTED: ' + text)
                return
            if kind == b'Z':
                print('LOGGED IN')
                return
    except (ConnectionError, OSError):
        print('CLOSED')


if __name__ == '__main__':
    main()
