//! Internal-transport bodies (cluster/src/transport/wire.rs): the rmp-serde `Envelope`
//! every Raft RPC, forwarded write and read-index request, and every answer to them,
//! travels in between nodes.
//!
//! Every input is decoded with `transport::wire::decode`, the function the internal
//! listener (`InternalState::open`) and the peer client (`PeerClient::call`) use, as each
//! body type the node reads:
//! - requests: `AppendEntriesRequest`, `VoteRequest`, `InstallSnapshotRequest` (with
//!   Colony's `TypeConfig`: entries carry `Proposal`s), `Proposal` (forwarded write) and
//!   `()` (read index);
//! - answers: the three Raft RPC results, `WriteReply` and `ReadIndexReply`.
//!
//! When a decode succeeds, `wire::encode` must encode the body, the encoding must decode
//! with the current version and the same sender, and re-encode to the same bytes.
//! (Byte equality rather than `==`: not every openraft type implements `PartialEq`, and a
//! NaN in a proposal would make `==` fail anyway.)
#![no_main]

use colony_cluster::raft::{NodeId, TypeConfig};
use colony_cluster::transport::wire::{self, ReadIndexReply, WriteReply, WIRE_VERSION};
use colony_core::command::Proposal;
use libfuzzer_sys::fuzz_target;
use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::any::type_name;

fn roundtrip<T: Serialize + DeserializeOwned>(data: &[u8]) {
    let Ok(env) = wire::decode::<T>(data) else {
        return;
    };
    let bytes = match wire::encode(env.from, &env.body) {
        Ok(b) => b,
        Err(e) => panic!("a decoded {} does not encode: {e}", type_name::<T>()),
    };
    let again = match wire::decode::<T>(&bytes) {
        Ok(a) => a,
        Err(e) => panic!("a re-encoded {} does not decode: {e}", type_name::<T>()),
    };
    assert_eq!(again.v, WIRE_VERSION);
    assert_eq!(again.from, env.from);
    let bytes2 = match wire::encode(again.from, &again.body) {
        Ok(b) => b,
        Err(e) => panic!("a re-decoded {} does not encode: {e}", type_name::<T>()),
    };
    assert_eq!(
        bytes,
        bytes2,
        "{}: encode(decode(encode(x))) != encode(x)",
        type_name::<T>()
    );
}

fuzz_target!(|data: &[u8]| {
    // What the internal listener reads (server.rs).
    roundtrip::<AppendEntriesRequest<TypeConfig>>(data);
    roundtrip::<VoteRequest<NodeId>>(data);
    roundtrip::<InstallSnapshotRequest<TypeConfig>>(data);
    roundtrip::<Proposal>(data);
    roundtrip::<()>(data);
    // What the peer client reads back (raft/network.rs, node.rs).
    roundtrip::<Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>>(data);
    roundtrip::<Result<VoteResponse<NodeId>, RaftError<NodeId>>>(data);
    roundtrip::<Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>>(
        data,
    );
    roundtrip::<WriteReply>(data);
    roundtrip::<ReadIndexReply>(data);
});
