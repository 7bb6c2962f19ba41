//! Unit tests of the membership state machine, driven message by message.
