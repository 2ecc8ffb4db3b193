"""SSHTransport's read loop does not depend on paramiko's channel wakeup pipe (no network).

paramiko signals "stdout or stderr readable" through one pipe shared by both buffers, whose
set/clear race across threads (pipe.OrPipe): a wakeup can be lost while data sits buffered.
The channel here is a stand-in whose fileno never becomes readable at all, the worst case of
that race: the command must still complete with its output, not wait for its timeout.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, cast

import paramiko

from shipit.transport import (
    HostKeyPolicy,
    SSHTarget,
    SSHTransport,
    _Command,
)


class SilentChannel:
    """Enough of paramiko.Channel for ``_exchange``: each chunk of output arrives ``delay``
    seconds after the one before was read (as a remote blocked on a full window resumes only
    once we read), but the fileno handed to select() is never written (every wakeup lost)."""

    def __init__(self, delay: float) -> None:
        self._delay = delay
        self._ready_at = time.monotonic() + delay
        self._out = [b"out-1 ", b"out-2 ", b"out-3"]
        self._err = [b"err-1 ", b"err-2"]
        self._r, self._w = os.pipe()
        self.closed = False
        self.status_event = threading.Event()
        self.exit_status = 0
        self.sent = b""

    def _ready(self) -> bool:  # the next chunk is due
        return time.monotonic() >= self._ready_at

    def settimeout(self, timeout: float) -> None:
        pass

    def fileno(self) -> int:
        return self._r

    def send(self, data: bytes) -> int:
        self.sent += data
        return len(data)

    def shutdown_write(self) -> None:
        pass

    def _recv(self, chunks: list[bytes]) -> bytes:
        if not chunks:
            return b""
        if not self._ready():
            raise TimeoutError
        self._ready_at = time.monotonic() + self._delay
        return chunks.pop(0)

    def recv(self, n: int) -> bytes:
        return self._recv(self._out)

    def recv_stderr(self, n: int) -> bytes:
        return self._recv(self._err)

    def exit_status_ready(self) -> bool:
        done = not self._out and not self._err
        if done:
            self.status_event.set()
        return done

    def close(self) -> None:
        self.closed = True
        os.close(self._r)
        os.close(self._w)


def test_output_is_read_even_when_the_channel_never_signals_readable() -> None:
    transport = SSHTransport(SSHTarget(host="web1", address="192.0.2.1"),
                             HostKeyPolicy(known_hosts=()))
    chan = SilentChannel(delay=0.05)
    cmd = _Command(cast(paramiko.Channel, chan))
    deadline_s = 10.0  # without a bounded wait the loop sleeps to here, then: RemoteTimeout
    try:
        result = transport._exchange(cmd, b"echo hi\n", time.monotonic() + deadline_s, deadline_s,
                                     cast(Any, None))
    finally:
        chan.close()
    assert result.rc == 0
    assert result.stdout == "out-1 out-2 out-3"
    assert result.stderr == "err-1 err-2"
    assert chan.sent == b"echo hi\n"
