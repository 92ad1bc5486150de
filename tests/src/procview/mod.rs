//! The process table the tests read: `/proc` on Linux, libproc on macOS.
//! Both export the same names.

#[cfg(target_os = "linux")]
#[path = "linux.rs"]
mod imp;

#[cfg(target_os = "macos")]
#[path = "macos.rs"]
mod imp;

pub use imp::*;
