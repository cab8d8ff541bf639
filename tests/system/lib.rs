//! System tests live in `tests/`; this library is empty so the package has a target.
