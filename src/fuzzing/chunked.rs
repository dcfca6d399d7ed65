//! Target `chunked`: HTTP/1.1 chunked bodies, as the direct reader (`client::h1`) decodes
//! them, cut into reads at arbitrary points: well-formed ones (random chunk sizes, hex case,
//! extensions, trailers, bare LFs) and the same with one byte changed or cut short.
//! Properties: no panic; the outcome (the decoded bytes, whether the body ended, the bytes
//! used, or a framing error) does not depend on where the reads were cut; a well-formed body
//! decodes to exactly what was encoded, and nothing after its end is used.

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestCaseResult;

use crate::client::h1::decode_chunked;

/// A body and how it is framed: chunk sizes (cycled), upper-case hex, an extension on every
/// chunk, a trailer, bare LF line ends.
#[derive(Debug, Clone)]
struct Framing {
    body: Vec<u8>,
    sizes: Vec<usize>,
    upper: bool,
    extension: bool,
    trailer: bool,
    bare_lf: bool,
}

fn framing() -> impl Strategy<Value = Framing> {
    (
        prop::collection::vec(any::<u8>(), 0..400),
        prop::collection::vec(1usize..300, 1..6),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(body, sizes, upper, extension, trailer, bare_lf)| Framing {
                body,
                sizes,
                upper,
                extension,
                trailer,
                bare_lf,
            },
        )
}

/// The wire bytes of `framing`.
fn encode(framing: &Framing) -> Vec<u8> {
    let end = if framing.bare_lf { "\n" } else { "\r\n" };
    let mut wire = Vec::new();
    let mut rest = framing.body.as_slice();
    let mut sizes = framing.sizes.iter().cycle();
    while !rest.is_empty() {
        let size = (*sizes.next().unwrap_or(&1)).min(rest.len());
        let hex = if framing.upper {
            format!("{size:X}")
        } else {
            format!("{size:x}")
        };
        let ext = if framing.extension { ";a=b" } else { "" };
        wire.extend_from_slice(format!("{hex}{ext}{end}").as_bytes());
        wire.extend_from_slice(&rest[..size]);
        wire.extend_from_slice(end.as_bytes());
        rest = &rest[size..];
    }
    wire.extend_from_slice(format!("0{end}").as_bytes());
    if framing.trailer {
        wire.extend_from_slice(format!("x-t: 1{end}").as_bytes());
    }
    wire.extend_from_slice(end.as_bytes());
    wire
}

/// What decoding `wire` in reads cut at `cuts` gives: the bytes, whether the body ended and
/// the bytes used, or the framing error. Decoding stops at the first error or at the end.
fn decode(wire: &[u8], cuts: &[usize]) -> Result<(Vec<u8>, bool, usize), &'static str> {
    let mut at: Vec<usize> = cuts.iter().map(|&c| c % (wire.len() + 1)).collect();
    at.push(0);
    at.push(wire.len());
    at.sort_unstable();
    let mut state = Default::default();
    let mut out = Vec::new();
    let mut used = 0;
    for read in at.windows(2).map(|w| &wire[w[0]..w[1]]) {
        let (n, ended) = decode_chunked(&mut state, read, &mut out)?;
        used += n;
        if ended {
            return Ok((out, true, used));
        }
    }
    Ok((out, false, used))
}

fn check(wire: &[u8], cuts: &[usize]) -> TestCaseResult {
    let whole = decode(wire, &[]);
    let split = decode(wire, cuts);
    prop_assert_eq!(&whole, &split, "reads cut at {:?}", cuts);
    let bytewise = decode(wire, &(0..=wire.len()).collect::<Vec<_>>());
    prop_assert_eq!(&whole, &bytewise, "read byte by byte");
    if let Ok((_, ended, used)) = &whole {
        prop_assert!(*used <= wire.len());
        prop_assert!(!*ended || *used > 0);
    }
    Ok(())
}

/// A kept input: the wire, decoded whole, byte by byte and cut once at every point.
fn replay(wire: &[u8]) -> TestCaseResult {
    for cut in 0..=wire.len() {
        check(wire, &[cut])?;
    }
    Ok(())
}

#[test]
fn chunked_bodies_cut_anywhere_decode_the_same() {
    super::fuzz(
        "chunked",
        (
            framing(),
            prop::collection::vec(any::<usize>(), 0..12),
            prop_oneof![3 => Just(None), 1 => any::<(Index, u8)>().prop_map(Some)],
            prop::option::weighted(0.2, any::<Index>()),
            prop::collection::vec(any::<u8>(), 0..8),
        ),
        |(framing, _, change, cut, after)| mutated(framing, *change, *cut, after),
        replay,
        |(framing, cuts, change, cut, after)| {
            let wire = mutated(&framing, change, cut, &after);
            check(&wire, &cuts)?;
            if change.is_none() && cut.is_none() {
                // Well-formed: exactly the body, ended, and the bytes after it unused.
                let encoded = encode(&framing).len();
                prop_assert_eq!(
                    decode(&wire, &cuts),
                    Ok((framing.body.clone(), true, encoded))
                );
            }
            Ok(())
        },
    );
}

/// `framing`'s wire with one byte changed, cut short, and `after` appended (what a server
/// might send past the body's end).
fn mutated(
    framing: &Framing,
    change: Option<(Index, u8)>,
    cut: Option<Index>,
    after: &[u8],
) -> Vec<u8> {
    let mut wire = encode(framing);
    if let Some((at, byte)) = change {
        let at = at.index(wire.len());
        wire[at] = byte;
    }
    if let Some(at) = cut {
        wire.truncate(at.index(wire.len()));
    }
    wire.extend_from_slice(after);
    wire
}
