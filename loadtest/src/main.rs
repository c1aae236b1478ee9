//! The load-test harness (being written).

fn main() {}
