//! drover-raft (being built).
