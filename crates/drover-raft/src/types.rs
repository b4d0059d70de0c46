//! The openraft type configuration and the two application types it carries: the log payload
//! ([`LogCommand`]) and the state machine's reply ([`FsmResponse`]).
//!
//! ```text
//!  drover_state::Command ──LogCommand──▶ Entry<TypeConfig>::Normal ──msgpack──▶ redb / network
//!  StateStore::apply ──▶ FsmResponse::{Applied(ApplyOutcome), Rejected(msg), Empty} ──▶ write()
//! ```
//!
//! Everything openraft-specific stays inside this crate: the server sees [`crate::RaftNode`].

use std::fmt;
use std::io::Cursor;

use drover_state::{ApplyOutcome, Command};
use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

openraft::declare_raft_types!(
    /// Drover's Raft types: u64 node ids, `BasicNode { addr }`, snapshots as in-memory bytes.
    pub TypeConfig:
        D = LogCommand,
        R = FsmResponse,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A log entry as stored and replicated.
pub type Entry = openraft::Entry<TypeConfig>;
/// A log position (term + index).
pub type LogId = openraft::LogId<u64>;
/// A vote (term + candidate + committed flag).
pub type Vote = openraft::Vote<u64>;
/// Membership with the log id that introduced it.
pub type StoredMembership = openraft::StoredMembership<u64, openraft::BasicNode>;
/// What describes a snapshot.
pub type SnapshotMeta = openraft::SnapshotMeta<u64, openraft::BasicNode>;
/// openraft's storage error for our node id.
pub type StorageError = openraft::StorageError<u64>;
/// The openraft handle.
pub type Raft = openraft::Raft<TypeConfig>;

/// One FSM command inside a Raft entry.
///
/// It is encoded as a msgpack *binary* holding [`Command::to_bytes`] and decoded with
/// [`Command::from_bytes`]: the model writes empty collections as nil, which only the model's
/// lenient decoder reads, so the command keeps its own encoding inside the entry's.
#[derive(Debug, Clone, PartialEq)]
pub struct LogCommand(pub Command);

impl fmt::Display for LogCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name())
    }
}

impl Serialize for LogCommand {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let bytes = self.0.to_bytes().map_err(serde::ser::Error::custom)?;
        serializer.serialize_bytes(&bytes)
    }
}

impl<'de> Deserialize<'de> for LogCommand {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BytesVisitor;

        impl<'de> Visitor<'de> for BytesVisitor {
            type Value = LogCommand;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an encoded drover command (bytes)")
            }

            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<LogCommand, E> {
                Command::from_bytes(v).map(LogCommand).map_err(E::custom)
            }

            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<LogCommand, E> {
                self.visit_bytes(&v)
            }

            // Self-describing formats without a bytes type (JSON) write a sequence of u8.
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<LogCommand, A::Error> {
                let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(b) = seq.next_element::<u8>()? {
                    v.push(b);
                }
                self.visit_bytes(&v)
            }
        }

        deserializer.deserialize_bytes(BytesVisitor)
    }
}

/// What the state machine returns for one entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FsmResponse {
    /// A blank or membership entry: nothing for the client.
    Empty,
    /// The command was applied.
    Applied(ApplyOutcome),
    /// The state store rejected the command (deterministic on every replica; nothing changed).
    Rejected(String),
}
