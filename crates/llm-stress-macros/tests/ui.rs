//! Misused attributes are compile errors at the user's span (trybuild compares the
//! compiler's output with `tests/ui/*.stderr`; `TRYBUILD=overwrite` rewrites them). The cases
//! use the macros crate directly, so trybuild builds no more than it (seconds, not the whole
//! harness): on an error the attribute emits only the error.

#[test]
fn misuse_is_a_compile_error_at_the_users_span() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
