//! drover-http (being built).
