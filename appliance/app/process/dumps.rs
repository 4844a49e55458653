//! No pixels on disk after a crash. A crash in a decoder or in ONNX Runtime
//! would otherwise let the kernel write the process's memory, raw frames
//! included, to a core file. At start, before any frame exists, the process
//! sets its core size limit to 0 (soft and hard, inherited by what it runs)
//! and clears its dumpable flag, which stops core dumps whatever the limit
//! or `core_pattern`, and keeps other processes of the same user from
//! tracing it or reading its memory. The unit adds `LimitCORE=0` and
//! `MemorySwapMax=0` (no frame is swapped out to disk either).

use rustix::process::{self, DumpableBehavior, Resource, Rlimit};

pub fn forbid() -> std::io::Result<()> {
    let none = Rlimit {
        current: Some(0),
        maximum: Some(0),
    };
    process::setrlimit(Resource::Core, none)?;
    process::set_dumpable_behavior(DumpableBehavior::NotDumpable)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_process_is_then_not_dumpable_and_may_write_no_core() {
        forbid().unwrap();
        assert_eq!(
            process::dumpable_behavior().unwrap(),
            DumpableBehavior::NotDumpable
        );
        let limit = process::getrlimit(Resource::Core);
        assert_eq!((limit.current, limit.maximum), (Some(0), Some(0)));
    }
}
