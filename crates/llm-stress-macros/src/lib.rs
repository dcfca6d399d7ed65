//! The attribute macros of `llm-stress`: `#[llm_stress::perf]`, `#[llm_stress::stress]` and
//! `#[llm_stress::accuracy]` on `async fn NAME(t: Trial) -> TrialResult`. Use them through the
//! `llm-stress` crate, which re-exports them; this crate only turns the attribute into a
//! registration (a `linkme` distributed-slice element, collected by `llm_stress::main!()`).
//!
//! Misuse is a compile error at the user's span: an unknown argument (with the closest known
//! name), a value of the wrong shape, a function that is not `async`, or one that does not
//! take exactly one argument and return a value.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, ItemFn, Lit, MetaNameValue, ReturnType, Token};

/// A load trial without accuracy questions, one per combination of its matrix.
///
/// Arguments (all optional): `case = "stress-cases/chat.yaml"` (relative to the crate root),
/// matrix lists `isl = [..]`, `osl = [..]`, `concurrency = [..]`, `rate = [..]`,
/// `users = [..]` overriding the case's, `cases = [("short", 128, 64), ..]` (named ISL/OSL
/// pairs instead of a cross product), `ignore = "reason"`, `expect = "fail"`,
/// `tags = ["nightly"]`.
#[proc_macro_attribute]
pub fn perf(args: TokenStream, item: TokenStream) -> TokenStream {
    expand("Perf", args.into(), item.into()).into()
}

/// A load trial that also asks the case's accuracy questions while the load runs. Arguments
/// as for [`macro@perf`].
#[proc_macro_attribute]
pub fn stress(args: TokenStream, item: TokenStream) -> TokenStream {
    expand("Stress", args.into(), item.into()).into()
}

/// The case's accuracy task alone, with no load. Arguments as for [`macro@perf`].
#[proc_macro_attribute]
pub fn accuracy(args: TokenStream, item: TokenStream) -> TokenStream {
    expand("Accuracy", args.into(), item.into()).into()
}

/// The argument names an attribute accepts.
const ARGUMENTS: [&str; 10] = [
    "case",
    "isl",
    "osl",
    "concurrency",
    "rate",
    "users",
    "cases",
    "ignore",
    "expect",
    "tags",
];

/// What the attribute says, checked.
#[derive(Default)]
struct Args {
    case: Option<String>,
    isl: Vec<u32>,
    osl: Vec<u32>,
    concurrency: Vec<u32>,
    rate: Vec<f64>,
    users: Vec<u32>,
    cases: Vec<(String, u32, u32)>,
    ignore: Option<String>,
    expect_fail: bool,
    tags: Vec<String>,
}

fn expand(kind: &str, args: TokenStream2, item: TokenStream2) -> TokenStream2 {
    match try_expand(kind, args, item) {
        Ok(tokens) => tokens,
        // Only the error: the function is not emitted, so no second error about its types.
        Err(e) => e.to_compile_error(),
    }
}

fn try_expand(kind: &str, args: TokenStream2, item: TokenStream2) -> syn::Result<TokenStream2> {
    let function: ItemFn = syn::parse2(item)?;
    let parser = Punctuated::<MetaNameValue, Token![,]>::parse_terminated;
    let pairs = syn::parse::Parser::parse2(parser, args)?;
    let args = parse_args(pairs)?;
    check_signature(&function)?;

    let name = &function.sig.ident;
    let name_text = name.to_string();
    let kind = format_ident!("{}", kind);
    let registration = format_ident!("__LLM_STRESS_TRIAL_{}", name_text.to_uppercase());
    let case = option_str(args.case.as_deref());
    let ignore = option_str(args.ignore.as_deref());
    let Args {
        isl,
        osl,
        concurrency,
        rate,
        users,
        expect_fail,
        tags,
        ..
    } = &args;
    let cases = args.cases.iter().map(|(label, isl, osl)| {
        quote! { (#label, #isl, #osl) }
    });
    Ok(quote! {
        #function

        #[::llm_stress::__private::linkme::distributed_slice(::llm_stress::__private::TRIALS)]
        #[linkme(crate = ::llm_stress::__private::linkme)]
        #[doc(hidden)]
        #[allow(non_upper_case_globals)]
        static #registration: ::llm_stress::trial::Registration =
            ::llm_stress::trial::Registration {
                function: #name_text,
                kind: ::llm_stress::trial::AttrKind::#kind,
                case: #case,
                manifest_dir: ::core::env!("CARGO_MANIFEST_DIR"),
                isl: &[#(#isl),*],
                osl: &[#(#osl),*],
                concurrency: &[#(#concurrency),*],
                rate: &[#(#rate),*],
                users: &[#(#users),*],
                cases: &[#(#cases),*],
                ignore: #ignore,
                expect_fail: #expect_fail,
                tags: &[#(#tags),*],
                file: ::core::file!(),
                line: ::core::line!(),
                body: |t| ::std::boxed::Box::pin(#name(t)),
            };
    })
}

fn option_str(value: Option<&str>) -> TokenStream2 {
    match value {
        Some(text) => quote! { ::core::option::Option::Some(#text) },
        None => quote! { ::core::option::Option::None },
    }
}

/// `async fn NAME(t: Trial) -> TrialResult`: async, one argument, no `self`, no generics, a
/// return type. The types themselves are checked by the compiler where the function is
/// registered.
fn check_signature(function: &ItemFn) -> syn::Result<()> {
    let sig = &function.sig;
    if sig.asyncness.is_none() {
        return Err(syn::Error::new_spanned(
            sig.fn_token,
            "a trial must be an `async fn NAME(t: Trial) -> TrialResult`: add `async`",
        ));
    }
    if !sig.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &sig.generics,
            "a trial function takes no generic parameters",
        ));
    }
    let one_typed =
        sig.inputs.len() == 1 && matches!(sig.inputs.first(), Some(syn::FnArg::Typed(_)));
    if !one_typed {
        let span_of: &dyn quote::ToTokens = if sig.inputs.is_empty() {
            &sig.ident
        } else {
            &sig.inputs
        };
        return Err(syn::Error::new_spanned(
            span_of,
            "a trial function takes exactly one argument, `t: Trial`",
        ));
    }
    if let ReturnType::Default = sig.output {
        return Err(syn::Error::new_spanned(
            &sig.inputs,
            "a trial function returns `TrialResult`: add `-> TrialResult`",
        ));
    }
    Ok(())
}

fn parse_args(pairs: Punctuated<MetaNameValue, Token![,]>) -> syn::Result<Args> {
    let mut args = Args::default();
    let mut seen: Vec<String> = Vec::new();
    for pair in pairs {
        let key = pair
            .path
            .get_ident()
            .map(ToString::to_string)
            .ok_or_else(|| syn::Error::new_spanned(&pair.path, "expected an argument name"))?;
        if seen.contains(&key) {
            return Err(syn::Error::new_spanned(
                &pair.path,
                format!("argument `{key}` is given twice"),
            ));
        }
        let value = &pair.value;
        match key.as_str() {
            "case" => args.case = Some(string(value)?),
            "isl" => args.isl = positive_list(value)?,
            "osl" => args.osl = positive_list(value)?,
            "concurrency" => args.concurrency = positive_list(value)?,
            "users" => args.users = positive_list(value)?,
            "rate" => args.rate = rate_list(value)?,
            "cases" => args.cases = cases_list(value)?,
            "ignore" => args.ignore = Some(string(value)?),
            "expect" => {
                let text = string(value)?;
                args.expect_fail = match text.as_str() {
                    "fail" => true,
                    "pass" => false,
                    _ => {
                        return Err(syn::Error::new_spanned(
                            value,
                            "`expect` is \"pass\" or \"fail\"",
                        ));
                    }
                };
            }
            "tags" => args.tags = list(value, string)?,
            _ => {
                let hint = closest(&key)
                    .map(|k| format!(" (did you mean `{k}`?)"))
                    .unwrap_or_default();
                return Err(syn::Error::new_spanned(
                    &pair.path,
                    format!(
                        "unknown argument `{key}`{hint}; expected one of: {}",
                        ARGUMENTS.join(", ")
                    ),
                ));
            }
        }
        seen.push(key);
    }
    if !args.rate.is_empty() && !args.users.is_empty() {
        return Err(syn::Error::new(
            Span::call_site(),
            "`rate` (open loop) and `users` (virtual users) cannot both be given",
        ));
    }
    if !args.cases.is_empty() && (!args.isl.is_empty() || !args.osl.is_empty()) {
        return Err(syn::Error::new(
            Span::call_site(),
            "`cases` names ISL/OSL pairs: give it instead of `isl` and `osl`",
        ));
    }
    Ok(args)
}

/// The known argument closest to a misspelt one (at most two edits away).
fn closest(key: &str) -> Option<&'static str> {
    ARGUMENTS
        .iter()
        .map(|k| (edit_distance(key, k), *k))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(previous + 1);
        }
    }
    row[b.len()]
}

fn string(value: &Expr) -> syn::Result<String> {
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Ok(s.value()),
        _ => Err(syn::Error::new_spanned(value, "expected a string literal")),
    }
}

fn list<T>(value: &Expr, item: impl Fn(&Expr) -> syn::Result<T>) -> syn::Result<Vec<T>> {
    match value {
        Expr::Array(array) if !array.elems.is_empty() => array.elems.iter().map(item).collect(),
        _ => Err(syn::Error::new_spanned(
            value,
            "expected a non-empty list, such as `[1, 8]`",
        )),
    }
}

fn positive(value: &Expr) -> syn::Result<u32> {
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Int(i), ..
        }) => match i.base10_parse::<u32>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(syn::Error::new_spanned(
                value,
                "expected a whole number of at least 1",
            )),
        },
        _ => Err(syn::Error::new_spanned(
            value,
            "expected a whole number of at least 1",
        )),
    }
}

fn positive_list(value: &Expr) -> syn::Result<Vec<u32>> {
    list(value, positive)
}

fn rate_list(value: &Expr) -> syn::Result<Vec<f64>> {
    list(value, |v| {
        let rate = match v {
            Expr::Lit(ExprLit {
                lit: Lit::Int(i), ..
            }) => i.base10_parse::<f64>().ok(),
            Expr::Lit(ExprLit {
                lit: Lit::Float(f), ..
            }) => f.base10_parse::<f64>().ok(),
            _ => None,
        };
        rate.filter(|r| r.is_finite() && *r > 0.0)
            .ok_or_else(|| syn::Error::new_spanned(v, "expected a rate above 0 (requests/s)"))
    })
}

fn cases_list(value: &Expr) -> syn::Result<Vec<(String, u32, u32)>> {
    list(value, |v| match v {
        Expr::Tuple(tuple) if tuple.elems.len() == 3 => {
            let label = string(&tuple.elems[0])?;
            let ok = !label.is_empty()
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !ok {
                return Err(syn::Error::new_spanned(
                    &tuple.elems[0],
                    "a case label uses only letters, digits, `-` and `_`",
                ));
            }
            Ok((
                label,
                positive(&tuple.elems[1])?,
                positive(&tuple.elems[2])?,
            ))
        }
        _ => Err(syn::Error::new(
            v.span(),
            "expected a named case `(\"label\", isl, osl)`",
        )),
    })
}
