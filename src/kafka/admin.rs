//! `hygroflow topic create|describe`: topics, partitions, end offsets and consumer-group lag.
//! (Being written.)
