//! Allocator settings, applied first thing in `main`, before any other thread exists.
//!
//! glibc gives a thread its own arena when it meets another in the shared one, up to eight
//! per core, and memory freed into an arena is reused only by allocations served from it.
//! Records are built and freed on a receiver's thread (`centimane_core::recycle`) while
//! request buffers come from the runtime's threads, so with several arenas each keeps its
//! own free memory: peak RSS of the ingest benchmarks was 5–10 MB (10–20%) higher for no
//! measurable CPU (`benches/README.md`). So the agent uses one arena, unless whoever runs
//! it chose otherwise through `MALLOC_ARENA_MAX` or `GLIBC_TUNABLES`.

/// Applies the settings above; must run before other threads start.
pub fn configure() {
    #[cfg(all(target_os = "linux", target_env = "gnu", not(feature = "mimalloc")))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none()
        && std::env::var_os("GLIBC_TUNABLES").is_none()
    {
        // SAFETY: mallopt sets an allocator parameter and touches no Rust-visible memory;
        // no other thread is allocating yet. A refusal (0) leaves glibc's default.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 1);
        }
    }
}
