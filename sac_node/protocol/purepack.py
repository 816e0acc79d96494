"""msgpack for hosts without msgpack's C extension: the subset the wire uses, about twice as fast.

node.pyz ships msgpack's own pure-Python fallback, which is general (ext types,
hooks, options) and therefore slow: a turn's reply took 45 us to pack on the
benchmark host. The node encodes every frame it sends with `packb` and decodes
every whole frame it gets (a shim's socket carries whole frames) with `unpackb`
below; the byte stream from the head still goes through msgpack's Unpacker,
which knows where frames end. Both follow msgpack's spec and give the same
values as msgpack with use_bin_type=True, raw=False, strict_map_key=False.
Where msgpack's C extension is installed, framing.py uses it instead.
"""

import struct

_DOUBLE = struct.Struct(">d")
_FLOAT = struct.Struct(">f")


def packb(obj):
    out = []
    _pack(obj, out.append)
    return b"".join(out)


_FIXSTR = [bytes((0xa0 | n,)) for n in range(32)]
_FIXMAP = [bytes((0x80 | n,)) for n in range(16)]
_KEYS = {}  # packed map keys: the wire's keys are a small fixed set, packed once each
_KEYS_MAX = 1024


def _packed_str(text):
    data = text.encode("utf-8")
    size = len(data)
    if size < 32:
        return _FIXSTR[size] + data
    out = []
    _header(out.append, size, 0xa0, 32, 0xd9, 0xda, 0xdb)
    out.append(data)
    return b"".join(out)


def _packed_key(key):
    data = _KEYS.get(key)
    if data is None:
        data = _packed_str(key)
        if len(_KEYS) < _KEYS_MAX and len(data) < 64:
            _KEYS[key] = data
    return data


def _pack(obj, put):
    kind = type(obj)
    if kind is str:
        put(_packed_str(obj))
    elif kind is dict:
        if len(obj) < 16:
            put(_FIXMAP[len(obj)])
        else:
            _header(put, len(obj), 0x80, 16, None, 0xde, 0xdf)
        for key, value in obj.items():  # the common keys and values inline: a reply is mostly these
            put(_packed_key(key) if type(key) is str else packb(key))
            kind = type(value)
            if kind is str:
                put(_packed_str(value))
            elif value is None:
                put(b"\xc0")
            elif kind is float:
                put(b"\xcb" + _DOUBLE.pack(value))
            else:
                _pack(value, put)
    elif obj is None:
        put(b"\xc0")
    elif obj is True:
        put(b"\xc3")
    elif obj is False:
        put(b"\xc2")
    elif kind is int:
        _pack_int(obj, put)
    elif kind is float:
        put(b"\xcb" + _DOUBLE.pack(obj))
    elif kind is list or kind is tuple:
        _header(put, len(obj), 0x90, 16, None, 0xdc, 0xdd)
        for value in obj:
            _pack(value, put)
    elif kind is bytes or kind is bytearray or kind is memoryview:
        data = bytes(obj)
        _header(put, len(data), 0, 0, 0xc4, 0xc5, 0xc6)
        put(data)
    elif isinstance(obj, int):
        _pack_int(int(obj), put)
    elif isinstance(obj, float):
        put(b"\xcb" + _DOUBLE.pack(obj))
    elif isinstance(obj, str):
        _pack(str(obj), put)
    elif isinstance(obj, dict):
        _pack(dict(obj), put)
    elif isinstance(obj, (list, tuple)):
        _pack(list(obj), put)
    else:
        raise TypeError("can not serialize %r object" % (kind.__name__,))


def _header(put, size, fix, fix_below, one, two, four):
    """A str, bin, array or map header: the fix form below `fix_below`, else the 1-byte length
    form (when the type has one), the 2-byte or the 4-byte one."""
    if size < fix_below:
        put(bytes((fix | size,)))
    elif one is not None and size < 0x100:
        put(bytes((one, size)))
    elif size < 0x10000:
        put(bytes((two,)) + size.to_bytes(2, "big"))
    else:
        put(bytes((four,)) + size.to_bytes(4, "big"))


def _pack_int(value, put):
    if 0 <= value < 0x80:
        put(bytes((value,)))
    elif -32 <= value < 0:
        put(bytes((value & 0xff,)))
    elif value >= 0:
        for code, size in ((0xcc, 1), (0xcd, 2), (0xce, 4), (0xcf, 8)):
            if value < 1 << (8 * size):
                put(bytes((code,)) + value.to_bytes(size, "big"))
                return
        raise OverflowError("Integer value out of range")
    else:
        for code, size in ((0xd0, 1), (0xd1, 2), (0xd2, 4), (0xd3, 8)):
            if value >= -(1 << (8 * size - 1)):
                put(bytes((code,)) + value.to_bytes(size, "big", signed=True))
                return
        raise OverflowError("Integer value out of range")


class FormatError(ValueError):
    """The bytes are not one whole msgpack value of the kinds the wire uses."""


def unpackb(data):
    """The one value `data` holds; FormatError when it is not exactly one well-formed value."""
    data = bytes(data)
    try:
        value, end = _unpack(data, 0)
    except (IndexError, struct.error) as exc:
        raise FormatError("truncated msgpack data") from exc
    except RecursionError as exc:
        raise FormatError("msgpack data nested too deeply") from exc
    except UnicodeDecodeError as exc:
        raise FormatError("msgpack str is not UTF-8: %s" % exc) from exc
    except TypeError as exc:  # an unhashable map key
        raise FormatError(str(exc)) from exc
    if end != len(data):
        raise FormatError("extra data after the msgpack value")
    return value


def _take(data, pos, size):
    end = pos + size
    if end > len(data):
        raise IndexError(end)
    return data[pos:end], end


def _unpack(data, pos):
    code = data[pos]
    pos += 1
    if code < 0x80:
        return code, pos
    if code >= 0xe0:
        return code - 0x100, pos
    if 0xa0 <= code <= 0xbf:
        raw, pos = _take(data, pos, code & 0x1f)
        return raw.decode("utf-8"), pos
    if 0x80 <= code <= 0x8f:
        return _map(data, pos, code & 0x0f)
    if 0x90 <= code <= 0x9f:
        return _array(data, pos, code & 0x0f)
    if code == 0xc0:
        return None, pos
    if code == 0xc2:
        return False, pos
    if code == 0xc3:
        return True, pos
    if code == 0xcb:
        raw, pos = _take(data, pos, 8)
        return _DOUBLE.unpack(raw)[0], pos
    if code == 0xca:
        raw, pos = _take(data, pos, 4)
        return _FLOAT.unpack(raw)[0], pos
    sized = _SIZED.get(code)
    if sized is None:
        raise FormatError("msgpack type 0x%02x is not used on the wire" % code)
    kind, width = sized
    raw, pos = _take(data, pos, width)
    if kind == "int":
        return int.from_bytes(raw, "big", signed=True), pos
    number = int.from_bytes(raw, "big")
    if kind == "uint":
        return number, pos
    if kind == "str":
        raw, pos = _take(data, pos, number)
        return raw.decode("utf-8"), pos
    if kind == "bin":
        return _take(data, pos, number)
    if kind == "array":
        return _array(data, pos, number)
    return _map(data, pos, number)


def _array(data, pos, count):
    if count > len(data) - pos:  # every element takes a byte at least
        raise IndexError(count)
    items = []
    for _ in range(count):
        item, pos = _unpack(data, pos)
        items.append(item)
    return items, pos


def _map(data, pos, count):
    if 2 * count > len(data) - pos:
        raise IndexError(count)
    result = {}
    for _ in range(count):
        key, pos = _unpack(data, pos)
        value, pos = _unpack(data, pos)
        result[key] = value
    return result, pos


_SIZED = {
    0xcc: ("uint", 1), 0xcd: ("uint", 2), 0xce: ("uint", 4), 0xcf: ("uint", 8),
    0xd0: ("int", 1), 0xd1: ("int", 2), 0xd2: ("int", 4), 0xd3: ("int", 8),
    0xd9: ("str", 1), 0xda: ("str", 2), 0xdb: ("str", 4),
    0xc4: ("bin", 1), 0xc5: ("bin", 2), 0xc6: ("bin", 4),
    0xdc: ("array", 2), 0xdd: ("array", 4),
    0xde: ("map", 2), 0xdf: ("map", 4),
}
