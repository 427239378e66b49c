"""schemathesis hooks for the Alta API (loaded through SCHEMATHESIS_HOOKS by schemathesis.sh).

A tus chunk (PATCH /api/uploads/{id}) is `application/offset+octet-stream`, raw bytes that
schemathesis has no serializer for: send it as it sends `application/octet-stream`.
"""

import schemathesis
from schemathesis.transport.serialization import serialize_binary


@schemathesis.serializer("application/offset+octet-stream")
def tus_chunk(ctx, value):
    return serialize_binary(value)
