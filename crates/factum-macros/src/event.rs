//! `#[derive(Event)]`: `event_type()` and `schema_version()` from the serde names.

use proc_macro2::TokenStream as TokenStream2;
use quote::quote;
use syn::spanned::Spanned;
use syn::{Attribute, Data, DeriveInput, LitInt, LitStr};

use crate::serde_attrs::{SerdeNames, VariantNames, apply_rename_rule, core_path, variant_pattern};

pub(crate) fn expand_event(input: &DeriveInput) -> syn::Result<TokenStream2> {
    let core = core_path();
    let container_serde = SerdeNames::parse(&input.attrs)?;
    let container_event = EventAttrs::parse(&input.attrs)?;
    let default_version = container_event.version.unwrap_or(1);

    let (names, versions) = match &input.data {
        Data::Enum(data) => {
            let rule = container_serde.rename_all.as_deref();
            let mut seen = VariantNames::default();
            let mut name_arms = Vec::new();
            let mut version_arms = Vec::new();
            for variant in &data.variants {
                let serde = SerdeNames::parse(&variant.attrs)?;
                let event = EventAttrs::parse(&variant.attrs)?;
                let name = match (event.name, serde.rename) {
                    (Some(name), _) | (None, Some(name)) => name,
                    (None, None) => apply_rename_rule(rule, &variant.ident.to_string()),
                };
                seen.claim(&name, variant, "stored as the event type")?;
                let pattern = variant_pattern(variant);
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
