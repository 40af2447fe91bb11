//! Allocator settings, applied first thing in `main`, before any other thread exists.
//!
//! glibc gives a thread its own arena when it meets another in the shared one, up to eight
//! per core, and memory freed into an arena is reused only by allocations served from it.
//! Records are built and freed on a receiver's thread (`centimane_core::recycle`) while
//! request buffers come from the runtime's threads, so with several arenas each keeps its
//! own free memory: peak RSS of the ingest benchmarks was 5–10 MB (10–20%) higher for no
//! measurable CPU (`benches/README.md`). So the agent uses one arena.
//!
//! A batch's records and its request buffer are megabytes, allocated and freed every
//! batch. glibc serves such blocks with `mmap` below a threshold it raises as they are
//! freed (up to 32 MiB), and gives the heap's top back to the system past twice that; until
//! it has settled, each batch maps, unmaps and trims again, and every page comes back as a
//! page fault (5,000 to 46,000 per million json-ingest lines, varying run to run; 5,500 to
//! 6,700 with the thresholds set). So the agent starts at the values glibc would settle
//! on: blocks up to 32 MiB from the heap, trimmed past 64 MiB free.
//!
//! Whoever runs the agent can choose otherwise through glibc's own variables: a setting
//! is left alone when its variable (`MALLOC_ARENA_MAX`, `MALLOC_MMAP_THRESHOLD_`,
//! `MALLOC_TRIM_THRESHOLD_`) is set, and all of them when `GLIBC_TUNABLES` is.

/// glibc's ceiling for its dynamic mmap threshold on 64-bit systems.
#[cfg(all(target_os = "linux", target_env = "gnu", not(feature = "mimalloc")))]
const MMAP_THRESHOLD: libc::c_int = 32 << 20;

/// Twice [`MMAP_THRESHOLD`], as glibc sets it when it raises that threshold.
#[cfg(all(target_os = "linux", target_env = "gnu", not(feature = "mimalloc")))]
const TRIM_THRESHOLD: libc::c_int = 64 << 20;

/// Applies the settings above; must run before other threads start.
pub fn configure() {
    #[cfg(all(target_os = "linux", target_env = "gnu", not(feature = "mimalloc")))]
    {
        let chosen = |name: &str| std::env::var_os(name).is_some();
        if chosen("GLIBC_TUNABLES") {
            return;
        }
        for (variable, param, value) in [
            ("MALLOC_ARENA_MAX", libc::M_ARENA_MAX, 1),
            (
                "MALLOC_MMAP_THRESHOLD_",
                libc::M_MMAP_THRESHOLD,
                MMAP_THRESHOLD,
            ),
            (
                "MALLOC_TRIM_THRESHOLD_",
                libc::M_TRIM_THRESHOLD,
                TRIM_THRESHOLD,
            ),
        ] {
            if !chosen(variable) {
                // SAFETY: mallopt sets an allocator parameter and touches no Rust-visible
                // memory; no other thread is allocating yet. A refusal (0) leaves glibc's
                // default.
                unsafe {
                    libc::mallopt(param, value);
                }
            }
        }
    }
}
