//! JS calling host functions: registers three bindings (one asynchronous), loads `examples/udf.js`, and runs its
//! `Handler` for two tenants. The request metadata (the tenant) reaches the bindings and the
//! logging function, and never enters the sandbox.
//!
//! ```sh
//! cargo build -p roma-worker && cargo run -p roma --example udf
//! ```

use roma::{
    BindingFuture, CodeObject, Config, FunctionBindingIo, FunctionBindingObject, InvocationRequest,
    ResponseObject, RomaError, RomaService,
};
use std::collections::BTreeMap;

/// The request metadata: stays in the host. It needs neither `Default` nor `Clone`.
#[derive(Debug)]
struct Tenant {
    name: String,
    discount_percent: u32,
}

fn config() -> Config<Tenant> {
    let mut config = Config::<Tenant>::new();
    config.number_of_workers(1);
    // `cool_function(string) -> string`, as in Roma's examples.
    config.register_function("cool_function", |p| {
        let s = p.io.input_string().unwrap_or_default().to_owned();
        let tenant = &p.metadata.name;
        p.io.set_output_string(format!("{s} String from Rust, for {tenant}"));
    });
    // `shop.prices(list of strings) -> Map`: a lookup with a per-tenant discount; an unknown
    // fruit is a host error, thrown in JS.
    config.register_function_binding(FunctionBindingObject::<Tenant>::new("shop.prices", |p| {
        let catalogue = [("apple", 50u32), ("kiwi", 40), ("mango", 120)];
        let fruits = p.io.input_list().unwrap_or_default().to_vec();
        let mut prices = BTreeMap::new();
        for fruit in fruits {
            match catalogue.iter().find(|(name, _)| *name == fruit) {
                Some((_, cents)) => {
                    let cents = cents * (100 - p.metadata.discount_percent) / 100;
                    prices.insert(fruit, cents.to_string());
                }
                None => {
                    p.io.add_error(format!("no price for {fruit}"));
                    return;
                }
            }
        }
        p.io.set_output_map(prices);
    }));
    // `shop.stock(string) -> Promise<string>`: an asynchronous host function. It takes what
    // it needs from the metadata now; the future runs on roma's binding executor.
    config.register_function_binding(FunctionBindingObject::new_async(
        "shop.stock",
        |mut io: FunctionBindingIo, tenant: &Tenant| -> BindingFuture {
            let warehouse = format!("{}-warehouse", tenant.name);
            Box::pin(async move {
                let fruit = io.input_string().unwrap_or_default().to_owned();
                io.set_output_string(format!("{fruit}: in stock at {warehouse}"));
                io
            })
        },
    ));
    // console.log of the code, with the request's metadata.
    config.set_logging_function(|level, tenant: &Tenant, msg| {
        eprintln!("[{level:?}] ({}) {msg}", tenant.name);
    });
    config
}

/// Runs `examples/udf.js` for two tenants; returns their responses.
fn run() -> Result<Vec<ResponseObject>, RomaError> {
    let roma = RomaService::new(config())?;
    roma.load_blocking(CodeObject::js(
        "v1",
        include_str!("../../../examples/udf.js"),
    ))?;

    let mut responses = Vec::new();
    for (name, discount_percent) in [("acme", 0), ("globex", 10)] {
        let input = vec![r#""Hello""#.into(), r#"["apple", "kiwi"]"#.into()];
        let request = InvocationRequest::new("v1", "Handler", input)
            .with_id(name)
            .with_metadata(Tenant {
                name: name.into(),
                discount_percent,
            });
        responses.push(roma.execute_blocking(request)?);
    }
    roma.stop();
    Ok(responses)
}

fn main() -> Result<(), RomaError> {
    for r in run()? {
        println!("{}: {}", r.id, r.resp);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    /// `cargo test -p roma --example udf` (and `cargo test -p roma`) runs the example.
    #[test]
    fn the_example_runs() {
        let responses = super::run().unwrap();
        let acme: serde_json::Value = serde_json::from_str(&responses[0].resp).unwrap();
        assert_eq!(acme["greeting"], "Hello String from Rust, for acme");
        assert_eq!(acme["prices"]["apple"], "50");
        assert_eq!(acme["total"], 90);
        assert_eq!(acme["refused"], "no price for durian");
        assert_eq!(
            acme["stock"],
            serde_json::json!([
                "apple: in stock at acme-warehouse",
                "kiwi: in stock at acme-warehouse"
            ])
        );
        let globex: serde_json::Value = serde_json::from_str(&responses[1].resp).unwrap();
        assert_eq!(globex["greeting"], "Hello String from Rust, for globex");
        assert_eq!(globex["total"], 81);
    }
}
