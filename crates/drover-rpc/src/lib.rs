//! drover-rpc (being built).
