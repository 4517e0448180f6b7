#!/usr/bin/env python3
"""Recompute the hash chain of an audit export (README, "Audit export"), Python standard library only.

    python3 verify_chain.py < export.ndjson

Checks that every event's fields give its hash, that each event links to the one before, and that each
checkpoint's signed hash is the exported event's. It does not check signatures (the standard library has
no Ed25519): check each checkpoint with openssl as the README shows, or use tools/auditverify.
"""
import base64, datetime, hashlib, json, struct, sys

OUTCOMES = ["OUTCOME_UNSPECIFIED", "OUTCOME_SUCCESS", "OUTCOME_FAILURE", "OUTCOME_DENIED"]
ACTOR_TYPES = ["ACTOR_TYPE_UNSPECIFIED", "ACTOR_TYPE_AGENT", "ACTOR_TYPE_USER", "ACTOR_TYPE_SERVICE"]
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def micros(ts):
    """An RFC 3339 UTC timestamp as microseconds since 1970 (the service stores whole microseconds)."""
    whole, _, frac = ts.rstrip("Z").partition(".")
    d = datetime.datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc) - EPOCH
    return (d.days * 86400 + d.seconds) * 1_000_000 + int((frac + "000000")[:6])


def enum(value, names):
    return names.index(value) if isinstance(value, str) else int(value or 0)


def event_hash(e):
    version = e["hashVersion"]
    h = hashlib.sha256(b"sergas.audit.v%d\x00" % version)
    num = lambda n: h.update(struct.pack(">q", n))  # 8-byte big-endian, two's complement
    def data(b):  # length, then the bytes
        num(len(b))
        h.update(b)
    text = lambda name: data(e.get(name, "").encode())
    data(base64.b64decode(e["previousHash"]))
    num(int(e["sequence"]))
    text("id")
    num(micros(e["occurTime"]))
    num(micros(e["recordTime"]))
    text("actor"), text("action"), text("resource")
    num(enum(e.get("outcome"), OUTCOMES))
    text("metadataJson"), text("idempotencyKey")
    if version >= 2:
        text("principal")
    if version >= 3:
        num(enum(e.get("actorType"), ACTOR_TYPES))
        text("sessionId"), text("requestId"), text("sourceService")
    return h.digest()


def main():
    hashes, first, last, failed = {}, None, None, False
    for n, line in enumerate(sys.stdin, 1):
        item = json.loads(line)
        if "error" in item:
            sys.exit("line %d: the export ended with an error, it is incomplete: %s" % (n, item["error"]))
        item = item["result"]
        if "event" in item:
            e = item["event"]
            seq, h = int(e["sequence"]), base64.b64decode(e["hash"])
            if event_hash(e) != h:
                print("FAIL: sequence %d: its fields do not give its hash" % seq)
                failed = True
            if last is not None and (seq != last + 1 or base64.b64decode(e["previousHash"]) != hashes[last]):
                print("FAIL: sequence %d does not link to sequence %d" % (seq, last))
                failed = True
            hashes[seq], first, last = h, first or seq, seq
        else:
            c = item["checkpoint"]
            signed = dict(l.split(": ", 1) for l in c["signedText"].splitlines()[1:])
            seq = int(signed["sequence"])
            if hashes.get(seq) != bytes.fromhex(signed["hash"]):
                print("FAIL: checkpoint #%s signs sequence %d with another hash" % (c["id"], seq))
                failed = True
            else:
                print("checkpoint #%s: sequence %d has the hash it signs (check its signature with openssl)" % (c["id"], seq))
    if failed or last is None:
        sys.exit(1)
    print("events %d..%d: every hash recomputed, every link checked" % (first, last))


if __name__ == "__main__":
    main()
