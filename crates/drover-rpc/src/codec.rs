//! [`MsgpackCodec`]: tonic messages as msgpack maps.
//!
//! ```text
//!  T: Serialize ──write_named──▶ msgpack map {"NodeID": "...", ...} ──gRPC frame──▶
//!  ──▶ strict rmp_serde::from_slice::<T>  ──ok──▶ T
//!            └─ error ─▶ msgpack → serde_json::Value → drover_types::codec (lenient) ─▶ T
//! ```
//!
//! # Why named maps
//! Fields are written by name (`rmp_serde::encode::write_named`), never as positional arrays:
//! `#[serde(default)]`, `skip_serializing_if` and adding a field later all keep working, and an
//! older peer ignores fields it does not know.
//!
//! # Why a lenient fallback
//! The data model writes empty collections as nil (Go's habit, for the HTTP API), and serde's
//! derived impls reject nil where a `Vec` or a map is expected. Messages without such fields (a
//! heartbeat) decode strictly in one pass; anything else that fails strictly is decoded a
//! second time through a JSON value and `drover_types::codec`, which reads nil as "unset" —
//! the same route `drover-state` uses for the Raft log. The cost is one extra tree per message
//! carrying nodes or allocations; see the crate docs for the numbers.

use std::marker::PhantomData;

use bytes::{Buf, BufMut};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

/// Initial (and growth step of the) per-call buffers. tonic's default is 8 KiB per call and
/// direction; most of our messages (heartbeats, alloc maps) are a few hundred bytes, and a
/// process with 5,000 parked blocking queries pays this 10,000 times.
const BUFFER_SIZE: usize = 1024;
/// Streaming only: how much is batched before a send (tonic's default).
const YIELD_THRESHOLD: usize = 32 * 1024;

/// Encodes `E` and decodes `D` as msgpack maps. `E` is what this side sends, `D` what it
/// receives (a server's codec is `MsgpackCodec<Response, Request>`).
#[derive(Debug)]
pub struct MsgpackCodec<E, D>(PhantomData<fn(E) -> D>);

impl<E, D> Default for MsgpackCodec<E, D> {
    fn default() -> Self {
        MsgpackCodec(PhantomData)
    }
}

impl<E, D> Codec for MsgpackCodec<E, D>
where
    E: Serialize + Send + 'static,
    D: DeserializeOwned + Send + 'static,
{
    type Encode = E;
    type Decode = D;
    type Encoder = MsgpackEncoder<E>;
    type Decoder = MsgpackDecoder<D>;

    fn encoder(&mut self) -> Self::Encoder {
        MsgpackEncoder(PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        MsgpackDecoder(PhantomData)
    }
}

/// The encoding half of [`MsgpackCodec`].
#[derive(Debug)]
pub struct MsgpackEncoder<E>(PhantomData<fn(E)>);

impl<E: Serialize> Encoder for MsgpackEncoder<E> {
    type Item = E;
    type Error = Status;

    fn encode(&mut self, item: E, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        rmp_serde::encode::write_named(&mut dst.writer(), &item)
            .map_err(|e| Status::internal(format!("msgpack encode: {e}")))
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::new(BUFFER_SIZE, YIELD_THRESHOLD)
    }
}

/// The decoding half of [`MsgpackCodec`].
#[derive(Debug)]
pub struct MsgpackDecoder<D>(PhantomData<fn() -> D>);

impl<D: DeserializeOwned> Decoder for MsgpackDecoder<D> {
    type Item = D;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<D>, Status> {
        let bytes = src.copy_to_bytes(src.remaining());
        decode(&bytes).map(Some).map_err(Status::internal)
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::new(BUFFER_SIZE, YIELD_THRESHOLD)
    }
}

/// Encodes a value the way [`MsgpackCodec`] does (for tests and other transports).
pub fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, String> {
    rmp_serde::to_vec_named(v).map_err(|e| format!("msgpack encode: {e}"))
}

/// Decodes what [`encode`] wrote: strictly when possible, leniently (nil = unset, keys matched
/// case-insensitively) otherwise.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    match rmp_serde::from_slice::<T>(bytes) {
        Ok(v) => Ok(v),
        Err(strict) => {
            let value: serde_json::Value =
                rmp_serde::from_slice(bytes).map_err(|e| format!("msgpack decode: {e}"))?;
            drover_types::codec::from_value(value)
                .map_err(|e| format!("msgpack decode: {e} (strict: {strict})"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use drover_types::alloc::TaskState;
    use drover_types::{Allocation, Node};
    use serde::Deserialize;

    #[test]
    fn nil_collections_written_by_the_model_decode_as_empty() {
        let node = Node {
            id: "n1".into(),
            name: "sim-00001".into(),
            ..Default::default()
        };
        let bytes = encode(&node).expect("encode");
        // The model writes empty maps as nil, so the strict path must fail...
        assert!(rmp_serde::from_slice::<Node>(&bytes).is_err());
        // ...and the lenient one gives the node back.
        assert_eq!(decode::<Node>(&bytes).expect("decode"), node);
    }

    #[test]
    fn allocations_with_task_states_round_trip() {
        let mut a = Allocation {
            id: "a1".into(),
            client_status: "running".into(),
            ..Default::default()
        };
        a.task_states.insert(
            "web".into(),
            TaskState {
                state: "running".into(),
                ..Default::default()
            },
        );
        let back: Allocation = decode(&encode(&a).expect("encode")).expect("decode");
        assert_eq!(back, a);
    }

    #[test]
    fn fields_are_named_so_old_and_new_peers_understand_each_other() {
        #[derive(Serialize)]
        #[serde(rename_all = "PascalCase")]
        struct V2 {
            node_id: String,
            added_later: u64,
        }
        #[derive(Deserialize, Debug)]
        #[serde(default, rename_all = "PascalCase")]
        #[derive(Default)]
        struct V1 {
            node_id: String,
            status: String,
        }
        let v1: V1 = decode(
            &encode(&V2 {
                node_id: "n".into(),
                added_later: 7,
            })
            .expect("encode"),
        )
        .expect("decode");
        assert_eq!(v1.node_id, "n");
        assert_eq!(v1.status, "");
    }
}
