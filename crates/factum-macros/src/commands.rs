//! `#[derive(Commands)]`: the command names of an internally tagged enum, as serde reads them.

use proc_macro2::TokenStream as TokenStream2;
use quote::quote;
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields};

use crate::serde_attrs::{SerdeNames, VariantNames, apply_rename_rule, core_path, variant_pattern};

pub(crate) fn expand_commands(input: &DeriveInput) -> syn::Result<TokenStream2> {
    let core = core_path();
    let container = SerdeNames::parse(&input.attrs)?;
    let Data::Enum(data) = &input.data else {
        return Err(syn::Error::new(
            input.span(),
            "Commands can be derived for enums only: one variant per command",
        ));
    };
    let shape_error = |what: &str| {
        syn::Error::new(
            input.ident.span(),
            format!(
                "Commands needs an internally tagged enum, `#[serde(tag = \"type\")]` (with no `content`): {what}"
            ),
        )
    };
    if container.untagged {
        return Err(shape_error("this one is untagged"));
    }
    if container.content {
        return Err(shape_error("this one is adjacently tagged"));
    }
    let Some(tag) = container.tag else {
        return Err(shape_error("this one has no `tag`"));
    };
    let rule = container.rename_all_de.as_deref();
    let mut seen = VariantNames::default();
    let mut arms = Vec::new();
    for variant in &data.variants {
        let serde = SerdeNames::parse(&variant.attrs)?;
        if serde.skip_de {
            return Err(syn::Error::new(
                variant.span(),
                "a command variant cannot be skipped: every variant is a command clients send",
            ));
        }
        if matches!(variant.fields, Fields::Unnamed(_)) {
            return Err(syn::Error::new(
                variant.span(),
                "a command variant has named fields or none (`Deposit { amount: Money }`), so its JSON is one object",
            ));
        }
        let name = serde
            .rename_de
            .unwrap_or_else(|| apply_rename_rule(rule, &variant.ident.to_string()));
        seen.claim(&name, variant, "read as the command")?;
        let pattern = variant_pattern(variant);
        arms.push(quote!(#pattern => #name,));
    }
    let names = seen.names();
    let deny = container.deny_unknown_fields;
    let body = if arms.is_empty() {
        quote!(match *self {})
    } else {
        quote!(match *self { #(#arms)* })
    };
    let ident = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    Ok(quote! {
        impl #impl_generics #core::Commands for #ident #ty_generics #where_clause {
            const TAG: &'static str = #tag;
            const NAMES: &'static [&'static str] = &[#(#names),*];
            const DENY_UNKNOWN_FIELDS: bool = #deny;

            fn name(&self) -> &'static str {
                #body
            }
        }
    })
}
