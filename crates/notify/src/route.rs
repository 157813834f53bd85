//! Routing, batching and rate limiting.
