//! Links `peapod` as a position-dependent executable (`-no-pie`).
//!
//! Why: every Pod's shim is this binary re-executed. In a position-independent executable the dynamic loader
//! relocates `.data.rel.ro` and `.got` (about 1.5 MiB here) in every process, so each shim carried that much private
//! dirty memory; at a fixed address those pages stay clean and shared (measured: shim PSS 2.6 MiB → 1.55 MiB, debug
//! build). The cost is that the executable's own image is not address-randomised (libraries, heap, stack and mmap
//! still are) — the same trade Go makes for containerd, its shims, runc and the kubelet, which are non-PIE on amd64.
fn main() {
    println!("cargo:rustc-link-arg-bins=-no-pie");
    println!("cargo:rerun-if-changed=build.rs");
}
