//! `hygroflow produce`: JSON lines into a topic, keyed by `guid`. (Being written.)
