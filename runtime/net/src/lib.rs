//! `hearsay-net`: the only crate that opens sockets. It drives the sans-io membership core over
//! tokio UDP and TCP, and offers an in-memory transport with the same contract for tests.
