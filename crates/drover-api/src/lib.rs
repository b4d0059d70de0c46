//! drover-api (being built).
