//! What the serde attributes of a type say about its names and shape, read as serde reads
//! them, and the path of the crate the generated code names.

use proc_macro_crate::{FoundCrate, crate_name};
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::quote;
use syn::spanned::Spanned;
use syn::{Attribute, Fields, Ident, LitStr, Variant};

/// The path to the crate that defines `Event`, as the calling crate names it: `factum-core`
/// when it depends on it directly, else the `factum` facade.
pub(crate) fn core_path() -> TokenStream2 {
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

/// The serde attributes that decide a name or a shape: `rename` (each half), `rename_all`,
/// `tag`, `content`, `untagged`, `deny_unknown_fields` and `skip*`. Every other serde key is
/// left to serde.
#[derive(Default)]
pub(crate) struct SerdeNames {
    /// The name serialization writes.
    pub(crate) rename: Option<String>,
    /// The name deserialization reads.
    pub(crate) rename_de: Option<String>,
    pub(crate) rename_all: Option<String>,
    pub(crate) rename_all_de: Option<String>,
    pub(crate) tag: Option<String>,
    pub(crate) content: bool,
    pub(crate) untagged: bool,
    pub(crate) deny_unknown_fields: bool,
    /// `skip` or `skip_deserializing`: never read.
    pub(crate) skip_de: bool,
}

impl SerdeNames {
    pub(crate) fn parse(attrs: &[Attribute]) -> syn::Result<Self> {
        let mut names = Self::default();
        for attr in attrs.iter().filter(|a| a.path().is_ident("serde")) {
            attr.parse_nested_meta(|meta| {
                let path = &meta.path;
                let (ser, de) = if path.is_ident("rename") {
                    (&mut names.rename, &mut names.rename_de)
                } else if path.is_ident("rename_all") {
                    (&mut names.rename_all, &mut names.rename_all_de)
                } else if path.is_ident("tag") {
                    names.tag = Some(meta.value()?.parse::<LitStr>()?.value());
                    return Ok(());
                } else {
                    if path.is_ident("content") {
                        names.content = true;
                    } else if path.is_ident("untagged") {
                        names.untagged = true;
                    } else if path.is_ident("deny_unknown_fields") {
                        names.deny_unknown_fields = true;
                    } else if path.is_ident("skip") || path.is_ident("skip_deserializing") {
                        names.skip_de = true;
                    }
                    return skip_value(&meta);
                };
                if meta.input.peek(syn::Token![=]) {
                    let value = meta.value()?.parse::<LitStr>()?.value();
                    *ser = Some(value.clone());
                    *de = Some(value);
                } else {
                    // rename(serialize = "...", deserialize = "..."): each half on its own.
                    meta.parse_nested_meta(|half| {
                        let value = half.value()?.parse::<LitStr>()?.value();
                        if half.path.is_ident("serialize") {
                            *ser = Some(value);
                        } else if half.path.is_ident("deserialize") {
                            *de = Some(value);
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

/// The name serde gives a variant under `rename_all` (serde's own rules for variants, whose
/// names are PascalCase).
pub(crate) fn apply_rename_rule(rule: Option<&str>, variant: &str) -> String {
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

/// The variants' names, each claimed once: a second variant read or stored under a name
/// already taken is an error at it, pointing at the first.
#[derive(Default)]
pub(crate) struct VariantNames {
    seen: Vec<(String, Span)>,
}

impl VariantNames {
    /// Claims `name` for `variant`; `what` says what the name is ("the command", "the event
    /// type") in the error.
    pub(crate) fn claim(&mut self, name: &str, variant: &Variant, what: &str) -> syn::Result<()> {
        if let Some((_, first)) = self.seen.iter().find(|(seen, _)| seen == name) {
            let mut error = syn::Error::new(
                variant.span(),
                format!("two variants are {what} \"{name}\""),
            );
            error.combine(syn::Error::new(*first, "first used here"));
            return Err(error);
        }
        self.seen.push((name.to_owned(), variant.span()));
        Ok(())
    }

    /// The names claimed, in order.
    pub(crate) fn names(&self) -> impl Iterator<Item = &String> {
        self.seen.iter().map(|(name, _)| name)
    }
}

/// The pattern that matches `variant` whatever its fields: `Self::V { .. }`, `Self::V(..)` or
/// `Self::V`.
pub(crate) fn variant_pattern(variant: &Variant) -> TokenStream2 {
    let ident = &variant.ident;
    match variant.fields {
        Fields::Named(_) => quote!(Self::#ident { .. }),
        Fields::Unnamed(_) => quote!(Self::#ident(..)),
        Fields::Unit => quote!(Self::#ident),
    }
}
