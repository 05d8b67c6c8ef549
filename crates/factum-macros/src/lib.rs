//! # factum-macros
//!
//! Derive macros for Factum domains, re-exported by `factum-core` and `factum`.
//!
//! `#[derive(Event)]` implements `Event` from what the type already says to serde, so an
//! event's stored name is written once:
//! - `event_type()` of an enum variant is the name serde writes for it: the variant's
//!   `#[serde(rename = "...")]`, else the variant name under the enum's
//!   `#[serde(rename_all = "...")]`, else the variant name. A struct's is its
//!   `#[serde(rename = "...")]` or its name. `#[event(name = "...")]` overrides either.
//! - `schema_version()` is `#[event(version = N)]` of the variant, else of the type, else 1.
//!
//! Two variants with one name, a version of 0 or an unknown `event(...)` key are compile
//! errors, so a typo cannot silently change what is stored.
//!
//! ```
//! use factum_core::Event;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Event, Debug, Clone, PartialEq, Serialize, Deserialize)]
//! #[serde(tag = "type", rename_all = "snake_case")]
//! enum DoorEvent {
//!     Installed,
//!     #[event(version = 2)]
//!     Opened { by: String },
//!     #[serde(rename = "shut")]
//!     Closed,
//!     #[event(name = "door.painted")]
//!     Painted { colour: String },
//! }
//!
//! assert_eq!(DoorEvent::Installed.event_type(), "installed");
//! assert_eq!(DoorEvent::Opened { by: "ann".into() }.event_type(), "opened");
//! assert_eq!(DoorEvent::Opened { by: "ann".into() }.schema_version(), 2);
//! assert_eq!(DoorEvent::Closed.event_type(), "shut");
//! assert_eq!(DoorEvent::Painted { colour: "red".into() }.event_type(), "door.painted");
//! assert_eq!(DoorEvent::Installed.schema_version(), 1);
//! ```

use proc_macro::TokenStream;
use proc_macro_crate::{FoundCrate, crate_name};
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::quote;
use syn::spanned::Spanned;
use syn::{Attribute, Data, DeriveInput, Fields, Ident, LitInt, LitStr, parse_macro_input};

/// Implements `Event` from the type's serde names; see the crate docs.
#[proc_macro_derive(Event, attributes(event))]
pub fn derive_event(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand_event(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

fn expand_event(input: &DeriveInput) -> syn::Result<TokenStream2> {
    let core = core_path();
    let container_serde = SerdeNames::parse(&input.attrs)?;
    let container_event = EventAttrs::parse(&input.attrs)?;
    let default_version = container_event.version.unwrap_or(1);

    let (names, versions) = match &input.data {
        Data::Enum(data) => {
            let rule = container_serde.rename_all.as_deref();
            let mut seen: Vec<(String, Span)> = Vec::new();
            let mut name_arms = Vec::new();
            let mut version_arms = Vec::new();
            for variant in &data.variants {
                let serde = SerdeNames::parse(&variant.attrs)?;
                let event = EventAttrs::parse(&variant.attrs)?;
                let name = match (event.name, serde.rename) {
                    (Some(name), _) | (None, Some(name)) => name,
                    (None, None) => apply_rename_rule(rule, &variant.ident.to_string()),
                };
                if let Some((_, first)) = seen.iter().find(|(seen, _)| *seen == name) {
                    let mut error = syn::Error::new(
                        variant.span(),
                        format!("two variants are stored as the event type \"{name}\""),
                    );
                    error.combine(syn::Error::new(*first, "first used here"));
                    return Err(error);
                }
                seen.push((name.clone(), variant.span()));
                let ident = &variant.ident;
                let pattern = match variant.fields {
                    Fields::Named(_) => quote!(Self::#ident { .. }),
                    Fields::Unnamed(_) => quote!(Self::#ident(..)),
                    Fields::Unit => quote!(Self::#ident),
                };
                let version = event.version.unwrap_or(default_version);
                name_arms.push(quote!(#pattern => #name,));
                version_arms.push(quote!(#pattern => #version,));
            }
            (
                quote!(match *self { #(#name_arms)* }),
                quote!(match *self { #(#version_arms)* }),
            )
        }
        Data::Struct(_) => {
            let name = container_event
                .name
                .or(container_serde.rename)
                .unwrap_or_else(|| input.ident.to_string());
            (quote!(#name), quote!(#default_version))
        }
        Data::Union(_) => {
            return Err(syn::Error::new(
                input.span(),
                "Event can be derived for enums and structs, not unions",
            ));
        }
    };

    let ident = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    Ok(quote! {
        impl #impl_generics #core::Event for #ident #ty_generics #where_clause {
            fn event_type(&self) -> &'static str {
                #names
            }

            fn schema_version(&self) -> u32 {
                #versions
            }
        }
    })
}

/// The path to the crate that defines `Event`, as the calling crate names it: `factum-core`
/// when it depends on it directly, else the `factum` facade.
fn core_path() -> TokenStream2 {
    let found = crate_name("factum-core").or_else(|_| crate_name("factum"));
    match found {
        // `crate` would be wrong in the calling package's doctests and integration tests,
        // which are other crates; factum-core names itself with `extern crate self`.
        Ok(FoundCrate::Itself) => quote!(::factum_core),
        Ok(FoundCrate::Name(name)) => {
            let ident = Ident::new(&name, Span::call_site());
            quote!(::#ident)
        }
        // Neither is a dependency: the generated path names the usual one, and the
        // compiler's error then says which crate is missing.
        Err(_) => quote!(::factum_core),
    }
}

/// The serde attributes that decide a name: `rename` (or its `serialize` half) and
/// `rename_all`. Every other serde key is left to serde.
#[derive(Default)]
struct SerdeNames {
    rename: Option<String>,
    rename_all: Option<String>,
}

impl SerdeNames {
    fn parse(attrs: &[Attribute]) -> syn::Result<Self> {
        let mut names = Self::default();
        for attr in attrs.iter().filter(|a| a.path().is_ident("serde")) {
            attr.parse_nested_meta(|meta| {
                let key = if meta.path.is_ident("rename") {
                    &mut names.rename
                } else if meta.path.is_ident("rename_all") {
                    &mut names.rename_all
                } else {
                    return skip_value(&meta);
                };
                if meta.input.peek(syn::Token![=]) {
                    *key = Some(meta.value()?.parse::<LitStr>()?.value());
                } else {
                    // rename(serialize = "...", deserialize = "..."): what is stored is
                    // what serialization writes.
                    meta.parse_nested_meta(|half| {
                        let value = half.value()?.parse::<LitStr>()?.value();
                        if half.path.is_ident("serialize") {
                            *key = Some(value);
                        }
                        Ok(())
                    })?;
                }
                Ok(())
            })?;
        }
        Ok(names)
    }
}

/// Consumes the value of a serde key this macro does not read (`tag = "type"`,
/// `deny_unknown_fields`, `default = "path"`, `bound(...)`, ...).
fn skip_value(meta: &syn::meta::ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(syn::Token![=]) {
        meta.value()?.parse::<syn::Expr>()?;
    } else if meta.input.peek(syn::token::Paren) {
        meta.parse_nested_meta(|inner| skip_value(&inner))?;
    }
    Ok(())
}

/// `#[event(name = "...", version = N)]`.
#[derive(Default)]
struct EventAttrs {
    name: Option<String>,
    version: Option<u32>,
}

impl EventAttrs {
    fn parse(attrs: &[Attribute]) -> syn::Result<Self> {
        let mut parsed = Self::default();
        for attr in attrs.iter().filter(|a| a.path().is_ident("event")) {
            attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("name") {
                    let name = meta.value()?.parse::<LitStr>()?;
                    if name.value().trim().is_empty() {
                        return Err(syn::Error::new(
                            name.span(),
                            "an event name must not be empty",
                        ));
                    }
                    parsed.name = Some(name.value());
                } else if meta.path.is_ident("version") {
                    let version = meta.value()?.parse::<LitInt>()?;
                    let value: u32 = version.base10_parse()?;
                    if value == 0 {
                        return Err(syn::Error::new(
                            version.span(),
                            "schema versions start at 1",
                        ));
                    }
                    parsed.version = Some(value);
                } else {
                    return Err(meta.error("expected `name = \"...\"` or `version = N`"));
                }
                Ok(())
            })?;
        }
        Ok(parsed)
    }
}

/// The name serde gives a variant under `rename_all` (serde's own rules for variants, whose
/// names are PascalCase).
fn apply_rename_rule(rule: Option<&str>, variant: &str) -> String {
    let snake = || {
        let mut out = String::new();
        for (i, ch) in variant.char_indices() {
            if i > 0 && ch.is_uppercase() {
                out.push('_');
            }
            out.push(ch.to_ascii_lowercase());
        }
        out
    };
    match rule {
        Some("lowercase") => variant.to_ascii_lowercase(),
        Some("UPPERCASE") => variant.to_ascii_uppercase(),
        Some("camelCase") => {
            let mut chars = variant.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_ascii_lowercase().to_string() + chars.as_str()
            })
        }
        Some("snake_case") => snake(),
        Some("SCREAMING_SNAKE_CASE") => snake().to_ascii_uppercase(),
        Some("kebab-case") => snake().replace('_', "-"),
        Some("SCREAMING-KEBAB-CASE") => snake().replace('_', "-").to_ascii_uppercase(),
        // PascalCase, no rule, or a rule serde itself rejects: the name as written.
        _ => variant.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::apply_rename_rule;

    #[test]
    fn rename_rules_follow_serde() {
        let cases = [
            (None, "MoneyDeposited"),
            (Some("PascalCase"), "MoneyDeposited"),
            (Some("lowercase"), "moneydeposited"),
            (Some("UPPERCASE"), "MONEYDEPOSITED"),
            (Some("camelCase"), "moneyDeposited"),
            (Some("snake_case"), "money_deposited"),
            (Some("SCREAMING_SNAKE_CASE"), "MONEY_DEPOSITED"),
            (Some("kebab-case"), "money-deposited"),
            (Some("SCREAMING-KEBAB-CASE"), "MONEY-DEPOSITED"),
        ];
        for (rule, expected) in cases {
            assert_eq!(
                apply_rename_rule(rule, "MoneyDeposited"),
                expected,
                "{rule:?}"
            );
        }
    }
}
