//! The connect function's dispatcher on arbitrary bytes: `stara_connect::fuzzing::dispatch`
//! (shared/src/fuzzing.rs) says what is run and which invariants are checked.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| stara_connect::fuzzing::dispatch(data));
