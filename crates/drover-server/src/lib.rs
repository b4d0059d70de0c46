//! drover-server (being built).
