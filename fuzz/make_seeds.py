#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/corpus/<target>/ (see fuzz/README.md).

Binary seeds come from two places:
- `fixture-*`: verbatim copies of tests/fixtures/wire-v1/*.msgpack, bytes a Colony binary
  wrote and tests/wire_fixtures.rs checks still decode (the gossip target also embeds the
  NodeMeta fixture in a metadata broadcast);
- everything else: the small encoders below (MessagePack as rmp-serde writes it, postcard
  as foca writes it, the HMAC framing of cluster/src/membership/auth.rs), written from the
  formats and the Rust types they target; their shapes match the fixtures, but they were
  not run through the Rust decoders, so a change to those types should be mirrored here.
A seed that no longer decodes is harmless (libFuzzer only starts from it); one that does
is what lets the fuzzer reach the code behind the decoder quickly. `cargo fuzz run -O
TARGET DIR -- -runs=0` runs a corpus once and prints the coverage it reaches.

Usage: python3 fuzz/make_seeds.py   (rewrites the seeds it knows; leaves others alone)
Standard library only.
"""

import hashlib
import hmac
import json
import pathlib
import struct

CORPUS = pathlib.Path(__file__).resolve().parent / "corpus"
# Bytes earlier binaries wrote (tests/wire_fixtures.rs): copied in as verified seeds.
FIXTURES = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "wire-v1"

# Shared with fuzz_targets/gossip_packet.rs.
GOSSIP_SECRET = b"colony-fuzz-gossip-secret"
GOSSIP_SPLIT = b"|next|"
# cluster/src/membership/auth.rs
GOSSIP_CONTEXT = b"colony/gossip/v1\0"
GOSSIP_WIRE_V1 = 1
GOSSIP_TAG_LEN = 16


def write(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    (d / name).write_bytes(data)


def fixture(name):
    return (FIXTURES / f"{name}.msgpack").read_bytes()


def copy_fixtures(target, prefix):
    for f in sorted(FIXTURES.glob(f"{prefix}*.msgpack")):
        write(target, "fixture-" + f.stem, f.read_bytes())


def write_json(target, name, value):
    write(target, name, json.dumps(value, ensure_ascii=False, separators=(",", ":")) + "\n")


# --------------------------------------------------------------------------------------
# MessagePack, as rmp-serde writes it with `to_vec_named`: structs are maps with their
# field names, unit variants are the variant's name, other variants a one-entry map
# {name: value}, `Option::None` is nil, `Result` is {"Ok": v} / {"Err": e}.


def mp(v):
    if v is None:
        return b"\xc0"
    if v is True:
        return b"\xc3"
    if v is False:
        return b"\xc2"
    if isinstance(v, int):
        if 0 <= v < 0x80:
            return bytes([v])
        if -32 <= v < 0:
            return struct.pack(">b", v)
        if 0 <= v < 1 << 8:
            return b"\xcc" + struct.pack(">B", v)
        if 0 <= v < 1 << 16:
            return b"\xcd" + struct.pack(">H", v)
        if 0 <= v < 1 << 32:
            return b"\xce" + struct.pack(">I", v)
        if 0 <= v < 1 << 64:
            return b"\xcf" + struct.pack(">Q", v)
        return b"\xd3" + struct.pack(">q", v)
    if isinstance(v, float):
        return b"\xcb" + struct.pack(">d", v)
    if isinstance(v, str):
        b = v.encode()
        if len(b) < 32:
            return bytes([0xA0 | len(b)]) + b
        if len(b) < 256:
            return b"\xd9" + bytes([len(b)]) + b
        return b"\xda" + struct.pack(">H", len(b)) + b
    if isinstance(v, (bytes, bytearray)):
        return b"\xc4" + bytes([len(v)]) + bytes(v)
    if isinstance(v, (list, tuple)):
        head = bytes([0x90 | len(v)]) if len(v) < 16 else b"\xdc" + struct.pack(">H", len(v))
        return head + b"".join(mp(x) for x in v)
    if isinstance(v, dict):
        head = bytes([0x80 | len(v)]) if len(v) < 16 else b"\xde" + struct.pack(">H", len(v))
        return head + b"".join(mp(k) + mp(x) for k, x in v.items())
    raise TypeError(v)


# --------------------------------------------------------------------------------------
# Shared values.

VALID_SPEC = {
    "providers": [{"id": "e", "kind": "builtin", "model": "echo"}],
    "prompt": "Q: {{q}}",
    "cases": [
        {"vars": {"q": "one"}, "reference": "one"},
        {"vars": {"q": "two"}, "reference": "two"},
    ],
    "scorers": [{"type": "exact_match"}],
}

LIMIT = {"limit": 10, "duration_ms": 1000, "burst": None}
LIMIT_BURST = {"limit": 10, "duration_ms": 1000, "burst": 20}

TOKEN_STATE = {"token_bucket": {"limit": LIMIT_BURST, "tokens": 19, "tokens_frac": 0, "updated_ms": 1_700_000_000_000}}
LEAKY_STATE = {"leaky_bucket": {"limit": LIMIT, "level": 3, "level_frac": 500, "updated_ms": 1_700_000_000_000}}
WINDOW_STATE = {
    "sliding_window": {
        "limit": LIMIT,
        "updated_ms": 1_700_000_000_000,
        "slots": [{"index": 17_000_000_000, "count": 2}, {"index": 17_000_000_001, "count": 1}],
    }
}


def leader(term, node):
    return {"term": term, "node_id": node}


def log_id(term, node, index):
    return {"leader_id": leader(term, node), "index": index}


def vote(term, node, committed):
    return {"leader_id": leader(term, node), "committed": committed}


NODE_INFO = {
    1: {"raft_addr": "10.0.0.1:7000", "http_addr": "10.0.0.1:8080"},
    2: {"raft_addr": "10.0.0.2:7000", "http_addr": "10.0.0.2:8080"},
    3: {"raft_addr": "10.0.0.3:7000", "http_addr": "10.0.0.3:8080"},
}
MEMBERSHIP = {"configs": [[1, 2, 3]], "nodes": NODE_INFO}


def meta(request_id="req_0001", principal="admin"):
    return {"at_ms": 1_700_000_000_000, "principal": principal, "request_id": request_id}


def proposal(command, fmt=1):
    return {"format": fmt, "meta": meta(), "command": command}


RECORD = {
    "id": "ev_00112233aabbccdd",
    "tenant": "acme",
    "total": 2,
    "status": "queued",
    "owner": 2,
    "epoch": 1,
    "done": {"words": [], "count": 0},
    "failed": 0,
    "cached": 0,
    "usage": {"prompt_tokens": 0, "completion_tokens": 0, "cost_nanos": 0, "cases": 0},
    "error": None,
    "created_at_ms": 0,
    "updated_at_ms": 0,
    "finished_at_ms": None,
}

COMMANDS = {
    "init-cluster": {"init_cluster": {"admin_token_hash": "ab" * 32, "tiers": []}},
    "delete-tier": {"delete_tier": {"name": "free"}},
    "delete-tenant": {"delete_tenant": {"id": "acme"}},
    "update-tenant": {
        "update_tenant": {"id": "acme", "patch": {"name": "Acme Inc", "tier": "pro", "overrides": None, "status": None}}
    },
    "revoke-key": {"revoke_key": {"tenant": "acme", "key_id": "key_0123456789abcdef"}},
    "set-price": {
        "set_price": {"price": {"model": "gpt-4o", "input_per_1k_usd": 0.0025, "output_per_1k_usd": 0.01, "updated_at_ms": 0}}
    },
    "delete-price": {"delete_price": {"model": "gpt-4o"}},
    "submit-evaluation": {"submit_evaluation": {"record": RECORD, "spec": VALID_SPEC}},
    "checkpoint-evaluation": {
        "checkpoint_evaluation": {
            "id": RECORD["id"],
            "epoch": 1,
            "items": [
                {
                    "index": 0,
                    "model": "echo",
                    "prompt_tokens": 2,
                    "completion_tokens": 2,
                    "cost_nanos": 0,
                    "error": False,
                    "cached": False,
                    "result": {"output": "Q: one", "scores": {"exact_match": 0.0}},
                }
            ],
        }
    },
    "reassign-evaluation": {"reassign_evaluation": {"id": RECORD["id"], "epoch": 1, "owner": 3}},
    "cancel-evaluation": {"cancel_evaluation": {"tenant": "acme", "id": RECORD["id"]}},
    "fail-evaluation": {"fail_evaluation": {"id": RECORD["id"], "epoch": 1, "error": "provider down"}},
    "delete-credential": {"delete_credential": {"tenant": "acme", "name": "openai"}},
}


# --------------------------------------------------------------------------------------
# wire_envelope: crates/limiter/src/router.rs, Envelope { v, body }.


def wire(body, v=1):
    return mp({"v": v, "body": body})


def wire_envelope():
    t = "wire_envelope"
    write(t, "empty-map", b"\x80")
    copy_fixtures(t, "router-")
    write(t, "check-batch", wire({
        "request_id": "req_0001",
        "tenant_id": "acme",
        "from_node": 2,
        "items": [
            {"key": "4:acme/3:api/user-1", "algorithm": "token_bucket", "limit": LIMIT, "hits": 1},
            {"key": "4:acme/3:api/user-2", "algorithm": "sliding_window", "limit": LIMIT, "hits": 0},
        ],
    }))
    write(t, "check-reply", wire({
        "results": [
            {"decision": {"status": "under_limit", "limit": 10, "remaining": 9, "reset_after_ms": 100}},
            {"decision": {"status": "over_limit", "limit": 10, "remaining": 0, "reset_after_ms": 900}},
            {"invalid": "ZeroLimit"},
            "overloaded",
            "unavailable",
            {"moved": 3},
            {"too_many_buckets": {"tenant": "acme", "live": 3, "max": 3}},
        ]
    }))
    write(t, "lease-acquire", wire({
        "request_id": "req_0002", "tenant_id": "acme", "from_node": 2, "key": "lease:acme",
        "lease_id": "req_0002", "op": {"acquire": {"limit": 4, "ttl_ms": 30000}},
    }))
    write(t, "lease-release", wire({
        "request_id": "req_0003", "tenant_id": "acme", "from_node": 2, "key": "lease:acme",
        "lease_id": "req_0002", "op": "release",
    }))
    write(t, "lease-reply-full", wire({"outcome": {"full": {"in_flight": 4, "expires_in_ms": 1200}}}))
    write(t, "lease-reply-granted", wire({"outcome": {"granted": {"in_flight": 1}}}))
    write(t, "pull-request", wire({"from_node": 3, "keys": ["4:acme/3:api/user-1", "4:acme/3:api/user-2"]}))
    write(t, "pull-reply", wire({"answers": [{"state": TOKEN_STATE}, {"state": WINDOW_STATE}, {"moved": 1}, "unknown", "busy"]}))
    write(t, "bucket-batch", wire({
        "from_node": 1,
        "buckets": [
            {"key": "4:acme/3:api/user-1", "state": TOKEN_STATE},
            {"key": "4:acme/3:api/user-2", "state": LEAKY_STATE},
            {"key": "4:acme/3:api/user-3", "state": WINDOW_STATE},
        ],
        "leases": [["lease:acme", "req_0002", 25000]],
    }))
    # A replica batch from a binary that predates `leases`.
    write(t, "bucket-batch-old", wire({"from_node": 1, "buckets": [{"key": "k", "state": LEAKY_STATE}]}))
    write(t, "handoff-ack", wire({"installed": 2}))
    write(t, "newer-version", wire({"installed": 2}, v=2))


# --------------------------------------------------------------------------------------
# internal_body: cluster/src/transport/wire.rs, Envelope { v, from, body }.


def internal(body, sender=2, v=1):
    return mp({"v": v, "from": sender, "body": body})


def internal_body():
    t = "internal_body"
    write(t, "empty-map", b"\x80")
    copy_fixtures(t, "internal-")
    write(t, "vote-request", internal({"vote": vote(3, 2, False), "last_log_id": log_id(2, 1, 10)}))
    write(t, "vote-request-empty-log", internal({"vote": vote(1, 2, False), "last_log_id": None}))
    write(t, "append-heartbeat", internal({
        "vote": vote(3, 2, True), "prev_log_id": log_id(3, 2, 11), "entries": [], "leader_commit": log_id(3, 2, 11),
    }))
    write(t, "append-entries", internal({
        "vote": vote(3, 2, True),
        "prev_log_id": log_id(2, 1, 10),
        "entries": [
            {"log_id": log_id(3, 2, 11), "payload": "Blank"},
            {"log_id": log_id(3, 2, 12), "payload": {"Normal": proposal(COMMANDS["delete-tier"])}},
            {"log_id": log_id(3, 2, 13), "payload": {"Membership": MEMBERSHIP}},
        ],
        "leader_commit": log_id(3, 2, 11),
    }))
    write(t, "install-snapshot", internal({
        "vote": vote(3, 2, True),
        "meta": {
            "last_log_id": log_id(3, 2, 13),
            "last_membership": {"log_id": log_id(3, 2, 13), "membership": MEMBERSHIP},
            "snapshot_id": "3-2-13-0001",
        },
        "offset": 0,
        "data": [0x93, 0x01, 0x02, 0x03],
        "done": True,
    }))
    write(t, "forwarded-write", internal(proposal(COMMANDS["revoke-key"])))
    write(t, "read-index", internal(None))
    write(t, "append-reply-success", internal({"Ok": "Success"}, sender=1))
    write(t, "append-reply-partial", internal({"Ok": {"PartialSuccess": log_id(3, 2, 12)}}, sender=1))
    write(t, "append-reply-higher-vote", internal({"Ok": {"HigherVote": vote(4, 3, False)}}, sender=1))
    write(t, "vote-reply", internal({"Ok": {"vote": vote(3, 2, False), "vote_granted": True, "last_log_id": log_id(2, 1, 10)}}, sender=1))
    write(t, "snapshot-reply", internal({"Ok": {"vote": vote(3, 2, True)}}, sender=1))
    write(t, "write-reply-applied", internal({"applied": {"result": {"Ok": "deleted"}, "index": 12}}, sender=1))
    write(t, "write-reply-rejected", internal({"applied": {"result": {"Err": {"not_found": {"kind": "tier", "id": "free"}}}, "index": 12}}, sender=1))
    write(t, "write-reply-not-leader", internal({"not_leader": {"id": 1, "node": NODE_INFO[1]}}, sender=3))
    write(t, "read-index-reply", internal({"index": 13}, sender=1))
    write(t, "read-index-unavailable", internal({"unavailable": "the leader could not confirm its leadership in time"}, sender=1))


# --------------------------------------------------------------------------------------
# raft_proposal: crates/core/src/command.rs, a bare Proposal.


def raft_proposal():
    t = "raft_proposal"
    write(t, "empty-map", b"\x80")
    copy_fixtures(t, "proposal-")
    for name, command in COMMANDS.items():
        write(t, name, mp(proposal(command)))
    write(t, "newer-format", mp(proposal(COMMANDS["delete-tier"], fmt=2)))


# --------------------------------------------------------------------------------------
# gossip_packet: foca 2 packets (postcard) inside Colony's HMAC framing.
#
# postcard: unsigned integers wider than u8 are LEB128 varints, u8 is one byte, enum
# variants are a varint index, structs and tuples are their fields in order. A
# SocketAddr (not human-readable) is the variant V4 = 0, then the 4 octets, then the port.
# foca packet: Header { src, src_incarnation: u16, dst, message }, then (unless the
# message is Broadcast) a big-endian u16 count of Member { id, incarnation, state }, then
# custom broadcasts, each a big-endian u16 length and the item (here: 0x01 then a
# MessagePack MetaAnnouncement { boot, seq, meta: NodeMeta }).


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def ident(node_id, last_octet, boot, port=7946):
    return varint(node_id) + varint(0) + bytes([127, 0, 0, last_octet]) + varint(port) + varint(boot)


US = ident(1, 1, 1)  # the agent decode_for_fuzz builds
US_PLACEHOLDER = ident(0, 1, 0)  # what a seed announces to
PEER = ident(2, 2, 5)
NODE3 = ident(3, 3, 7)
NODE4 = ident(4, 4, 9)

PING, ACK, PING_REQ, INDIRECT_PING, INDIRECT_ACK, FORWARDED_ACK = range(6)
ANNOUNCE, FEED, GOSSIP, BROADCAST, TURN_UNDEAD = range(6, 11)
ALIVE, SUSPECT, DOWN = range(3)


def header(message, src=PEER, dst=US, incarnation=0):
    return src + varint(incarnation) + dst + message


def members(*ms):
    return struct.pack(">H", len(ms)) + b"".join(m for m in ms)


def member(identity, incarnation, state):
    return identity + varint(incarnation) + varint(state)


def announcement(node_id, boot, seq, state="active"):
    item = b"\x01" + mp({
        "boot": boot,
        "seq": seq,
        "meta": {
            "node_id": node_id,
            "http_addr": f"127.0.0.{node_id}:8080",
            "raft_addr": f"127.0.0.{node_id}:7000",
            "version": "0.1.0",
            "state": state,
            "cluster_addr": f"127.0.0.{node_id}:7100",
            "features": [],
        },
    })
    return struct.pack(">H", len(item)) + item


def fixture_announcement(boot, seq):
    """A broadcast item whose NodeMeta is the gossip-node_meta fixture, byte for byte."""
    item = b"\x01" + b"\x83" + mp("boot") + mp(boot) + mp("seq") + mp(seq) + mp("meta") + fixture("gossip-node_meta")
    return struct.pack(">H", len(item)) + item


def seal(payload, version=GOSSIP_WIRE_V1):
    body = bytes([version]) + payload
    tag = hmac.new(GOSSIP_SECRET, GOSSIP_CONTEXT + body, hashlib.sha256).digest()[:GOSSIP_TAG_LEN]
    return body + tag


def gossip_packet():
    t = "gossip_packet"
    announce = header(varint(ANNOUNCE), dst=US_PLACEHOLDER)
    ping = header(varint(PING) + bytes([1]))
    ping_updates = header(varint(PING) + bytes([2])) + members(
        member(NODE3, 0, ALIVE), member(NODE4, 2, SUSPECT)
    ) + announcement(2, 5, 1)
    gossip = header(varint(GOSSIP), incarnation=1) + members(
        member(NODE3, 1, ALIVE), member(NODE4, 3, DOWN), member(US, 0, SUSPECT)
    ) + announcement(3, 7, 2, state="draining")
    broadcast = header(varint(BROADCAST)) + announcement(2, 5, 2) + announcement(4, 9, 1, state="joining")
    feed = header(varint(FEED)) + members(member(NODE3, 0, ALIVE), member(NODE4, 0, ALIVE))
    ping_req = header(varint(PING_REQ) + NODE3 + bytes([4]))
    indirect_ping = header(varint(INDIRECT_PING) + NODE3 + bytes([5]))
    indirect_ack = header(varint(INDIRECT_ACK) + NODE3 + bytes([5]))
    forwarded_ack = header(varint(FORWARDED_ACK) + NODE3 + bytes([6]))
    ack = header(varint(ACK) + bytes([1]))
    turn_undead = header(varint(TURN_UNDEAD))

    # Payloads: the target seals each part between GOSSIP_SPLIT itself.
    write(t, "one-byte", b"\x01")
    for name, payload in [
        ("announce", announce),
        ("ping", ping),
        ("ping-with-updates-and-meta", ping_updates),
        ("gossip", gossip),
        ("broadcast", broadcast),
        ("feed", feed),
        ("ping-req", ping_req),
        ("indirect-ping", indirect_ping),
        ("indirect-ack", indirect_ack),
        ("forwarded-ack", forwarded_ack),
        ("ack", ack),
        ("turn-undead", turn_undead),
    ]:
        write(t, name, payload)
    # A conversation: the peer announces, then talks to the member it now knows.
    write(t, "announce-then-gossip", GOSSIP_SPLIT.join([announce, ping_updates, gossip, broadcast, ping_req]))
    # Datagrams as they arrive (already sealed): authentic on the target's first path.
    # The NodeMeta fixture (node 42, draining) gossiped by the peer.
    fixture_meta = header(varint(GOSSIP)) + members(member(NODE3, 0, ALIVE)) + fixture_announcement(11, 3)
    write(t, "gossip-fixture-meta", fixture_meta)
    write(t, "sealed-ping", seal(ping_updates))
    write(t, "sealed-announce", seal(announce))
    # Authentic, but a wire version this binary does not know.
    write(t, "sealed-version-2", seal(ping, version=2))


# --------------------------------------------------------------------------------------
# JSON targets.


def eval_spec():
    t = "eval_spec"
    # crates/eval/src/lib.rs (doc example)
    write_json(t, "lib-doc-example.json", {
        "providers": [{"id": "echo", "kind": "builtin", "model": "echo"}],
        "prompt": "{{answer}}",
        "cases": [{"vars": {"answer": "Paris"}, "reference": "Paris"}],
        "scorers": [{"type": "exact_match"}],
    })
    # tests/evaluations.rs: valid_spec() and the hand-checked echo run
    write_json(t, "tests-valid-spec.json", VALID_SPEC)
    write_json(t, "tests-echo-hand-checked.json", {
        "providers": [{"id": "echo", "kind": "builtin", "model": "echo"}],
        "prompt": "{{answer}}",
        "cases": [
            {"vars": {"answer": "Paris"}, "reference": "Paris"},
            {"vars": {"answer": "Berlin"}, "reference": "Paris"},
            {"vars": {"answer": "the cat sat on the mat"}, "reference": "the cat sat on the mat"},
            {"vars": {"answer": "the cat sat"}, "reference": "the cat ran"},
            {"vars": {"answer": "Paris is lovely"}, "references": ["London", "Paris"]},
            {"vars": {"answer": "seven"}, "reference": "seven"},
            {"vars": {"answer": "eight"}, "reference": "nine"},
        ],
        "scorers": [{"type": "exact_match"}, {"type": "token_f1"}, {"type": "bleu"}, {"type": "contains"}],
        "concurrency": 2,
    })
    # tests/evaluations.rs: the OpenAI-compatible provider with chat messages
    write_json(t, "tests-openai-messages.json", {
        "providers": [{
            "id": "gpt", "kind": "openai", "base_url": "http://127.0.0.1:18080/v1", "model": "gpt-test",
            "params": {"temperature": 0.0, "max_tokens": 16}, "credential": "openai",
        }],
        "messages": [
            {"role": "system", "content": "Answer with the city name only."},
            {"role": "user", "content": "{{q}}"},
        ],
        "cases": [{"vars": {"q": "Capital of Chile?"}, "reference": "Santiago"}],
        "scorers": [{"type": "exact_match"}, {"type": "latency_ms", "max": 60000}],
        "concurrency": 1, "max_retries": 3, "timeout_ms": 10000,
    })
    # README.md, "Evaluations"
    write_json(t, "readme-echo-and-local.json", {
        "providers": [
            {"id": "echo", "kind": "builtin", "model": "echo"},
            {"id": "local", "kind": "openai", "base_url": "http://127.0.0.1:11434/v1",
             "model": "llama3", "params": {"temperature": 0, "max_tokens": 64}, "credential": "ollama"},
        ],
        "prompt": "Q: {{question}}\nA:",
        "cases": [
            {"vars": {"question": "Capital of France?"}, "reference": "Paris"},
            {"vars": {"question": "2+2?"}, "references": ["4", "four"]},
        ],
        "scorers": [{"type": "exact_match"}, {"type": "token_f1", "threshold": 0.5}, {"type": "bleu"}],
        "concurrency": 4, "repeat": 1, "timeout_ms": 30000, "max_retries": 2,
    })
    # tests/hostile_tenant.rs: score-only with precomputed outputs and a json_schema scorer
    write_json(t, "score-only-json-schema.json", {
        "providers": [{"id": "a", "kind": "builtin", "model": "echo"}],
        "prompt": "p {{i}}",
        "cases": [{"vars": {"i": i}, "outputs": {"a": "{\"name\": \"x\", \"n\": 3}"}} for i in range(3)],
        "scorers": [{"type": "json_schema", "schema": {
            "$defs": {"count": {"type": "integer", "minimum": 0}},
            "type": "object",
            "properties": {"name": {"type": "string"}, "n": {"$ref": "#/$defs/count"}},
            "required": ["name"],
        }}],
    })
    # Every other scorer kind, the mock provider and its params.
    write_json(t, "mock-every-scorer.json", {
        "providers": [
            {"id": "m", "kind": "builtin", "model": "mock",
             "params": {"latency_ms": 10, "error_rate": 0.1, "seed": 7, "stop": ["\n"], "top_p": 0.9}},
            {"id": "e", "kind": "builtin", "model": "echo"},
        ],
        "prompt": "What is {{a}} + {{b}}? Answer {{a}}",
        "cases": [
            {"vars": {"a": 2, "b": 2}, "reference": "4"},
            {"vars": {"a": "1,000", "b": 0.5}, "references": ["1000.5", "1,000.5"], "outputs": {"e": "1000.5"}},
        ],
        "scorers": [
            {"type": "icontains", "value": "answer"},
            {"type": "starts_with"},
            {"type": "regex", "pattern": "^What is \\d+"},
            {"type": "json_valid", "weight": 0.5},
            {"type": "levenshtein", "threshold": 0.8},
            {"type": "chrf"},
            {"type": "rouge1"},
            {"type": "rouge2", "use_stemmer": True},
            {"type": "rougeL"},
            {"type": "numeric", "abs_tol": 0.01, "rel_tol": 1e-6, "pick": "first"},
            {"type": "numeric", "expected": 4},
            {"type": "cost_usd", "max": 0.01},
        ],
        "repeat": 2,
    })
    # Refused specs: validation errors are paths worth keeping.
    write_json(t, "invalid-unknown-field.json", dict(VALID_SPEC, colour="red"))
    write_json(t, "invalid-api-key-env.json", {
        "providers": [{"id": "o", "kind": "openai", "base_url": "https://api.openai.com/v1", "model": "gpt-4o",
                       "api_key_env": "OPENAI_API_KEY"}],
        "prompt": "{{q}}",
        "cases": [{"vars": {"q": "x"}}],
        "scorers": [{"type": "exact_match"}],
    })
    write_json(t, "invalid-missing-var.json", dict(VALID_SPEC, prompt="Q: {{q}} {{missing}}"))


def json_schema():
    t = "json_schema"

    def pair(name, schema, instance):
        write(t, name, json.dumps(schema, separators=(",", ":")) + "\n" + json.dumps(instance, separators=(",", ":")) + "\n")

    pair("object-required", {
        "type": "object",
        "properties": {"name": {"type": "string", "minLength": 1}, "age": {"type": "integer", "minimum": 0}},
        "required": ["name"],
        "additionalProperties": False,
    }, {"name": "Ada", "age": 36})
    pair("ref-defs", {
        "$defs": {"pos": {"type": "integer", "exclusiveMinimum": 0}},
        "type": "array",
        "items": {"$ref": "#/$defs/pos"},
        "minItems": 1,
        "uniqueItems": True,
    }, [1, 2, 3])
    pair("ref-recursive-tree", {
        "$defs": {"node": {
            "type": "object",
            "properties": {"value": {"type": "number"}, "children": {"type": "array", "items": {"$ref": "#/$defs/node"}}},
            "required": ["value"],
        }},
        "$ref": "#/$defs/node",
    }, {"value": 1, "children": [{"value": 2, "children": []}, {"value": 3.5}]})
    pair("ref-root-cycle", {"anyOf": [{"type": "null"}, {"type": "array", "items": {"$ref": "#"}}]}, [[None], [[None]]])
    pair("ref-pointer-escapes", {
        "$defs": {"a/b": {"type": "string"}, "c~d": {"type": "boolean"}},
        "properties": {"x": {"$ref": "#/$defs/a~1b"}, "y": {"$ref": "#/$defs/c~0d"}},
    }, {"x": "s", "y": True})
    # tests/hostile_tenant.rs: exponential two-way $ref branching (the budget stops it)
    defs = {f"a{i}": {"anyOf": [{"$ref": f"#/$defs/a{i + 1}"}, {"$ref": f"#/$defs/a{i + 1}"}]} for i in range(29)}
    defs["a29"] = {"type": "number"}
    pair("ref-exponential", {"$defs": defs, "$ref": "#/$defs/a0"}, "x")
    pair("combinators", {
        "oneOf": [{"type": "string", "pattern": "^[a-z]+$"}, {"type": "integer", "multipleOf": 3}],
        "not": {"const": "forbidden"},
        "if": {"type": "integer"}, "then": {"maximum": 99}, "else": {"maxLength": 8},
    }, 42)
    pair("all-of-enum", {"allOf": [{"enum": ["red", "green", 1, None, {"k": [1, 2]}]}, {"type": ["string", "object"]}]}, {"k": [1.0, 2]})
    pair("pattern-properties", {
        "type": "object",
        "patternProperties": {"^x-": {"type": "string"}, "^n[0-9]+$": {"type": "number"}},
        "propertyNames": {"maxLength": 16},
        "additionalProperties": False,
        "minProperties": 1, "maxProperties": 4,
        "dependentRequired": {"x-a": ["x-b"]},
    }, {"x-a": "1", "x-b": "2", "n1": 3})
    pair("arrays", {
        "type": "array",
        "prefixItems": [{"type": "string"}, {"type": "number"}],
        "items": {"type": "boolean"},
        "contains": {"const": True}, "minContains": 1, "maxContains": 2,
        "maxItems": 5,
    }, ["a", 1, True, False])
    pair("boolean-schema", True, None)
    pair("false-schema", False, {})
    pair("unsupported-keyword", {"unevaluatedProperties": False}, {})
    write(t, "schema-only", json.dumps({"type": "string", "format": "email"}) + "\n")


def ratelimit_body():
    t = "ratelimit_body"
    write_json(t, "one-item.json", {"requests": [
        {"name": "requests_per_sec", "key": "account:12345", "hits": 1, "limit": 10, "duration_ms": 1000}
    ]})
    write_json(t, "every-algorithm.json", {"requests": [
        {"name": "api", "key": "user-1", "limit": 100, "duration_ms": 60000, "burst": 150, "algorithm": "token_bucket"},
        {"name": "api", "key": "user-2", "hits": 5, "limit": 100, "duration_ms": 60000, "burst": 10, "algorithm": "leaky_bucket"},
        {"name": "api", "key": "user-3", "hits": 0, "limit": 100, "duration_ms": 60000, "algorithm": "sliding_window"},
        {"name": "api", "key": "user-4", "limit": 1, "duration_ms": 1, "burst": None, "algorithm": None},
    ]})
    write_json(t, "empty.json", {"requests": []})
    write_json(t, "invalid-unknown-field.json", {"requests": [
        {"name": "a", "key": "b", "limit": 1, "duration_ms": 1, "behavior": "GLOBAL"}
    ]})
    write_json(t, "invalid-negative-hits.json", {"requests": [{"name": "a", "key": "b", "hits": -1, "limit": 1, "duration_ms": 1}]})


if __name__ == "__main__":
    wire_envelope()
    internal_body()
    raft_proposal()
    gossip_packet()
    eval_spec()
    json_schema()
    ratelimit_body()
    for d in sorted(CORPUS.iterdir()):
        files = list(d.iterdir())
        print(f"{d.name}: {len(files)} seeds, {sum(f.stat().st_size for f in files)} bytes")
