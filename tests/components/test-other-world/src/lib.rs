//! `test-other-world`: a well-formed component of a world that is not
//! `recoco:connector`: it exports one `greet` function and no `handler`. The
//! host must refuse it as a plugin, naming the world it expects.

wit_bindgen::generate!({
    inline: "
        package test:other@0.1.0;

        world other {
            export greet: func(name: string) -> string;
        }
    ",
});

/// The component.
pub struct Other;

impl Guest for Other {
    fn greet(name: String) -> String {
        format!("hello {name}")
    }
}

// Export names are not valid native symbols; native builds only type-check.
#[cfg(target_arch = "wasm32")]
export!(Other);
