//! Request validation, shared by the host (to fail fast) and the engine (which must not trust
//! what reaches it).

use crate::{CodeObject, Invocation, RomaError, WASM_ARRAY_NAME_TAG};

/// Which engine path a code object takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeKind {
    /// Plain JavaScript.
    Js,
    /// JavaScript with a WASM module exposed as a global `Uint8Array`.
    JsWithWasm,
    /// A standalone WASM module.
    Wasm,
}

/// Checks a code object the way Roma's request validator does, and says which kind it is.
pub fn validate_code_object(code: &CodeObject) -> Result<CodeKind, RomaError> {
    if code.version_string.is_empty() {
        return Err(RomaError::invalid_argument(
            "code object has an empty version_string",
        ));
    }
    let has_js = !code.js.is_empty();
    let has_wasm = !code.wasm.is_empty();
    if has_js == has_wasm {
        return Err(RomaError::invalid_argument(
            "exactly one of js and wasm must be set",
        ));
    }
    let array_name = code.tags.get(WASM_ARRAY_NAME_TAG);
    if has_wasm {
        if !code.wasm_bin.is_empty() {
            return Err(RomaError::invalid_argument(
                "wasm and wasm_bin cannot both be set",
            ));
        }
        return Ok(CodeKind::Wasm);
    }
    match (code.wasm_bin.is_empty(), array_name) {
        (true, None) => Ok(CodeKind::Js),
        (false, Some(name)) => {
            if !is_identifier(name) {
                return Err(RomaError::invalid_argument(format!(
                    "tag {WASM_ARRAY_NAME_TAG} must be a JS identifier, got `{name}`"
                )));
            }
            Ok(CodeKind::JsWithWasm)
        }
        (false, None) => Err(RomaError::invalid_argument(format!(
            "wasm_bin is set but the tag {WASM_ARRAY_NAME_TAG} naming its array is not"
        ))),
        (true, Some(_)) => Err(RomaError::invalid_argument(format!(
            "the tag {WASM_ARRAY_NAME_TAG} is set but wasm_bin is empty"
        ))),
    }
}

/// Checks an invocation before it is queued or run.
pub fn validate_invocation(inv: &Invocation) -> Result<(), RomaError> {
    if inv.version_string.is_empty() {
        return Err(RomaError::invalid_argument(
            "invocation has an empty version_string",
        ));
    }
    if inv.handler_name.is_empty() {
        return Err(RomaError::invalid_argument(
            "invocation has an empty handler_name",
        ));
    }
    if inv.treat_input_as_byte_str && inv.input.len() != 1 {
        return Err(RomaError::invalid_argument(format!(
            "treat_input_as_byte_str needs exactly one input, got {}",
            inv.input.len()
        )));
    }
    if inv.handler_name.split('.').any(str::is_empty) {
        return Err(RomaError::invalid_argument(format!(
            "handler name `{}` has an empty path segment",
            inv.handler_name
        )));
    }
    Ok(())
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_alphabetic() || c == '_' || c == '$')
        && chars.all(|c| c.is_alphanumeric() || c == '_' || c == '$')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn js(src: &str) -> CodeObject {
        CodeObject {
            version_string: "v1".into(),
            js: src.into(),
            ..Default::default()
        }
    }

    #[test]
    fn kinds() {
        assert_eq!(validate_code_object(&js("1")), Ok(CodeKind::Js));
        let mut c = js("1");
        c.wasm_bin = vec![0, 97, 115, 109];
        assert_eq!(
            validate_code_object(&c).unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
        c.tags.insert(WASM_ARRAY_NAME_TAG.into(), "wasm_arr".into());
        assert_eq!(validate_code_object(&c), Ok(CodeKind::JsWithWasm));
        c.tags
            .insert(WASM_ARRAY_NAME_TAG.into(), "not an ident".into());
        assert!(validate_code_object(&c).is_err());
        let w = CodeObject {
            version_string: "v".into(),
            wasm: vec![0],
            ..Default::default()
        };
        assert_eq!(validate_code_object(&w), Ok(CodeKind::Wasm));
        assert!(validate_code_object(&CodeObject::default()).is_err());
        let mut both = js("1");
        both.wasm = vec![1];
        assert!(validate_code_object(&both).is_err());
    }

    #[test]
    fn invocations() {
        let ok = Invocation::new("v1", "a.b", vec![]);
        assert!(validate_invocation(&ok).is_ok());
        assert!(validate_invocation(&Invocation::new("", "H", vec![])).is_err());
        assert!(validate_invocation(&Invocation::new("v", "", vec![])).is_err());
        assert!(validate_invocation(&Invocation::new("v", "a..b", vec![])).is_err());
        let mut b = Invocation::new("v", "H", vec![]);
        b.treat_input_as_byte_str = true;
        assert!(validate_invocation(&b).is_err());
    }
}
