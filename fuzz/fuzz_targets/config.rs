//! config.json as `create` reads it: parsed and validated (`kiln::check_config`), no system
//! call made. Besides a panic or a hang, a refusal whose line is not one short line is a
//! finding: that line is what a user reads on stderr and in the --log file.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(line) = kiln::check_config(data) {
        assert!(
            !line.contains(|c: char| c.is_control()),
            "a control character in: {line:?}"
        );
        assert!(line.len() <= 512, "{} bytes: {line:?}", line.len());
    }
});
