//! Compiles the C++ shim against the system V8 (libnode) and links it.
//!
//! V8 is found, in order: `ROMA_V8_INCLUDE` + `ROMA_V8_LIB`; the folder `cargo xtask setup`
//! fills (`target/libnode/` of the workspace); the system paths (`/usr/include/node` with a
//! matching `libnode.so.<NODE_MODULE_VERSION>`). Every binary gets an rpath to the library
//! folder, so nothing needs `LD_LIBRARY_PATH`.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};

const FIX: &str = "run `cargo xtask setup` (it installs or unpacks Debian's libnode-dev), \
                   or set ROMA_V8_INCLUDE and ROMA_V8_LIB";

fn main() {
    println!("cargo:rerun-if-changed=shim/roma_v8_shim.cc");
    println!("cargo:rerun-if-env-changed=ROMA_V8_INCLUDE");
    println!("cargo:rerun-if-env-changed=ROMA_V8_LIB");
    let manifest =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let workspace = manifest.join("../..");
    let setup_dir = workspace.join("target/libnode");
    println!("cargo:rerun-if-changed={}", setup_dir.display());

    let (include, lib) = match find_v8(&setup_dir) {
        Ok(found) => found,
        Err(why) => {
            eprintln!("roma-v8: V8 (libnode) not found: {why}.\nroma-v8: to fix it, {FIX}.");
            panic!("roma-v8: V8 (libnode) not found: {why}; {FIX}");
        }
    };

    cc::Build::new()
        .cpp(true)
        .std("c++17")
        .file("shim/roma_v8_shim.cc")
        .include(&include)
        .flag("-fno-rtti")
        .flag_if_supported("-Wno-unused-parameter")
        .warnings(true)
        .compile("roma_v8_shim");

    let (lib_dir, lib_file) = lib;
    // A plain absolute path: the rpath must resolve inside the worker's jail, whose root holds
    // only this folder (no `..` through folders that are not there).
    let lib_dir = lib_dir.canonicalize().unwrap_or(lib_dir);
    println!("cargo:rustc-link-search=native={}", lib_dir.display());
    if lib_dir.join("libnode.so").exists() {
        println!("cargo:rustc-link-lib=dylib=node");
    } else {
        println!("cargo:rustc-link-arg=-l:{lib_file}");
    }
    // rpath for this crate's own tests, benches and examples; dependents read DEP_ROMA_V8_LIBDIR.
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib_dir.display());
    println!("cargo:libdir={}", lib_dir.display());
    println!("cargo:include={}", include.display());
}

type Found = (PathBuf, (PathBuf, String));

fn find_v8(setup_dir: &Path) -> Result<Found, String> {
    if let (Ok(inc), Ok(lib)) = (env::var("ROMA_V8_INCLUDE"), env::var("ROMA_V8_LIB")) {
        let inc = PathBuf::from(inc);
        let lib = PathBuf::from(lib);
        if !inc.join("v8.h").exists() {
            return Err(format!("ROMA_V8_INCLUDE={} has no v8.h", inc.display()));
        }
        let file = libnode_in(&lib, None)
            .ok_or_else(|| format!("ROMA_V8_LIB={} has no libnode.so*", lib.display()))?;
        return Ok((inc, (lib, file)));
    }
    let inc = setup_dir.join("usr/include/node");
    if inc.join("v8.h").exists()
        && let Some((dir, file)) = multiarch_libdirs(&setup_dir.join("usr/lib"))
            .into_iter()
            .find_map(|d| libnode_in(&d, module_version(&inc)).map(|f| (d, f)))
    {
        return Ok((inc, (dir, file)));
    }
    let inc = PathBuf::from("/usr/include/node");
    if inc.join("v8.h").exists() {
        let abi = module_version(&inc);
        for dir in multiarch_libdirs(Path::new("/usr/lib"))
            .into_iter()
            .chain([PathBuf::from("/usr/lib")])
        {
            // Only a libnode whose ABI number matches the headers: /usr/include/node may hold
            // another Node's headers (nodesource's V8 11.3 here) with no library to match.
            if let Some(abi) = abi
                && let Some(file) = libnode_in(&dir, Some(abi))
            {
                return Ok((inc, (dir, file)));
            }
        }
        return Err(format!(
            "/usr/include/node holds headers of NODE_MODULE_VERSION {abi:?} but no matching libnode.so.N is installed"
        ));
    }
    Err(format!(
        "neither {} nor /usr/include/node has V8 headers",
        setup_dir.display()
    ))
}

fn multiarch_libdirs(usr_lib: &Path) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Ok(rd) = fs::read_dir(usr_lib) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.contains("-linux-"))
            {
                dirs.push(p);
            }
        }
    }
    dirs
}

fn module_version(include: &Path) -> Option<u32> {
    let text = fs::read_to_string(include.join("node_version.h")).ok()?;
    text.lines().find_map(|l| {
        let l = l.trim();
        let rest = l.strip_prefix("#define NODE_MODULE_VERSION ")?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

fn libnode_in(dir: &Path, abi: Option<u32>) -> Option<String> {
    if let Some(abi) = abi {
        let name = format!("libnode.so.{abi}");
        return dir.join(&name).exists().then_some(name);
    }
    let rd = fs::read_dir(dir).ok()?;
    rd.flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .find(|n| n.starts_with("libnode.so."))
}
