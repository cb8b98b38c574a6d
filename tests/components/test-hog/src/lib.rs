//! `test-hog`: `handle-event` allocates 1 MiB chunks forever and writes to every
//! page of each, so the memory is really used, until the host's memory limit
//! refuses to grow the memory and the allocation failure traps.

use recoco_connector_sdk::{Connector, Context, Error, Event, Manifest};

/// Size of one allocation.
const CHUNK_BYTES: usize = 1 << 20;
/// WebAssembly page size: one write per page touches all of the chunk.
const PAGE_BYTES: usize = 64 << 10;

/// The connector.
pub struct Hog;

impl Connector for Hog {
    fn manifest() -> Manifest {
        Manifest::new("test-hog", env!("CARGO_PKG_VERSION"))
            .description("Test component: allocates memory without bound.")
            .subscribe("*")
    }

    fn handle_event(_ctx: &Context, _event: &Event) -> Result<String, Error> {
        let mut chunks: Vec<Vec<u8>> = Vec::new();
        loop {
            let mut chunk = vec![0u8; CHUNK_BYTES];
            for offset in (0..CHUNK_BYTES).step_by(PAGE_BYTES) {
                chunk[offset] = 1;
            }
            chunks.push(std::hint::black_box(chunk));
        }
    }
}

recoco_connector_sdk::export_connector!(Hog);
