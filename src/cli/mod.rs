//! Command line interface.

pub mod placeholders;
pub mod timefmt;

pub fn main() -> i32 {
    0
}
