"""msgpack-rpc framing, fed bytes, returning frames; it never does I/O.

    request       [0, msgid, method, params]
    response      [1, msgid, error, result]      error is None or {code, message, data}
    notification  [2, method, params]

Between the head and a node daemon, frames follow each other bare. On a shim's
socket (daemon <-> shim, both sac_node) each frame is prefixed with its length,
4 bytes big-endian, so that the daemon can pass a shim's reply on to the head
without decoding it: it only rewrites the msgid (`response_id`, `readdressed`).
"""

import struct

import msgpack

from . import purepack
from .errors import ProtocolError

if msgpack.Packer.__module__ == "msgpack.fallback":  # no C extension here (node.pyz ships none)
    _packb, _unpackb, _FORMAT_ERRORS = purepack.packb, purepack.unpackb, (purepack.FormatError,)
else:
    def _packb(obj):
        return msgpack.packb(obj, use_bin_type=True)

    def _unpackb(data):
        return msgpack.unpackb(data, raw=False, strict_map_key=False)

    _FORMAT_ERRORS = (Exception,)  # msgpack raises several unrelated types on garbage

REQUEST = 0
RESPONSE = 1
NOTIFICATION = 2

# A frame larger than this is refused and the connection that sent it is closed:
# it protects a daemon's memory from a broken or hostile peer.
MAX_FRAME_BYTES = 16 * 1024 * 1024


def encode_request(msgid, method, params):
    return _packb([REQUEST, msgid, method, params])


def encode_response(msgid, error, result):
    return _packb([RESPONSE, msgid, error, result])


def encode_notification(method, params):
    return _packb([NOTIFICATION, method, params])


class FrameDecoder:
    """Accumulates bytes and yields validated frames (lists) in order.

    Raises ProtocolError on a frame that is not msgpack-rpc or is too large;
    the caller must then close the connection (the stream cannot resync).
    """

    def __init__(self, max_frame_bytes=MAX_FRAME_BYTES):
        self._max = max_frame_bytes
        self._unpacker = msgpack.Unpacker(
            raw=False,
            max_buffer_size=max_frame_bytes,
            strict_map_key=False,
        )

    def feed(self, data):
        """Feed bytes; return the list of complete frames they finished."""
        try:
            self._unpacker.feed(data)
        except msgpack.BufferFull as exc:
            raise ProtocolError("frame larger than %d bytes" % self._max) from exc
        frames = []
        try:
            for obj in self._unpacker:
                frames.append(validate_frame(obj))
        except ProtocolError:
            raise
        except Exception as exc:  # msgpack raises several unrelated types on garbage
            raise ProtocolError("malformed msgpack frame: %s" % exc) from exc
        return frames


def validate_frame(obj):
    """Check the shape of one decoded object; return it or raise ProtocolError."""
    if not isinstance(obj, (list, tuple)) or not obj:
        raise ProtocolError("frame is not an array")
    kind = obj[0]
    if kind == REQUEST and len(obj) == 4 and isinstance(obj[1], int) and isinstance(obj[2], str):
        return list(obj)
    if kind == RESPONSE and len(obj) == 4 and isinstance(obj[1], int):
        return list(obj)
    if kind == NOTIFICATION and len(obj) == 3 and isinstance(obj[1], str):
        return list(obj)
    raise ProtocolError("frame is not a msgpack-rpc request, response or notification")


PREFIX = struct.Struct(">I")


def prefixed(frame):
    """One encoded frame as it goes on a shim's socket."""
    return PREFIX.pack(len(frame)) + frame


class PrefixedSplitter:
    """Cuts a shim socket's byte stream into the encoded frames it carries, without decoding them."""

    def __init__(self, max_frame_bytes=MAX_FRAME_BYTES):
        self._max = max_frame_bytes
        self._buf = bytearray()

    def feed(self, data):
        buf = self._buf
        buf += data
        frames, pos = [], 0
        while len(buf) - pos >= PREFIX.size:
            size = PREFIX.unpack_from(buf, pos)[0]
            if size > self._max:
                raise ProtocolError("frame larger than %d bytes" % self._max)
            end = pos + PREFIX.size + size
            if end > len(buf):
                break
            frames.append(bytes(buf[pos + PREFIX.size:end]))
            pos = end
        del buf[:pos]
        return frames


def decode_frame(data):
    """One whole encoded frame -> the validated frame (list); ProtocolError when it is not one."""
    try:
        obj = _unpackb(data)
    except _FORMAT_ERRORS as exc:
        raise ProtocolError("malformed msgpack frame: %s" % exc) from exc
    return validate_frame(obj)


_UINT_SIZES = {0xcc: 1, 0xcd: 2, 0xce: 4, 0xcf: 8}


def response_id(data):
    """(msgid, offset of the rest) of an encoded response frame; None for any other frame."""
    if len(data) < 3 or data[0] != 0x94 or data[1] != RESPONSE:
        return None
    head = data[2]
    if head < 0x80:  # positive fixint
        return head, 3
    size = _UINT_SIZES.get(head)
    if size is None or len(data) < 3 + size:
        return None
    return int.from_bytes(data[3:3 + size], "big"), 3 + size


def readdressed(data, offset, msgid):
    """The encoded response frame `data` (its rest starting at `offset`) as the reply to `msgid`."""
    return b"\x94\x01" + _packb(msgid) + data[offset:]
